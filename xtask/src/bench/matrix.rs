//! The benchmark matrix: which rows exist (workload × size × backend × dtype) and how
//! many repetitions each gets in full and `--quick` runs.

use serde_json::{json, Value};

/// Which build of the row runner measures a row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// The default CPU build: matmul through rg-cpu's own packed GEMM (or
    /// `matrixmultiply` where it has no kernel; results name the engine that ran).
    Cpu,
    /// `--features blas`: matmul through the system OpenBLAS.
    CpuBlas,
    /// `--features cuda`, rows on `Device::cuda(0)`.
    Cuda,
}

impl Backend {
    pub fn name(self) -> &'static str {
        match self {
            Backend::Cpu => "cpu",
            Backend::CpuBlas => "cpu-blas",
            Backend::Cuda => "cuda",
        }
    }

    /// The runner's `--device`.
    pub fn device(self) -> &'static str {
        match self {
            Backend::Cpu | Backend::CpuBlas => "cpu",
            Backend::Cuda => "cuda",
        }
    }
}

/// Repetition plan, passed to both our runner and the peer script so both sides are
/// timed alike: untimed runs until `warmup` are done and `warmup_s` seconds have passed,
/// then runs until `min_reps` are done and either `max_reps` are done or `budget_s`
/// seconds have passed. The warm-up time is for short rows: each of our rows starts a
/// fresh process, and a core that was idle runs its first ~0.15 s slow (see rg-bench's
/// `Reps`), while the peer script has been busy importing PyTorch.
#[derive(Debug, Clone, Copy)]
pub struct Reps {
    pub warmup: usize,
    pub warmup_s: f64,
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
    /// GPU rows: each repetition ends with a synchronisation; warm-up also covers
    /// module loading and library handles.
    Gpu,
    /// GPU training steps and generation: tenths of a second when fast, but a slow
    /// backend must still finish within the row timeout, so few repetitions are required.
    GpuHeavy,
}

