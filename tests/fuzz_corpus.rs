//! Every input of the committed fuzz corpora (`fuzz/corpus/TARGET/`),
//! replayed through the same entry points the fuzz targets call, on stable:
//! what a fuzzer once found stays fixed without a nightly toolchain.
//! `config_env` runs the real binary with the variables set.

use std::path::{Path, PathBuf};
use std::process::Command;

fn corpus(target: &str) -> Vec<(PathBuf, Vec<u8>)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/corpus")
        .join(target);
    let mut inputs: Vec<(PathBuf, Vec<u8>)> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| {
            let path = entry.unwrap().path();
            let data = std::fs::read(&path).unwrap();
            (path, data)
        })
        .collect();
    inputs.sort();
    assert!(!inputs.is_empty(), "{}: no inputs", dir.display());
    inputs
}

#[test]
fn config() {
    for (path, data) in corpus("config") {
        let Some((&first, rest)) = data.split_first() else {
            continue;
        };
        if let Ok(text) = std::str::from_utf8(rest) {
            eprintln!("{}", path.display());
            healthgate::fuzz::config(first & 1 == 1, text);
        }
    }
}

#[test]
fn config_env() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("healthgate.toml");
    std::fs::write(
        &config,
        "[[checks]]\nname = \"a\"\ntype = \"tcp\"\naddress = \"127.0.0.1:1\"\n",
    )
    .unwrap();
    for (path, data) in corpus("config_env") {
        let text = String::from_utf8_lossy(&data);
        // As the target reads them: 16 lines at most, none that cannot be set.
        let vars: Vec<(String, String)> = text
            .lines()
            .take(16)
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (format!("HEALTHGATE_{k}"), v.to_owned()))
            .filter(|(k, v)| !k.contains(['\0', '=']) && !v.contains('\0'))
            .collect();
        let out = Command::new(env!("CARGO_BIN_EXE_healthgate"))
            .args(["validate", "--config"])
            .arg(&config)
            .envs(vars)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            matches!(out.status.code(), Some(0 | 2)) && !stderr.contains("panicked"),
            "{}: {:?} {stderr}",
            path.display(),
            out.status
        );
    }
}

#[test]
fn http_answer() {
    for (_, data) in corpus("http_answer") {
        if data.len() >= 2 {
            let status = u16::from_be_bytes([data[0], data[1]]) % 1000;
            healthgate::fuzz::http_answer(status, &data[2..]);
        }
    }
}

#[test]
fn exchange() {
    for (_, data) in corpus("exchange") {
        healthgate::fuzz::exchange(&data);
    }
}

#[test]
fn admin_json() {
    for (_, data) in corpus("admin_json") {
        healthgate::fuzz::admin_json(&data);
    }
}

#[test]
fn listener() {
    for (path, data) in corpus("listener") {
        let Some((&first, rest)) = data.split_first() else {
            continue;
        };
        let answer = healthgate::fuzz::serve(first & 1 == 1, rest);
        // The hand-written seeds (named, not hashes) are requests: each is
        // answered. What the fuzzer added need only return.
        let name = path.file_name().unwrap().to_string_lossy();
        let seed = !name.chars().all(|c| c.is_ascii_hexdigit());
        assert!(
            !seed || answer.starts_with(b"HTTP/1.1 ") || answer.starts_with(&[0, 0]),
            "{}: {:?}",
            path.display(),
            String::from_utf8_lossy(&answer)
        );
    }
}
