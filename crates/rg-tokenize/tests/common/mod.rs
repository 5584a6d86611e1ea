//! Helpers shared by the integration tests.
#![allow(dead_code)]

use std::path::PathBuf;

/// The shared data folder (`RG_SHARED_DIR`, default `../shared` beside the workspace).
///
/// `None` (with the reason printed) when it is absent, so a bare checkout still passes;
/// under CI (`CI` set) its absence fails the test instead of skipping it.
pub fn shared_dir(test: &str) -> Option<PathBuf> {
    let dir = std::env::var_os("RG_SHARED_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../../shared")));
    if dir.join("data/tinyshakespeare.txt").is_file() {
        return Some(dir);
    }
    let reason = format!(
        "{test}: shared data not found at {} (set RG_SHARED_DIR)",
        dir.display()
    );
    if std::env::var_os("CI").is_some() {
        panic!("{reason}; CI must run this test");
    }
    eprintln!("SKIPPED {reason}");
    None
}

pub fn gpt2_dir(shared: &std::path::Path) -> PathBuf {
    shared.join("data/gpt2-tokenizer")
}

pub fn shakespeare(shared: &std::path::Path) -> String {
    std::fs::read_to_string(shared.join("data/tinyshakespeare.txt"))
        .expect("read tinyshakespeare.txt")
}

/// The stress text: contractions, whitespace runs, CRLF, ZWJ emoji, many scripts, code.
pub const STRESS: &str = include_str!("../data/stress.txt");

/// FNV-1a 64 over the ids as little-endian u32 (the hash `gen_reference.py` prints).
pub fn fnv1a64(ids: &[u32]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for id in ids {
        for b in id.to_le_bytes() {
            h ^= b as u64;
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
    h
}

/// A fresh, empty temporary directory for one test.
pub fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("rg-tokenize-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create temp dir");
    dir
}
