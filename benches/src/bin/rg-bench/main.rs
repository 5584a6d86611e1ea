//! `rg-bench`: runs one row of the benchmark matrix and prints one JSON object.
//!
//!     rg-bench WORKLOAD SIZE [--warmup N] [--warmup-s S] [--min-reps N] [--max-reps N]
//!              [--budget-s S] [--device cpu|cuda] [--dtype f32|tf32|bf16] [--inner N]
//!
//! `cargo xtask bench` starts one process per row so that each row's peak resident
//! memory (VmHWM) is its own and one row's allocations cannot slow the next. Output:
//! `{"times_s": [...], "work": W, "work_unit": "flop"|"byte"|"token", "peak_rss_bytes":
//! N, "matmul": ENGINE, "weight_bytes_per_token": B}` (ENGINE as `rg_cpu::matmul_engine`
//! names the path that runs, or "cublas"; the weight bytes only for decode rows), or `{"skipped": "why"}` (exit 0) when a
//! row cannot run here (e.g. the shared data is absent, or `--device cuda` finds no
//! CUDA device). On CUDA every timed repetition ends with a device synchronisation, and
//! `--inner N` runs the workload N times per repetition (reporting the mean), so short
//! kernels are timed without one synchronisation per launch. With `RG_PROFILE=1` the
//! time spent in each backend op over the measured repetitions goes to stderr.

mod io;
mod model;
mod ops;
mod probe;
mod target;

use std::time::Instant;

use anyhow::{bail, Context, Result};
use serde_json::{json, Value};

use target::Target;

/// How many times to run a workload. Untimed warm-up runs continue until `warmup` are
/// done and `warmup_s` has passed; timed repetitions until `min_reps` are done and
/// either `max_reps` are done or `budget_s` has passed, so slow rows stay short and
/// fast rows get enough samples for a stable median on a noisy machine.
///
/// Why warm up by time: each row runs in a fresh process, and on the cloud VMs seen
/// (AMD EPYC Zen 3) a core that was idle runs the first ~0.15 s of work at about two
/// thirds of its later speed (`rg-bench matmul 256`, medians per 100 products, one
/// thread: 61 60 89 89 90 ... GFLOP/s). A peer's process has been busy importing
/// PyTorch before its first row, so a count of warm-up runs alone timed ours cold.
#[derive(Debug, Clone, Copy)]
pub struct Reps {
    pub warmup: usize,
    pub warmup_s: f64,
    pub min_reps: usize,
    pub max_reps: usize,
    pub budget_s: f64,
}

impl Reps {
    /// Runs `f`, which returns the seconds one repetition took (measured by the
    /// caller when only part of the call counts, e.g. generation's decode phase).
    pub fn run_timed(&self, mut f: impl FnMut() -> Result<f64>) -> Result<Vec<f64>> {
        let warming = Instant::now();
        let mut warmed = 0;
        while warmed < self.warmup || warming.elapsed().as_secs_f64() < self.warmup_s {
            f()?;
            warmed += 1;
        }
        rusty_gradients::core::profile::reset();
        let start = Instant::now();
        let mut times = Vec::new();
        while times.len() < self.min_reps
            || (times.len() < self.max_reps && start.elapsed().as_secs_f64() < self.budget_s)
        {
            times.push(f()?);
        }
        Ok(times)
    }

    /// Runs `f` and times the whole call.
    pub fn run(&self, mut f: impl FnMut() -> Result<()>) -> Result<Vec<f64>> {
        self.run_timed(|| {
            let t = Instant::now();
            f()?;
            Ok(t.elapsed().as_secs_f64())
        })
    }
}

/// What a workload measured: per-repetition seconds and the work one repetition does.
pub struct Measured {
    pub times_s: Vec<f64>,
    pub work: f64,
    pub work_unit: &'static str,
    /// Decode rows: bytes of weights one token reads (for the memory-bandwidth roofline).
    pub weight_bytes_per_token: Option<f64>,
    /// The engine that ran the row's products, where it is not the target's matmul
    /// engine (the Q8_0 decode kernels).
    pub engine: Option<&'static str>,
}

impl Measured {
    pub fn new(times_s: Vec<f64>, work: f64, work_unit: &'static str) -> Self {
        Measured {
            times_s,
            work,
            work_unit,
            weight_bytes_per_token: None,
            engine: None,
        }
    }
}

pub enum Outcome {
    Measured(Measured),
    Skipped(String),
}

