//! What a run records: the commit and machine, `results.json`, and the Markdown table
//! between the markers of `docs/PERFORMANCE.md`.

use std::path::Path;
use std::process::Command;

use anyhow::{Context, Result};
use serde_json::{json, Value};

use super::matrix::Row;
use super::peers::{PeerResult, PeerRun};
use super::roofline::Roofline;
use super::run::Ours;

/// The markers around one generated section of `docs/PERFORMANCE.md`, and the heading
/// put above them when the file has none yet. CPU figures are kept per CPU model (one
/// table per machine seen: a run replaces only its own CPU's table); the CUDA section
/// is one.
pub struct Markers {
    pub start: String,
    pub end: String,
    pub heading: String,
}

impl Markers {
    pub fn for_device(device: &str, cpu_model: &str) -> Markers {
        match device {
            "cuda" => Markers {
                start: "<!-- bench-matrix-cuda:start -->".into(),
                end: "<!-- bench-matrix-cuda:end -->".into(),
                heading: "## CUDA benchmark matrix".into(),
            },
            _ => {
                let slug = slug(cpu_model);
                Markers {
                    start: format!("<!-- bench-matrix:{slug}:start -->"),
                    end: format!("<!-- bench-matrix:{slug}:end -->"),
                    heading: format!("### {cpu_model}"),
                }
            }
        }
    }
}

/// `"Intel(R) Xeon(R) Processor"` -> `"intel-r-xeon-r-processor"`.
fn slug(s: &str) -> String {
    let mut out = String::new();
    for c in s.chars() {
        if c.is_ascii_alphanumeric() {
            out.push(c.to_ascii_lowercase());
        } else if !out.ends_with('-') && !out.is_empty() {
            out.push('-');
        }
    }
    out.trim_end_matches('-').to_string()
}

/// One row of the table: our measurement and the peers' for the same workload and size.
pub struct RowResult {
    pub row: Row,
    pub ours: Ours,
    pub peers: Vec<PeerResult>,
}

impl RowResult {
    /// Our rate in the row's display unit (FLOP/s, bytes/s or tokens/s, scaled).
    pub fn rate(&self) -> Option<f64> {
        let s = self.ours.stats?;
        Some(self.ours.work / s.median / self.row.rate_scale)
    }

    pub fn peer_rate(&self, p: &PeerResult) -> Option<f64> {
        let s = p.stats?;
        Some(p.work / s.median / self.row.rate_scale)
    }

    /// Our rate over the peer's: above 1 we are faster.
    pub fn ratio(&self, p: &PeerResult) -> Option<f64> {
        Some(self.rate()? / self.peer_rate(p)?)
    }

    /// The same ratio between the two fastest repetitions: on a shared machine a slow
    /// repetition is mostly time spent waiting for a core, so this one says more about
    /// the code and less about the neighbours (it favours neither side).
    pub fn ratio_best(&self, p: &PeerResult) -> Option<f64> {
        let (ours, peer) = (self.ours.stats?, p.stats?);
        Some((self.ours.work / ours.min) / (p.work / peer.min))
    }
}

/// `/proc/loadavg`'s 1, 5 and 15 minute figures.
pub fn load_average() -> Option<[f64; 3]> {
    let s = std::fs::read_to_string("/proc/loadavg").ok()?;
    let mut it = s.split_whitespace().map(|x| x.parse::<f64>().ok());
    Some([it.next()??, it.next()??, it.next()??])
}

