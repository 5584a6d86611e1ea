//! Finding the CUDA 12.4 compiler pieces that `cargo xtask kernels` uses, all from pip
//! wheels so that no CUDA installation (and no GPU) is needed:
//!
//! - NVRTC `libnvrtc.so.12`: `nvidia-cuda-nvrtc-cu12==12.4.*`
//! - headers such as `cuda_bf16.h`: `nvidia-cuda-runtime-cu12==12.4.*`
//! - `ptxas` (only for `--ptxas`): `nvidia-cuda-nvcc-cu12==12.4.*`
//!
//! Each can be named directly (`RG_NVRTC_LIB`, `RG_CUDA_INCLUDE`, `RG_PTXAS`); the rest
//! are looked up in the first Python that has the wheels installed: `--python`,
//! `$RG_CUDA_PYTHON`, the active virtual environment, the venv that `.ci/run` makes
//! (`~/.cache/rusty-gradients/cuda-venv`), then `python3`.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Result};
use serde_json::Value;

/// The one command that installs everything `cargo xtask kernels --ptxas` needs: the
/// exact builds `.ci/run` uses, since the committed PTX is compared byte for byte.
pub const PIP_HINT: &str = "python3 -m venv ~/.cache/rusty-gradients/cuda-venv && \
~/.cache/rusty-gradients/cuda-venv/bin/pip install nvidia-cuda-nvrtc-cu12==12.4.127 \
nvidia-cuda-runtime-cu12==12.4.127 nvidia-cuda-nvcc-cu12==12.4.131";

/// The venv `.ci/run` creates, relative to `$HOME`.
pub const CI_VENV: &str = ".cache/rusty-gradients/cuda-venv";

/// Prints the wheel paths as JSON; a wheel that is not installed is left out.
const PROBE: &str = r#"
import json, os
out = {}
for key, module, rel in (("nvrtc", "nvidia.cuda_nvrtc", "lib/libnvrtc.so.12"),
                         ("include", "nvidia.cuda_runtime", "include"),
                         ("ptxas", "nvidia.cuda_nvcc", "bin/ptxas")):
    try:
        m = __import__(module, fromlist=["_"])
    except ImportError:
        continue
    path = os.path.join(list(m.__path__)[0], rel)
    if os.path.exists(path):
        out[key] = path
print(json.dumps(out))
"#;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Toolkit {
    pub nvrtc: PathBuf,
    pub include: PathBuf,
    /// Only `--ptxas` needs it.
    pub ptxas: Option<PathBuf>,
    /// Where the paths came from, for messages.
    pub source: String,
}

/// What the environment variables and one Python probe say; pure, for tests.
#[derive(Debug, Default, Clone)]
pub struct Found {
    pub nvrtc: Option<PathBuf>,
    pub include: Option<PathBuf>,
    pub ptxas: Option<PathBuf>,
}

impl Found {
    pub fn from_env(get: impl Fn(&str) -> Option<String>) -> Found {
        let path = |k: &str| get(k).filter(|v| !v.is_empty()).map(PathBuf::from);
        Found {
            nvrtc: path("RG_NVRTC_LIB"),
            include: path("RG_CUDA_INCLUDE"),
            ptxas: path("RG_PTXAS"),
        }
    }

    pub fn from_probe(json: &str) -> Found {
        let v: Value = serde_json::from_str(json.trim()).unwrap_or(Value::Null);
        let path = |k: &str| v[k].as_str().map(PathBuf::from);
        Found {
            nvrtc: path("nvrtc"),
            include: path("include"),
            ptxas: path("ptxas"),
        }
    }

    /// `self`'s entries, each falling back to `other`'s.
    pub fn or(self, other: &Found) -> Found {
        Found {
            nvrtc: self.nvrtc.or_else(|| other.nvrtc.clone()),
            include: self.include.or_else(|| other.include.clone()),
            ptxas: self.ptxas.or_else(|| other.ptxas.clone()),
        }
    }

    fn complete(&self, need_ptxas: bool) -> bool {
        self.nvrtc.is_some() && self.include.is_some() && (!need_ptxas || self.ptxas.is_some())
    }
}

/// Python interpreters to probe, in order, without duplicates.
pub fn python_candidates(flag: Option<&str>, get: impl Fn(&str) -> Option<String>) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = Vec::new();
    let mut push = |p: PathBuf| {
        if !out.contains(&p) {
            out.push(p);
        }
    };
    if let Some(f) = flag {
        push(PathBuf::from(f));
    }
    if let Some(p) = get("RG_CUDA_PYTHON").filter(|v| !v.is_empty()) {
        push(PathBuf::from(p));
    }
    if let Some(venv) = get("VIRTUAL_ENV").filter(|v| !v.is_empty()) {
        push(Path::new(&venv).join("bin/python"));
    }
    if let Some(home) = get("HOME").filter(|v| !v.is_empty()) {
        push(Path::new(&home).join(CI_VENV).join("bin/python"));
    }
    push(PathBuf::from("python3"));
    out
}

