//! The benchmark matrix: which rows exist (workload × size × backend × dtype) and how
//! many repetitions each gets in full and `--quick` runs.

use serde_json::{json, Value};

/// Which build of the row runner measures a row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// The default CPU build: pure-Rust matmul (`matrixmultiply`).
    Cpu,
    /// `--features blas`: matmul through the system OpenBLAS.
    CpuBlas,
}

impl Backend {
    pub fn name(self) -> &'static str {
        match self {
            Backend::Cpu => "cpu",
            Backend::CpuBlas => "cpu-blas",
        }
    }
}

/// Repetition plan, passed to both our runner and the peer script so both sides are
/// timed alike: `warmup` untimed runs, then runs until `min_reps` are done and either
/// `max_reps` are done or `budget_s` seconds have passed.
#[derive(Debug, Clone, Copy)]
pub struct Reps {
    pub warmup: usize,
    pub min_reps: usize,
    pub max_reps: usize,
    pub budget_s: f64,
}

/// How long one repetition takes, roughly; picks the repetition plan.
#[derive(Debug, Clone, Copy)]
enum Weight {
    /// Microseconds to milliseconds: many repetitions are cheap.
    Light,
    /// Tens to hundreds of milliseconds.
    Medium,
    /// Seconds (GPT-2 124M steps and generation).
    Heavy,
}

impl Weight {
    fn reps(self, quick: bool) -> Reps {
        let (warmup, min_reps, max_reps, budget_s) = match (self, quick) {
            (Weight::Light, false) => (3, 10, 200, 3.0),
            (Weight::Light, true) => (2, 5, 50, 0.5),
            (Weight::Medium, false) => (1, 5, 20, 6.0),
            (Weight::Medium, true) => (1, 3, 6, 1.0),
            (Weight::Heavy, false) => (1, 5, 10, 40.0),
            (Weight::Heavy, true) => (1, 2, 2, 0.0),
        };
        Reps {
            warmup,
            min_reps,
            max_reps,
            budget_s,
        }
    }
}

/// One row of the matrix.
#[derive(Debug, Clone)]
pub struct Row {
    /// The runner's and the peer script's workload name.
    pub workload: &'static str,
    pub size: &'static str,
    pub backend: Backend,
    pub dtype: &'static str,
    pub reps: Reps,
    /// Display unit of the derived rate and its scale from the runner's work unit
    /// (FLOPs, bytes or tokens per repetition).
    pub rate_unit: &'static str,
    pub rate_scale: f64,
    /// Peak resident memory is part of the result (it is recorded for every row).
    pub rss_matters: bool,
}

impl Row {
    /// What `--filter` matches: `"matmul 1024 cpu-blas f32"`.
    pub fn label(&self) -> String {
        format!(
            "{} {} {} {}",
            self.workload,
            self.size,
            self.backend.name(),
            self.dtype
        )
    }

    /// The row as the peer script reads it. Peak RSS needs a process of its own.
    pub fn peer_spec(&self) -> Value {
        json!({
            "workload": self.workload,
            "size": self.size,
            "warmup": self.reps.warmup,
            "min_reps": self.reps.min_reps,
            "max_reps": self.reps.max_reps,
            "budget_s": self.reps.budget_s,
            "isolate": self.workload == "gpt2_train_step",
        })
    }
}