fn command_line(program: &str, args: &[&str], dir: &Path) -> Option<String> {
    let out = Command::new(program)
        .args(args)
        .current_dir(dir)
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// `git rev-parse --short HEAD`, with `-dirty` when tracked files have changes.
pub fn commit(root: &Path) -> String {
    // A checkout without .git (a GPU machine's copy) names its commit this way.
    if let Some(c) = std::env::var("RG_BENCH_COMMIT")
        .ok()
        .filter(|c| !c.is_empty())
    {
        return c;
    }
    let hash = command_line("git", &["rev-parse", "--short", "HEAD"], root)
        .unwrap_or_else(|| "unknown".into());
    let dirty = command_line(
        "git",
        &["status", "--porcelain", "--untracked-files=no"],
        root,
    )
    .is_some_and(|s| !s.is_empty());
    if dirty {
        format!("{hash}-dirty")
    } else {
        hash
    }
}

pub fn now_utc(root: &Path) -> String {
    command_line("date", &["-u", "+%Y-%m-%dT%H:%M:%SZ"], root).unwrap_or_else(|| {
        let secs = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        format!("unix {secs}")
    })
}

/// CPU model, cores, SIMD level, memory and kernel, from /proc.
pub fn machine() -> Value {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let field = |name: &str| {
        cpuinfo
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_once(':'))
            .map(|(_, v)| v.trim().to_string())
    };
    let flags = field("flags").unwrap_or_default();
    let has = |f: &str| flags.split_whitespace().any(|x| x == f);
    // The features the kernels choose between (f32 FMA width, bf16 dot products, AMX
    // tiles, int8 dot products, fp16 arithmetic), in /proc/cpuinfo's spelling.
    let features: Vec<&str> = [
        "avx2",
        "fma",
        "avx512f",
        "avx512_bf16",
        "avx512_fp16",
        "avx512_vnni",
        "avx_vnni",
        "amx_tile",
        "amx_bf16",
        "amx_int8",
    ]
    .into_iter()
    .filter(|f| has(f))
    .collect();
    let mem_kb = std::fs::read_to_string("/proc/meminfo").ok().and_then(|m| {
        m.lines()
            .find(|l| l.starts_with("MemTotal:"))
            .and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
    });
    let number = |name: &str| field(name).and_then(|v| v.parse::<u32>().ok());
    let core = match (number("cpu family"), number("model")) {
        (Some(family), Some(model)) => json!({
            "family": family,
            "model": model,
            "name": core_name(field("vendor_id").as_deref(), family, model, has("avx512f")),
        }),
        _ => Value::Null,
    };
    json!({
        "cpu_model": field("model name").unwrap_or_else(|| "unknown".into()),
        "cpu_core": core,
        "cores": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
        "avx2": has("avx2"),
        "avx512f": has("avx512f"),
        "features": features,
        "mem_total_gb": mem_kb.map(|kb| kb as f64 / 1024.0 / 1024.0),
        "kernel": std::fs::read_to_string("/proc/sys/kernel/osrelease").ok().map(|s| s.trim().to_string()),
        "gpu": gpu(),
    })
}

/// The core generation behind a CPU family/model pair, for the families sessions have
/// run on: cloud machines report one model name ("AMD EPYC") for Zen 3 and Zen 4, whose
/// kernels (AVX2 vs AVX-512) and figures differ.
fn core_name(vendor: Option<&str>, family: u32, model: u32, avx512f: bool) -> Option<&'static str> {
    match (vendor?, family, model) {
        ("AuthenticAMD", 0x17, _) => Some("Zen 2"),
        ("AuthenticAMD", 0x19, _) if avx512f => Some("Zen 4"),
        ("AuthenticAMD", 0x19, _) => Some("Zen 3"),
        ("AuthenticAMD", 0x1a, _) => Some("Zen 5"),
        ("GenuineIntel", 6, 85) => Some("Skylake/Cascade Lake"),
        ("GenuineIntel", 6, 106) => Some("Ice Lake"),
        ("GenuineIntel", 6, 143) => Some("Sapphire Rapids"),
        ("GenuineIntel", 6, 207) => Some("Emerald Rapids"),
        ("GenuineIntel", 6, 173) => Some("Granite Rapids"),
        _ => None,
    }
}

/// The CPU model with its core generation ("AMD EPYC (Zen 3)"), or with its family and
/// model numbers when the generation is not known here: the key of a machine's table.
pub fn cpu_label(m: &Value) -> String {
    let cpu = m["cpu_model"].as_str().unwrap_or("unknown CPU");
    let core = &m["cpu_core"];
    match (
        core["name"].as_str(),
        core["family"].as_u64(),
        core["model"].as_u64(),
    ) {
        (Some(name), _, _) => format!("{cpu} ({name})"),
        (None, Some(family), Some(model)) => format!("{cpu} (family {family}, model {model})"),
        _ => cpu.to_string(),
    }
}