impl Weight {
    fn reps(self, quick: bool) -> Reps {
        let (warmup, min_reps, max_reps, budget_s) = match (self, quick) {
            (Weight::Light, false) => (3, 10, 200, 3.0),
            (Weight::Light, true) => (2, 5, 50, 0.5),
            (Weight::Medium, false) => (1, 5, 20, 6.0),
            (Weight::Medium, true) => (1, 3, 6, 1.0),
            (Weight::Heavy, false) => (1, 5, 10, 40.0),
            // Three, not two: on a shared 2-core VM one disturbed repetition of two moved
            // the GPT-2 step's median by 40% (1.46 s alone, 2.16 s in a table run).
            (Weight::Heavy, true) => (1, 3, 3, 0.0),
            (Weight::Gpu, false) => (3, 10, 50, 3.0),
            (Weight::Gpu, true) => (2, 5, 10, 1.0),
            (Weight::GpuHeavy, false) => (1, 3, 20, 8.0),
            (Weight::GpuHeavy, true) => (1, 3, 5, 2.0),
        };
        let warmup_s = match self {
            Weight::Light | Weight::Medium => 0.5,
            Weight::Heavy | Weight::Gpu | Weight::GpuHeavy => 0.0,
        };
        Reps {
            warmup,
            warmup_s,
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
    /// Runs of the workload per timed repetition (GPU matmuls: many launches between
    /// two synchronisations); 1 elsewhere.
    pub inner: usize,
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
            "warmup_s": self.reps.warmup_s,
            "min_reps": self.reps.min_reps,
            "max_reps": self.reps.max_reps,
            "budget_s": self.reps.budget_s,
            "isolate": self.workload == "gpt2_train_step",
            "device": self.backend.device(),
            "dtype": self.dtype,
            "inner": self.inner,
        })
    }

    /// Rows whose peers measure the same thing (cpu and cpu-blas share theirs).
    pub fn same_peer_work(&self, other: &Row) -> bool {
        self.workload == other.workload
            && self.size == other.size
            && self.dtype == other.dtype
            && self.backend.device() == other.backend.device()
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

const fn dtype(mut d: Def, dtype: &'static str) -> Def {
    d.dtype = dtype;
    d
}

/// Every row, in table order. The memory probe (its bandwidth is the roofline of every
/// byte-bound row) comes last: on the AMD EPYC VM, the rows measured in the seconds
/// after it ran at half speed (2026-12-07: the first round of `matmul 256` at 0.299
/// ms a product in both full runs, 0.153-0.162 ms in round 2 and in a run without the
/// probe), and so did the probe's own second round once. Matmul rows are repeated for the BLAS build with
/// `--blas` (f32 only); everything else runs on the default build only (matmul is the
/// one kernel that `blas` changes). bf16 rows: matmul with bf16 operands (f32
/// accumulation), and the training step in bf16 autocast (`rgrad train --dtype bf16`,
/// against `torch.autocast("cpu", torch.bfloat16)`). Sizes: row ops at GPT-2 small's width over 4096 rows (GELU at
/// the MLP's 4x width), attention at GPT-2 small's heads over 64 positions (composed
/// from matmuls and softmax, and the fused op the models use; also over a 512-token
/// prefill), decode after a 64-token prompt.
const DEFS: &[Def] = &[
    def("matmul", "256", Weight::Light, GFLOPS),
    def("matmul", "1024", Weight::Medium, GFLOPS),
    def("matmul", "2048", Weight::Medium, GFLOPS),
    full_only(def("matmul", "4096", Weight::Heavy, GFLOPS)),
    full_only(bf16(def("matmul", "256", Weight::Light, GFLOPS))),
    bf16(def("matmul", "1024", Weight::Medium, GFLOPS)),
    bf16(def("matmul", "2048", Weight::Medium, GFLOPS)),
    full_only(bf16(def("matmul", "4096", Weight::Heavy, GFLOPS))),
    def("softmax", "4096x768", Weight::Light, GBPS),
    def("layer_norm", "4096x768", Weight::Light, GBPS),
    def("gelu", "4096x3072", Weight::Medium, GBPS),
    def("attention_fwd_bwd", "4x12x64x64", Weight::Light, GFLOPS),
    def(
        "attention_fused_fwd_bwd",
        "4x12x64x64",
        Weight::Light,
        GFLOPS,
    ),
    def(
        "attention_fused_fwd_bwd",
        "1x12x512x64",
        Weight::Light,
        GFLOPS,
    ),
    rss(def("adamw_step", "124M", Weight::Medium, GBPS)),
    rss(def("gpt2_train_step", "B4xT64", Weight::Heavy, TOKS)),
    rss(bf16(def("gpt2_train_step", "B4xT64", Weight::Heavy, TOKS))),
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
    rss(def("gpt2_decode_q8_0", "64+16", Weight::Heavy, TOKS)),
    no_dtype(def(
        "tokenizer_encode",
        "tinyshakespeare",
        Weight::Medium,
        MBPS,
    )),
    def("safetensors_open", "124M", Weight::Light, GBPS),
    // Both from one `mpirun -n 2` run of rg-dist's allreduce_bench (see mpi_rows.rs):
    // GPT-2 124M's gradients, bucketed, against one raw MPI_Allreduce of the same size.
    def("allreduce_mpi_bucketed", "124M-2ranks", Weight::Heavy, GBPS),
    def("allreduce_mpi_raw", "124M-2ranks", Weight::Heavy, GBPS),
    // `rgrad train` under `mpirun -n 2` (one thread per rank) against one process with
    // one thread, and across two network namespaces on a 1 Gbit/s link (dp_rows.rs).
    def(
        "dp_train_nanogpt_char",
        "B12xT64-2ranks",
        Weight::Medium,
        TOKS,
    ),
    def("dp_train_gpt2", "B4xT64-2ranks", Weight::Heavy, TOKS),
    def(
        "dp_train_2hosts_1gbit",
        "B12xT64-nano",
        Weight::Medium,
        TOKS,
    ),
    def("memory_read", "1GiB", Weight::Medium, GBPS),
];

const TFLOPS: (&str, f64) = ("TFLOP/s", 1e12);

/// The CUDA rows (`--device cuda`), on `Device::cuda(0)`: matmul in f32, TF32 (f32
/// data, `RG_CUDA_TF32=1`) and bf16 at 4096^3 and 8192^3; the GPT-2 124M training step
/// at batch 16 x 1024 (f32, and bf16 mixed precision once rg-nn has autocast); decode at
/// batch 1 after a 64-token prompt. Training last: it is the longest and the most
/// likely to run out of memory.
const CUDA_DEFS: &[Def] = &[
    dtype(def("matmul", "4096", Weight::Gpu, TFLOPS), "f32"),
    dtype(def("matmul", "4096", Weight::Gpu, TFLOPS), "tf32"),
    dtype(def("matmul", "4096", Weight::Gpu, TFLOPS), "bf16"),
    dtype(def("matmul", "8192", Weight::Gpu, TFLOPS), "f32"),
    dtype(def("matmul", "8192", Weight::Gpu, TFLOPS), "tf32"),
    dtype(def("matmul", "8192", Weight::Gpu, TFLOPS), "bf16"),
    rss(def("gpt2_decode", "64+128", Weight::GpuHeavy, TOKS)),
    rss(def("gpt2_train_step", "B16xT1024", Weight::GpuHeavy, TOKS)),
    rss(dtype(
        def("gpt2_train_step", "B16xT1024", Weight::GpuHeavy, TOKS),
        "bf16",
    )),
];

/// Products per timed repetition of a GPU matmul row: about 2.2e12 FLOPs per
/// repetition (16 at 4096^3, 2 at 8192^3), so that one synchronisation per repetition
/// costs well under 1% at bf16 rates.
fn inner(d: &Def) -> usize {
    match (d.workload, d.size.parse::<f64>()) {
        ("matmul", Ok(n)) => ((2.2e12 / (2.0 * n * n * n)).round() as usize).max(1),
        _ => 1,
    }
}

/// The CUDA rows of this run, after `--quick` and `--filter`.
pub fn cuda_rows(quick: bool, filter: Option<&str>) -> Vec<Row> {
    let mut out: Vec<Row> = CUDA_DEFS
        .iter()
        .filter(|d| if quick { d.in_quick } else { d.in_full })
        .map(|d| Row {
            workload: d.workload,
            size: d.size,
            backend: Backend::Cuda,
            dtype: d.dtype,
            reps: d.weight.reps(quick),
            inner: inner(d),
            rate_unit: d.rate.0,
            rate_scale: d.rate.1,
            rss_matters: d.rss_matters,
        })
        .collect();
    out.retain(|r| filter.is_none_or(|f| r.label().contains(f)));
    out
}

/// The rows of this run, in order, after `--quick`, `--blas` and `--filter`.
pub fn rows(quick: bool, blas: bool, filter: Option<&str>) -> Vec<Row> {
    let mut out = Vec::new();
    for d in DEFS
        .iter()
        .filter(|d| if quick { d.in_quick } else { d.in_full })
    {
        let mut backends = vec![Backend::Cpu];
        if blas && d.workload == "matmul" && d.dtype == "f32" {
            backends.push(Backend::CpuBlas);
        }
        for backend in backends {
            out.push(Row {
                workload: d.workload,
                size: d.size,
                backend,
                dtype: d.dtype,
                reps: d.weight.reps(quick),
                inner: 1,
                rate_unit: d.rate.0,
                rate_scale: d.rate.1,
                rss_matters: d.rss_matters,
            });
        }
    }
    out.retain(|r| filter.is_none_or(|f| r.label().contains(f)));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cuda_rows_cover_the_acceptance_figures() {
        let cuda = cuda_rows(false, None);
        let labels: Vec<String> = cuda.iter().map(Row::label).collect();
        for n in ["4096", "8192"] {
            for dt in ["f32", "tf32", "bf16"] {
                assert!(
                    labels.contains(&format!("matmul {n} cuda {dt}")),
                    "{labels:?}"
                );
            }
        }
        assert!(labels.contains(&"gpt2_train_step B16xT1024 cuda bf16".to_string()));
        assert!(labels.contains(&"gpt2_decode 64+128 cuda f32".to_string()));
        let m4 = cuda
            .iter()
            .find(|r| r.label() == "matmul 4096 cuda bf16")
            .unwrap();
        let m8 = cuda
            .iter()
            .find(|r| r.label() == "matmul 8192 cuda bf16")
            .unwrap();
        assert_eq!((m4.inner, m8.inner), (16, 2));
        assert_eq!(m4.peer_spec()["dtype"], "bf16");
        assert_eq!(m4.peer_spec()["device"], "cuda");
        assert_eq!(m4.peer_spec()["inner"], 16);
        // CPU rows stay as they were.
        assert!(rows(false, false, None)
            .iter()
            .all(|r| r.inner == 1 && r.backend == Backend::Cpu));
        assert_eq!(cuda_rows(true, Some("8192 cuda tf32")).len(), 1);
    }

    #[test]
    fn peers_are_shared_only_by_identical_work() {
        // f32 on the default and the BLAS build, then bf16 (default build only).
        let all = rows(false, true, Some("matmul 1024"));
        let labels: Vec<String> = all.iter().map(Row::label).collect();
        assert_eq!(
            labels,
            [
                "matmul 1024 cpu f32",
                "matmul 1024 cpu-blas f32",
                "matmul 1024 cpu bf16"
            ]
        );
        assert!(all[0].same_peer_work(&all[1]));
        assert!(!all[0].same_peer_work(&all[2]));
        let cuda = cuda_rows(false, Some("matmul 4096"));
        assert!(!cuda[0].same_peer_work(&cuda[1]));
    }
}
