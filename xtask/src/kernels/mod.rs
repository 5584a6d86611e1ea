//! `cargo xtask kernels`: compiles `kernels/*.cu` to PTX with NVRTC 12.4 into
//! `kernels/ptx/<stem>.<arch>.ptx` (committed, so users need no CUDA compiler).
//!
//! CUDA 12.4's NVRTC emits PTX ISA 8.4, which every driver from CUDA 12.4 on loads.
//! `--check` compiles into memory and fails naming every stale, missing or orphaned
//! file; `--ptxas` assembles each file with CUDA 12.4's `ptxas` for its architecture to
//! catch what NVRTC lets through (register or shared-memory limits, bad inline PTX).
//!
//! Layout: `toolkit.rs` (finding the pip wheels), `nvrtc.rs` (NVRTC loaded at run
//! time), `ptx.rs` (options, normalisation, staleness).

mod nvrtc;
mod ptx;
mod toolkit;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::{bail, Context, Result};

use crate::paths::workspace_root;

const USAGE: &str =
    "usage: cargo xtask kernels [--check] [--ptxas] [--verbose] [--python PATH] [--dir DIR]

  (no flag)      compile kernels/*.cu into kernels/ptx/<stem>.<arch>.ptx (sm_80 and sm_90)
  --check        compile in memory; fail naming every stale, missing or orphaned PTX file
  --ptxas        also assemble every PTX file with ptxas for its architecture
  --verbose      print ptxas's resource usage (registers, shared memory, spills)
  --python PATH  a Python with the CUDA 12.4 wheels (else $RG_CUDA_PYTHON, $VIRTUAL_ENV,
                 ~/.cache/rusty-gradients/cuda-venv, python3)
  --dir DIR      the kernel sources (default: kernels/ of the workspace); PTX goes to DIR/ptx

NVRTC, headers and ptxas come from pip wheels (or RG_NVRTC_LIB, RG_CUDA_INCLUDE, RG_PTXAS):
  python3 -m venv ~/.cache/rusty-gradients/cuda-venv
  ~/.cache/rusty-gradients/cuda-venv/bin/pip install nvidia-cuda-nvrtc-cu12==12.4.127 \\
      nvidia-cuda-runtime-cu12==12.4.127 nvidia-cuda-nvcc-cu12==12.4.131";

struct Options {
    check: bool,
    ptxas: bool,
    verbose: bool,
    python: Option<String>,
    dir: Option<PathBuf>,
}

fn parse(args: &[String]) -> Result<Options> {
    let mut o = Options {
        check: false,
        ptxas: false,
        verbose: false,
        python: None,
        dir: None,
    };
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut value = || {
            it.next()
                .with_context(|| format!("{a} needs a value\n{USAGE}"))
        };
        match a.as_str() {
            "--check" => o.check = true,
            "--ptxas" => o.ptxas = true,
            "--verbose" | "-v" => o.verbose = true,
            "--python" => o.python = Some(value()?.clone()),
            "--dir" => o.dir = Some(PathBuf::from(value()?)),
            "-h" | "--help" => {
                println!("{USAGE}");
                std::process::exit(0);
            }
            other => bail!("unknown flag {other:?}\n{USAGE}"),
        }
    }
    Ok(o)
}

/// One compiled file: where it goes, its target, and its normalised text.
struct Output {
    file: String,
    arch: String,
    text: String,
}

/// `*.cu` in `dir`, sorted by name, as (stem, path).
fn sources(dir: &Path) -> Result<Vec<(String, PathBuf)>> {
    let mut out = Vec::new();
    if !dir.is_dir() {
        return Ok(out);
    }
    for entry in std::fs::read_dir(dir).with_context(|| format!("listing {}", dir.display()))? {
        let path = entry?.path();
        if path.extension().is_some_and(|e| e == "cu") {
            let stem = path
                .file_stem()
                .expect("has extension")
                .to_string_lossy()
                .into_owned();
            out.push((stem, path));
        }
    }
    out.sort();
    Ok(out)
}

/// Every `*.ptx` under `ptx_dir`, by file name.
fn committed(ptx_dir: &Path) -> Result<BTreeMap<String, String>> {
    let mut out = BTreeMap::new();
    if !ptx_dir.is_dir() {
        return Ok(out);
    }
    for entry in std::fs::read_dir(ptx_dir)? {
        let path = entry?.path();
        if path.extension().is_some_and(|e| e == "ptx") {
            let name = path
                .file_name()
                .expect("a file")
                .to_string_lossy()
                .into_owned();
            let text = std::fs::read_to_string(&path)
                .with_context(|| format!("reading {}", path.display()))?;
            out.insert(name, text);
        }
    }
    Ok(out)
}

fn compile_all(
    nvrtc: &nvrtc::Nvrtc,
    dir: &Path,
    include: &Path,
    srcs: &[(String, PathBuf)],
) -> Result<Vec<Output>> {
    let include_dirs = [dir.display().to_string(), include.display().to_string()];
    let mut out = Vec::new();
    for (stem, path) in srcs {
        let source =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        let archs = ptx::archs(&source).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
        for arch in archs {
            let (portable, includes) = ptx::options(&arch, &include_dirs);
            let all: Vec<String> = portable.iter().chain(&includes).cloned().collect();
            // A relative name: it is all NVRTC may record of the source.
            let name = format!("kernels/{stem}.cu");
            let start = Instant::now();
            let compiled = nvrtc
                .compile(&name, &source, &all)
                .with_context(|| format!("{name} for {arch}"))?;
            let log = compiled.log.trim();
            if !log.is_empty() {
                eprintln!("kernels: {name} ({arch}) warnings:\n{log}");
            }
            eprintln!(
                "kernels: {name} -> {} ({:.1} s)",
                ptx::file_name(stem, &arch),
                start.elapsed().as_secs_f64()
            );
            out.push(Output {
                file: ptx::file_name(stem, &arch),
                text: ptx::normalise(stem, &arch, &portable, &compiled.ptx),
                arch,
            });
        }
    }
    Ok(out)
}

/// Writes changed files and removes orphans; untouched files keep their mtimes.
fn write_all(ptx_dir: &Path, outputs: &[Output]) -> Result<()> {
    std::fs::create_dir_all(ptx_dir)?;
    let old = committed(ptx_dir)?;
    for o in outputs {
        if old.get(&o.file) != Some(&o.text) {
            std::fs::write(ptx_dir.join(&o.file), &o.text)?;
            println!("kernels: wrote {}", ptx_dir.join(&o.file).display());
        }
    }
    for name in old
        .keys()
        .filter(|n| !outputs.iter().any(|o| &o.file == *n))
    {
        std::fs::remove_file(ptx_dir.join(name))?;
        println!("kernels: removed {name} (no source produces it)");
    }
    Ok(())
}

/// Assembles each output with `ptxas -arch=<arch>`; returns the failures.
fn assemble_all(ptxas: &Path, outputs: &[Output], verbose: bool) -> Result<Vec<String>> {
    let tmp = std::env::temp_dir().join(format!("rg-xtask-ptxas-{}", std::process::id()));
    std::fs::create_dir_all(&tmp)?;
    let mut failures = Vec::new();
    for o in outputs {
        let input = tmp.join(&o.file);
        std::fs::write(&input, &o.text)?;
        let mut cmd = Command::new(ptxas);
        cmd.arg(format!("-arch={}", o.arch))
            .arg(&input)
            .arg("-o")
            .arg(tmp.join("out.cubin"));
        if verbose {
            cmd.arg("-v");
        }
        let out = cmd
            .output()
            .with_context(|| format!("running {}", ptxas.display()))?;
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        if !out.status.success() {
            eprintln!(
                "kernels: ptxas -arch={} {}: FAILED\n{}",
                o.arch,
                o.file,
                text.trim_end()
            );
            failures.push(o.file.clone());
        } else if verbose || !text.trim().is_empty() {
            eprintln!(
                "kernels: ptxas -arch={} {}:\n{}",
                o.arch,
                o.file,
                text.trim_end()
            );
        } else {
            eprintln!("kernels: ptxas -arch={} {}: ok", o.arch, o.file);
        }
    }
    let _ = std::fs::remove_dir_all(&tmp);
    Ok(failures)
}

pub fn run(args: &[String]) -> Result<()> {
    let o = parse(args)?;
    let root = workspace_root();
    let dir = o.dir.clone().unwrap_or_else(|| root.join("kernels"));
    let ptx_dir = dir.join("ptx");
    let srcs = sources(&dir)?;
    if srcs.is_empty() {
        let stray = committed(&ptx_dir)?;
        if o.check && !stray.is_empty() {
            bail!(
                "{} has PTX files but {} has no *.cu: {}",
                ptx_dir.display(),
                dir.display(),
                stray.keys().cloned().collect::<Vec<_>>().join(", ")
            );
        }
        println!("kernels: no {}/*.cu; nothing to compile", dir.display());
        return Ok(());
    }

    let tk = toolkit::find(o.python.as_deref(), o.ptxas)?;
    let nvrtc = nvrtc::Nvrtc::load(&tk.nvrtc)?;
    let version = nvrtc.version()?;
    if version != (12, 4) {
        bail!(
            "{} is NVRTC {}.{}; the committed PTX must come from 12.4 (PTX ISA 8.4, loadable \
             by drivers from CUDA 12.4 on). Install:\n  {}",
            tk.nvrtc.display(),
            version.0,
            version.1,
            toolkit::PIP_HINT
        );
    }
    eprintln!("kernels: NVRTC 12.4 from {}", tk.source);
    let outputs = compile_all(&nvrtc, &dir, &tk.include, &srcs)?;

    let mut failed = Vec::new();
    if o.check {
        let fresh: BTreeMap<String, String> = outputs
            .iter()
            .map(|o| (o.file.clone(), o.text.clone()))
            .collect();
        let problems = ptx::compare(&fresh, &committed(&ptx_dir)?);
        for p in &problems {
            eprintln!("kernels: {p}");
        }
        if !problems.is_empty() {
            failed.push(format!(
                "{} PTX file(s) out of date with kernels/*.cu: run `cargo xtask kernels` and commit kernels/ptx",
                problems.len()
            ));
        } else {
            println!("kernels: {} PTX files up to date", outputs.len());
        }
    } else {
        write_all(&ptx_dir, &outputs)?;
    }
    if o.ptxas {
        let ptxas = tk.ptxas.as_ref().expect("find() checked");
        let bad = assemble_all(ptxas, &outputs, o.verbose)?;
        if bad.is_empty() {
            println!("kernels: ptxas assembled all {} files", outputs.len());
        } else {
            failed.push(format!("ptxas rejected {}", bad.join(", ")));
        }
    }
    if !failed.is_empty() {
        bail!("{}", failed.join("; "));
    }
    Ok(())
}