/// The first GPU as `nvidia-smi` names it (name, driver, memory), or null.
fn gpu() -> Value {
    let out = Command::new("nvidia-smi")
        .args([
            "--query-gpu=name,driver_version,memory.total",
            "--format=csv,noheader",
        ])
        .output();
    let Ok(out) = out else {
        return Value::Null;
    };
    let text = String::from_utf8_lossy(&out.stdout);
    let Some(line) = text.lines().next().filter(|_| out.status.success()) else {
        return Value::Null;
    };
    let f: Vec<&str> = line.split(',').map(str::trim).collect();
    json!({ "name": f.first(), "driver": f.get(1), "memory": f.get(2) })
}

/// The CPU model, and the GPU when there is one.
pub fn machine_label(m: &Value) -> String {
    let cpu = cpu_label(m);
    match m["gpu"]["name"].as_str() {
        Some(gpu) => format!("{gpu} ({cpu})"),
        None => cpu.to_string(),
    }
}

fn peer_json(r: &RowResult, p: &PeerResult) -> Value {
    json!({
        "peer": p.peer,
        "stats": p.stats.map(|s| s.to_json()),
        "work": p.work,
        "rate": r.peer_rate(p),
        "peak_rss_bytes": p.peak_rss_bytes,
        "ratio": r.ratio(p),
        "ratio_best": r.ratio_best(p),
        "skipped": p.skipped,
    })
}

pub fn row_json(r: &RowResult) -> Value {
    let (row, ours) = (&r.row, &r.ours);
    json!({
        "name": row.workload,
        "size": row.size,
        "backend": row.backend.name(),
        "matmul_path": ours.matmul_path,
        "weight_bytes_per_token": ours.weight_bytes_per_token,
        "dtype": row.dtype,
        "unit": "s",
        "stats": ours.stats.map(|s| s.to_json()),
        "times_s": ours.times_s,
        "warmup": row.reps.warmup,
        "warmup_s": row.reps.warmup_s,
        "work": ours.work,
        "work_unit": ours.work_unit,
        "rate": r.rate(),
        "rate_unit": row.rate_unit,
        "peak_rss_bytes": ours.peak_rss_bytes,
        "load_avg_before": ours.load_before,
        "skipped": ours.skipped,
        "peers": r.peers.iter().map(|p| peer_json(r, p)).collect::<Vec<_>>(),
    })
}

/// Three significant digits, without exponent notation for ordinary magnitudes.
pub fn sig3(x: f64) -> String {
    if x == 0.0 || !x.is_finite() {
        return format!("{x}");
    }
    let digits = (2 - x.abs().log10().floor() as i32).max(0) as usize;
    format!("{x:.digits$}")
}

pub fn fmt_time(s: f64) -> String {
    match s {
        s if s < 1e-3 => format!("{} µs", sig3(s * 1e6)),
        s if s < 1.0 => format!("{} ms", sig3(s * 1e3)),
        s => format!("{} s", sig3(s)),
    }
}

/// min–max in the unit of the median, so the spread reads at a glance.
fn fmt_spread(median: f64, min: f64, max: f64) -> String {
    let (scale, unit) = match median {
        m if m < 1e-3 => (1e6, "µs"),
        m if m < 1.0 => (1e3, "ms"),
        _ => (1.0, "s"),
    };
    format!("{}–{} {unit}", sig3(min * scale), sig3(max * scale))
}

fn fmt_bytes(b: u64) -> String {
    let b = b as f64;
    if b >= 1e9 {
        format!("{} GB", sig3(b / 1e9))
    } else {
        format!("{} MB", sig3(b / 1e6))
    }
}