fn probe(python: &Path) -> Option<Found> {
    let out = Command::new(python).args(["-c", PROBE]).output().ok()?;
    out.status
        .success()
        .then(|| Found::from_probe(&String::from_utf8_lossy(&out.stdout)))
}

/// The toolkit, or an error that says what is missing and the pip command to get it.
pub fn find(python_flag: Option<&str>, need_ptxas: bool) -> Result<Toolkit> {
    let get = |k: &str| std::env::var(k).ok();
    let env = Found::from_env(get);
    let mut found = env.clone();
    let mut source = "RG_NVRTC_LIB / RG_CUDA_INCLUDE / RG_PTXAS".to_string();
    let mut probed = Vec::new();
    if !found.complete(need_ptxas) {
        for python in python_candidates(python_flag, get) {
            let Some(p) = probe(&python) else {
                continue;
            };
            probed.push(python.display().to_string());
            let merged = env.clone().or(&p);
            let better =
                merged.nvrtc.is_some() && found.nvrtc.is_none() || merged.complete(need_ptxas);
            if better {
                found = merged;
                source = format!("the wheels of {}", python.display());
            }
            if found.complete(need_ptxas) {
                break;
            }
        }
    }
    let missing: Vec<&str> = [
        (
            "NVRTC (nvidia-cuda-nvrtc-cu12==12.4.*, or RG_NVRTC_LIB)",
            found.nvrtc.is_none(),
        ),
        (
            "CUDA headers (nvidia-cuda-runtime-cu12==12.4.*, or RG_CUDA_INCLUDE)",
            found.include.is_none(),
        ),
        (
            "ptxas (nvidia-cuda-nvcc-cu12==12.4.*, or RG_PTXAS)",
            need_ptxas && found.ptxas.is_none(),
        ),
    ]
    .into_iter()
    .filter_map(|(what, missing)| missing.then_some(what))
    .collect();
    if !missing.is_empty() {
        bail!(
            "cargo xtask kernels needs CUDA 12.4's compiler from pip wheels; not found: {}. \
             Python interpreters that answered: {}. Install them with:\n  {PIP_HINT}\n\
             (or point RG_CUDA_PYTHON at a Python that has them)",
            missing.join("; "),
            if probed.is_empty() {
                "none".to_string()
            } else {
                probed.join(", ")
            },
        );
    }
    let toolkit = Toolkit {
        nvrtc: found.nvrtc.expect("checked"),
        include: found.include.expect("checked"),
        ptxas: found.ptxas,
        source,
    };
    for (what, path) in [
        ("NVRTC", &toolkit.nvrtc),
        ("CUDA include dir", &toolkit.include),
    ] {
        if !path.exists() {
            bail!(
                "{what} {} does not exist (from {})",
                path.display(),
                toolkit.source
            );
        }
    }
    if !toolkit.include.join("cuda_bf16.h").is_file() {
        bail!(
            "{} has no cuda_bf16.h: RG_CUDA_INCLUDE must name the include dir of \
             nvidia-cuda-runtime-cu12==12.4.*",
            toolkit.include.display()
        );
    }
    Ok(toolkit)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env<'a>(pairs: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |k| {
            pairs
                .iter()
                .find(|(n, _)| *n == k)
                .map(|(_, v)| v.to_string())
        }
    }

    #[test]
    fn env_vars_win_over_the_probe() {
        let e = Found::from_env(env(&[
            ("RG_NVRTC_LIB", "/x/libnvrtc.so.12"),
            ("RG_PTXAS", ""),
        ]));
        let p = Found::from_probe(
            r#"{"nvrtc": "/py/libnvrtc.so.12", "include": "/py/include", "ptxas": "/py/ptxas"}"#,
        );
        let f = e.or(&p);
        assert_eq!(f.nvrtc, Some(PathBuf::from("/x/libnvrtc.so.12")));
        assert_eq!(f.include, Some(PathBuf::from("/py/include")));
        // An empty variable counts as unset.
        assert_eq!(f.ptxas, Some(PathBuf::from("/py/ptxas")));
        assert!(f.complete(true));
    }

    #[test]
    fn a_partial_probe_is_incomplete() {
        let f = Found::from_probe(r#"{"nvrtc": "/py/libnvrtc.so.12"}"#);
        assert!(!f.complete(false));
        let f = Found::from_probe(r#"{"nvrtc": "/a", "include": "/b"}"#);
        assert!(f.complete(false));
        assert!(!f.complete(true));
        assert!(!Found::from_probe("not json").complete(false));
    }

    #[test]
    fn python_candidates_in_order_without_duplicates() {
        let c = python_candidates(
            Some("/flag/python"),
            env(&[
                ("RG_CUDA_PYTHON", "/flag/python"),
                ("VIRTUAL_ENV", "/venv"),
                ("HOME", "/home/u"),
            ]),
        );
        let want: Vec<PathBuf> = [
            "/flag/python",
            "/venv/bin/python",
            "/home/u/.cache/rusty-gradients/cuda-venv/bin/python",
            "python3",
        ]
        .iter()
        .map(PathBuf::from)
        .collect();
        assert_eq!(c, want);
    }
}