fn run_workload(name: &str, size: &str, reps: &Reps, target: &Target) -> Result<Outcome> {
    if let Some(why) = target.unsupported(name) {
        return Ok(Outcome::Skipped(why));
    }
    if target.is_cuda() {
        let m = match name {
            "matmul" => ops::matmul_on(size, reps, target)?,
            "gpt2_train_step" => model::train_step_on("gpt2", size, reps, target)?,
            "gpt2_decode" => model::decode_on(size, reps, target)?,
            other => bail!("workload {other:?} has no CUDA row"),
        };
        return Ok(Outcome::Measured(m));
    }
    let m = match name {
        "memory_read" => probe::memory_read(size, reps)?,
        "matmul" => ops::matmul_on(size, reps, target)?,
        "softmax" => ops::softmax(size, reps)?,
        "layer_norm" => ops::layer_norm(size, reps)?,
        "gelu" => ops::gelu(size, reps)?,
        "attention_fwd_bwd" => ops::attention(size, reps)?,
        "attention_fused_fwd_bwd" => ops::fused_attention(size, reps)?,
        "adamw_step" => ops::adamw(size, reps)?,
        "gpt2_train_step" => model::train_step_on("gpt2", size, reps, target)?,
        "nanogpt_char_train_step" => model::train_step_on("nano", size, reps, target)?,
        "gpt2_prefill" => model::prefill(size, reps)?,
        "gpt2_decode" => model::decode(size, rusty_gradients::DType::F32, reps)?,
        "gpt2_decode_bf16" => model::decode(size, rusty_gradients::DType::BF16, reps)?,
        "gpt2_decode_q8_0" => model::decode_q8_0(size, reps)?,
        "tokenizer_encode" => return io::tokenizer_encode(size, reps),
        "safetensors_open" => io::safetensors_open(size, reps)?,
        other => bail!("unknown workload {other:?}"),
    };
    Ok(Outcome::Measured(m))
}

/// Peak resident set size of this process so far (Linux `VmHWM`), in bytes.
fn peak_rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

fn parse_args() -> Result<(String, String, Reps, Target)> {
    let mut args = std::env::args().skip(1);
    let (Some(name), Some(size)) = (args.next(), args.next()) else {
        bail!("usage: rg-bench WORKLOAD SIZE [--warmup N] [--warmup-s S] [--min-reps N] [--max-reps N] [--budget-s S] [--device cpu|cuda] [--dtype f32|tf32|bf16] [--inner N]");
    };
    let (mut device, mut dtype, mut inner) = ("cpu".to_string(), "f32".to_string(), 1usize);
    let mut reps = Reps {
        warmup: 1,
        warmup_s: 0.0,
        min_reps: 3,
        max_reps: 10,
        budget_s: 5.0,
    };
    while let Some(flag) = args.next() {
        let value = args
            .next()
            .with_context(|| format!("{flag} needs a value"))?;
        let bad = || format!("{flag}: {value:?} is not a number");
        match flag.as_str() {
            "--warmup" => reps.warmup = value.parse().with_context(bad)?,
            "--warmup-s" => reps.warmup_s = value.parse().with_context(bad)?,
            "--min-reps" => reps.min_reps = value.parse().with_context(bad)?,
            "--max-reps" => reps.max_reps = value.parse().with_context(bad)?,
            "--budget-s" => reps.budget_s = value.parse().with_context(bad)?,
            "--device" => device = value,
            "--dtype" => dtype = value,
            "--inner" => inner = value.parse().with_context(bad)?,
            other => bail!("unknown flag {other:?}"),
        }
    }
    reps.min_reps = reps.min_reps.max(1);
    let target = Target::new(&device, &dtype, inner)?;
    Ok((name, size, reps, target))
}

fn main() -> Result<()> {
    // As `rgrad` does: ops issued from this thread run as pool work (no wake-ups).
    rusty_gradients::register_backends();
    rusty_gradients::cpu::init_thread_pool()?;
    let (name, size, reps, target) = parse_args()?;
    let out: Value = match run_workload(&name, &size, &reps, &target)
        .with_context(|| format!("{name} {size} {}", target.label()))?
    {
        Outcome::Skipped(why) => json!({ "skipped": why }),
        Outcome::Measured(m) => json!({
            "times_s": m.times_s,
            "work": m.work,
            "work_unit": m.work_unit,
            "peak_rss_bytes": peak_rss_bytes(),
            "matmul": m.engine.unwrap_or_else(|| target.matmul_path()),
            "weight_bytes_per_token": m.weight_bytes_per_token,
        }),
    };
    println!("{out}");
    if rusty_gradients::core::profile::enabled() {
        eprintln!("{}", rusty_gradients::core::profile::report());
    }
    Ok(())
}