fn peer_cell(r: &RowResult, p: Option<&PeerResult>) -> (String, String) {
    let Some(p) = p else {
        return (String::new(), String::new());
    };
    if let Some(why) = &p.skipped {
        return (format!("{}: skipped ({why})", p.peer), String::new());
    }
    let mut cell = format!(
        "{}: {} {}",
        p.peer,
        r.peer_rate(p).map(sig3).unwrap_or_default(),
        r.row.rate_unit
    );
    if let Some(rss) = p.peak_rss_bytes {
        cell.push_str(&format!(", {}", fmt_bytes(rss)));
    }
    let ratio = match (r.ratio(p), r.ratio_best(p)) {
        (Some(m), Some(b)) => format!("{}× ({}×)", sig3(m), sig3(b)),
        _ => String::new(),
    };
    (cell, ratio)
}

/// The Markdown table, one line per row.
pub fn table(results: &[RowResult], with_peers: bool, roof: &Roofline) -> String {
    let mut out = String::from(
        "| workload | size | backend | dtype | median | min–max | reps | rate | of limit | peak RSS |",
    );
    if with_peers {
        out.push_str(" PyTorch | ours/PyTorch | other peer | ours/other |");
    }
    out.push('\n');
    out.push_str("| --- | --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |");
    if with_peers {
        out.push_str(" --- | ---: | --- | ---: |");
    }
    out.push('\n');
    for r in results {
        let (row, ours) = (&r.row, &r.ours);
        // Matmul rows name the engine that ran, not only the build.
        let backend = match (&ours.matmul_path, row.workload) {
            (Some(engine), "matmul") => format!("{} ({engine})", row.backend.name()),
            _ => row.backend.name().to_string(),
        };
        let head = format!(
            "| {} | {} | {} | {} |",
            row.workload, row.size, backend, row.dtype
        );
        let body = match (&ours.skipped, ours.stats) {
            (Some(why), _) => format!(" skipped: {why} | | | | | |"),
            (None, None) => " no repetitions | | | | | |".to_string(),
            (None, Some(s)) => format!(
                " {} | {} | {} | {} {} | {} | {} |",
                fmt_time(s.median),
                fmt_spread(s.median, s.min, s.max),
                s.n,
                r.rate().map(sig3).unwrap_or_default(),
                row.rate_unit,
                roof.cell(r),
                match ours.peak_rss_bytes {
                    Some(b) if row.rss_matters => fmt_bytes(b),
                    _ => String::new(),
                }
            ),
        };
        out.push_str(&head);
        out.push_str(&body);
        if with_peers {
            let torch = r.peers.iter().find(|p| p.is_pytorch());
            let other = r.peers.iter().find(|p| !p.is_pytorch());
            let (tc, tr) = peer_cell(r, torch);
            let (oc, or) = peer_cell(r, other);
            out.push_str(&format!(" {tc} | {tr} | {oc} | {or} |"));
        }
        out.push('\n');
    }
    out
}

/// Replaces the text between the markers (creating the file or the markers if
/// needed); the rest of the file belongs to others and is kept byte for byte.
pub fn write_section(path: &Path, section: &str, m: &Markers) -> Result<()> {
    let old = std::fs::read_to_string(path).unwrap_or_default();
    let (start, end) = (m.start.as_str(), m.end.as_str());
    let block = format!("{start}\n{section}{end}");
    let new = match (old.find(start), old.find(end)) {
        (Some(a), Some(b)) if a < b => format!("{}{block}{}", &old[..a], &old[b + end.len()..]),
        _ if old.is_empty() => {
            format!("# RustyGradients performance\n\n{}\n\n{block}\n", m.heading)
        }
        _ => format!("{}\n\n{}\n\n{block}\n", old.trim_end(), m.heading),
    };
    std::fs::write(path, new).with_context(|| format!("writing {}", path.display()))
}

/// What the text around the table says.
pub struct SectionInfo<'a> {
    pub args: &'a [String],
    pub commit: &'a str,
    pub date: &'a str,
    pub machine: &'a Value,
    pub load_start: Option<[f64; 3]>,
    pub load_end: Option<[f64; 3]>,
    pub wall_s: f64,
    pub peers: Option<&'a PeerRun>,
    pub peers_skipped: Option<&'a str>,
    pub table: &'a str,
    /// The run's measured limits (`Roofline::summary`).
    pub roofline: &'a str,
    /// Where the raw figures (and the chart) of this run are.
    pub files_note: &'a str,
}

