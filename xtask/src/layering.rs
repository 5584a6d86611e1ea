//! The layering rule of docs/ARCHITECTURE.md: normal and build dependencies between
//! our crates point strictly downward. Dev-dependencies may point anywhere (tests link
//! a backend).

use std::process::Command;

use anyhow::{bail, Context, Result};
use serde_json::Value;

/// Rank of each crate: a crate may depend only on crates of lower rank.
const RANKS: &[(&str, u32)] = &[
    ("rg-core", 0),
    ("rg-tokenize", 0),
    ("rg-cpu", 1),
    ("rg-cuda", 1),
    ("rg-autograd", 1),
    ("rg-io", 1),
    ("rg-nn", 2),
    ("rg-dist", 2),
    ("rg-gpt", 3),
    ("rg-hub", 4),
    ("rusty-gradients", 5),
    ("rg-cli", 6),
    ("rg-wasm", 6),
];

fn rank(name: &str) -> Option<u32> {
    RANKS.iter().find(|(n, _)| *n == name).map(|(_, r)| *r)
}

/// Edges `(from, to)` that point up or sideways, from `cargo metadata` output.
pub fn violations(metadata: &Value) -> Vec<(String, String)> {
    let mut bad = Vec::new();
    let packages = metadata["packages"].as_array().cloned().unwrap_or_default();
    for p in &packages {
        let name = p["name"].as_str().unwrap_or_default();
        let Some(from) = rank(name) else { continue };
        for d in p["dependencies"].as_array().into_iter().flatten() {
            let dep = d["name"].as_str().unwrap_or_default();
            let kind = d["kind"].as_str();
            if matches!(kind, Some("dev")) {
                continue;
            }
            if let Some(to) = rank(dep) {
                if to >= from {
                    bad.push((name.to_string(), dep.to_string()));
                }
            }
        }
    }
    bad
}

pub fn check() -> Result<()> {
    let out = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .args(["metadata", "--no-deps", "--format-version", "1"])
        .output()
        .context("running cargo metadata")?;
    if !out.status.success() {
        bail!(
            "cargo metadata failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let metadata: Value = serde_json::from_slice(&out.stdout).context("parsing cargo metadata")?;
    let unknown: Vec<&str> = metadata["packages"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|p| p["name"].as_str())
        .filter(|n| rank(n).is_none() && !matches!(*n, "xtask" | "rg-benches"))
        .collect();
    if !unknown.is_empty() {
        bail!("crates without a layer rank in xtask/src/layering.rs: {unknown:?}");
    }
    let bad = violations(&metadata);
    if bad.is_empty() {
        println!(
            "layering: ok ({} crates, dependencies point strictly downward)",
            RANKS.len()
        );
        return Ok(());
    }
    for (from, to) in &bad {
        eprintln!("layering: {from} -> {to} points up or sideways");
    }
    bail!("{} layering violation(s)", bad.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upward_and_sideways_edges_are_reported_dev_edges_are_not() {
        let meta = serde_json::json!({"packages": [
            {"name": "rg-core", "dependencies": [{"name": "rg-nn", "kind": null}]},
            {"name": "rg-cpu", "dependencies": [{"name": "rg-cuda", "kind": null}, {"name": "rg-core", "kind": null}]},
            {"name": "rg-autograd", "dependencies": [{"name": "rg-cpu", "kind": "dev"}]},
        ]});
        let bad = violations(&meta);
        assert_eq!(
            bad,
            vec![
                ("rg-core".into(), "rg-nn".into()),
                ("rg-cpu".into(), "rg-cuda".into())
            ]
        );
    }
}
