//! HEALTHGATE_* environment variables (one `NAME=value` a line) over a
//! small valid config.
#![no_main]
use libfuzzer_sys::fuzz_target;

const BASE: &str = "[[checks]]\nname = \"a\"\ntype = \"tcp\"\naddress = \"127.0.0.1:1\"\n";

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let mut set = Vec::new();
    for line in text.lines().take(16) {
        if let Some((name, value)) = line.split_once('=') {
            let name = format!("HEALTHGATE_{name}");
            if name.contains('\0') || value.contains('\0') || name.contains('=') {
                continue;
            }
            std::env::set_var(&name, value);
            set.push(name);
        }
    }
    healthgate::fuzz::config(false, BASE);
    for name in set {
        std::env::remove_var(name);
    }
});