fn fmt_load(l: Option<[f64; 3]>) -> String {
    l.map(|l| format!("{} {} {}", l[0], l[1], l[2]))
        .unwrap_or_else(|| "?".into())
}

/// The whole generated section: provenance, how to read it, the table.
pub fn section_text(s: &SectionInfo) -> String {
    let m = s.machine;
    let mut out = String::new();
    out.push_str(&format!(
        "Generated by `cargo xtask bench {}` (do not edit between the markers: every run replaces this section; \
         {}).\n\n",
        s.args.join(" "),
        s.files_note
    ));
    out.push_str(&format!(
        "- commit `{}`, {}; measuring took {:.0} s\n",
        s.commit, s.date, s.wall_s
    ));
    let features: Vec<&str> = m["features"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    out.push_str(&format!(
        "- machine: {}, {} cores, {:.0} GB RAM, Linux {}; CPU features: {} (FMA units per core are not \
         reported by the OS: the best GEMM rate below is the measured f32 ceiling)\n",
        cpu_label(m),
        m["cores"],
        m["mem_total_gb"].as_f64().unwrap_or(0.0),
        m["kernel"].as_str().unwrap_or("?"),
        if features.is_empty() {
            "none of note".to_string()
        } else {
            features.join(", ")
        },
    ));
    out.push_str(&format!(
        "- roofline of this run: {}. Column \"of limit\": a FLOP row's rate over the best GEMM rate of its dtype, \
         a byte row's (bytes read + written) and a decode row's (weight bytes per token × tokens/s) over the memory read bandwidth\n",
        s.roofline
    ));
    if let Some(name) = m["gpu"]["name"].as_str() {
        out.push_str(&format!(
            "- GPU: {name}, driver {}, {}\n",
            m["gpu"]["driver"].as_str().unwrap_or("?"),
            m["gpu"]["memory"].as_str().unwrap_or("?")
        ));
    }
    out.push_str(&format!(
        "- load average (1/5/15 min): {} at the start, {} at the end. Above the core count \
         other processes were competing for the cores: absolute figures are then low and noisy. \
         Each row's peers ran right after it, so ratios are less affected than rates, but not immune.\n",
        fmt_load(s.load_start),
        fmt_load(s.load_end)
    ));
    match (s.peers, s.peers_skipped) {
        (Some(p), _) => {
            let v = &p.versions;
            let ver = |k: &str| v[k].as_str().unwrap_or("absent").to_string();
            if let Some(gpu) = v["gpu"].as_str() {
                out.push_str(&format!(
                    "- PyTorch's GPU: {gpu}, torch built for CUDA {}\n",
                    v["torch_cuda"].as_str().unwrap_or("?")
                ));
            }
            out.push_str(&format!(
                "- peers (`scripts/bench_peers.py`, {}): torch {} ({} threads{}), transformers {}, numpy {} \
                 (its bundled OpenBLAS, with OPENBLAS_CORETYPE/OPENBLAS_L2_SIZE unset), tiktoken {}, safetensors {}\n",
                p.python,
                ver("torch"),
                v["torch_threads"],
                if v["torch_mkl"] == true { ", MKL" } else { "" },
                ver("transformers"),
                ver("numpy"),
                ver("tiktoken"),
                ver("safetensors"),
            ));
        }
        (None, Some(why)) => out.push_str(&format!("- peers skipped: {why}\n")),
        (None, None) => {}
    }
    out.push_str(
        "- median over the repetitions after warm-up, with min–max; rate = work of one repetition \
         (FLOPs, bytes read + written, tokens) / median. Ratios are our rate / the peer's (above 1 we are faster), from the medians and, \
         in parentheses, from the fastest repetitions (less sensitive to other processes). \
         Backend `cpu` is the default build; matmul rows name the engine that ran (rg-cpu's packed GEMM and its \
         micro-kernel, `matrixmultiply` or OpenBLAS); `--blas` adds `cpu-blas` f32 matmul rows \
         (`--features blas`, the system OpenBLAS). Peak RSS is the row's process high-water mark (VmHWM, model initialisation included); \
         the PyTorch GPT-2 training step's is measured the same way.\n\n",
    );
    out.push_str(s.table);
    out
}
