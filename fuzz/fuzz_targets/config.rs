//! A config file, TOML or YAML (the first byte chooses), through the loader.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Some((&first, rest)) = data.split_first() {
        if let Ok(text) = std::str::from_utf8(rest) {
            healthgate::fuzz::config(first & 1 == 1, text);
        }
    }
});