struct Def {
    workload: &'static str,
    size: &'static str,
    weight: Weight,
    rate: (&'static str, f64),
    rss_matters: bool,
    in_quick: bool,
    in_full: bool,
    /// Element type of the data; the tokenizer row has none ("-").
    dtype: &'static str,
}

const GFLOPS: (&str, f64) = ("GFLOP/s", 1e9);
const GBPS: (&str, f64) = ("GB/s", 1e9);
const MBPS: (&str, f64) = ("MB/s", 1e6);
const TOKS: (&str, f64) = ("tokens/s", 1.0);

const fn def(
    workload: &'static str,
    size: &'static str,
    weight: Weight,
    rate: (&'static str, f64),
) -> Def {
    Def {
        workload,
        size,
        weight,
        rate,
        rss_matters: false,
        in_quick: true,
        in_full: true,
        dtype: "f32",
    }
}

const fn no_dtype(mut d: Def) -> Def {
    d.dtype = "-";
    d
}

const fn full_only(mut d: Def) -> Def {
    d.in_quick = false;
    d
}

const fn quick_only(mut d: Def) -> Def {
    d.in_full = false;
    d
}

const fn bf16(mut d: Def) -> Def {
    d.dtype = "bf16";
    d
}

const fn rss(mut d: Def) -> Def {
    d.rss_matters = true;
    d
}

/// Every row, in table order. Matmul rows are repeated for the BLAS build with
/// `--blas`; everything else runs on the default build only (matmul is the one kernel
/// that `blas` changes). Sizes: row ops at GPT-2 small's width over 4096 rows (GELU at
/// the MLP's 4x width), attention at GPT-2 small's heads over 64 positions, decode
/// after a 64-token prompt.
const DEFS: &[Def] = &[
    def("matmul", "256", Weight::Light, GFLOPS),
    def("matmul", "1024", Weight::Medium, GFLOPS),
    def("matmul", "2048", Weight::Medium, GFLOPS),
    full_only(def("matmul", "4096", Weight::Heavy, GFLOPS)),
    def("softmax", "4096x768", Weight::Light, GBPS),
    def("layer_norm", "4096x768", Weight::Light, GBPS),
    def("gelu", "4096x3072", Weight::Medium, GBPS),
    def("attention_fwd_bwd", "4x12x64x64", Weight::Light, GFLOPS),
    rss(def("adamw_step", "124M", Weight::Medium, GBPS)),
    rss(def("gpt2_train_step", "B4xT64", Weight::Heavy, TOKS)),
    rss(full_only(def(
        "gpt2_train_step",
        "B8xT256",
        Weight::Heavy,
        TOKS,
    ))),
    rss(def(
        "nanogpt_char_train_step",
        "B12xT64",
        Weight::Medium,
        TOKS,
    )),
    rss(def("gpt2_prefill", "512", Weight::Heavy, TOKS)),
    rss(quick_only(def("gpt2_decode", "64+16", Weight::Heavy, TOKS))),
    rss(full_only(def("gpt2_decode", "64+64", Weight::Heavy, TOKS))),
    rss(bf16(quick_only(def(
        "gpt2_decode_bf16",
        "64+16",
        Weight::Heavy,
        TOKS,
    )))),
    rss(bf16(full_only(def(
        "gpt2_decode_bf16",
        "64+64",
        Weight::Heavy,
        TOKS,
    )))),
    no_dtype(def(
        "tokenizer_encode",
        "tinyshakespeare",
        Weight::Medium,
        MBPS,
    )),
    def("safetensors_open", "124M", Weight::Light, GBPS),
];

/// The rows of this run, in order, after `--quick`, `--blas` and `--filter`.
pub fn rows(quick: bool, blas: bool, filter: Option<&str>) -> Vec<Row> {
    let mut out = Vec::new();
    for d in DEFS
        .iter()
        .filter(|d| if quick { d.in_quick } else { d.in_full })
    {
        let mut backends = vec![Backend::Cpu];
        if blas && d.workload == "matmul" {
            backends.push(Backend::CpuBlas);
        }
        for backend in backends {
            out.push(Row {
                workload: d.workload,
                size: d.size,
                backend,
                dtype: d.dtype,
                reps: d.weight.reps(quick),
                rate_unit: d.rate.0,
                rate_scale: d.rate.1,
                rss_matters: d.rss_matters,
            });
        }
    }
    out.retain(|r| filter.is_none_or(|f| r.label().contains(f)));
    out
}
