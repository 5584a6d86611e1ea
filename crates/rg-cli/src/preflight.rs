//! Memory pre-flight: before a model is allocated, estimate the peak resident memory a
//! run needs and refuse (unless `--force`) when it exceeds what the machine or its
//! cgroup has available, instead of letting the OOM killer end it silently.
//!
//! The estimate counts f32 bytes: parameters, gradients and AdamW's two moments
//! (16 bytes per parameter), the activations autograd keeps for one micro-batch, the
//! logits and their gradient, the KV cache for generation, and the process's own
//! baseline (code, thread stacks, allocator). Checkpoints stream tensors to the file
//! (`rg_io::save_safetensors`), so saving adds no copy of the model or moments.

use anyhow::{bail, Result};
use rusty_gradients::gpt::GptConfig;

/// Resident memory of a training `rgrad` beyond its model and data (code, thread
/// stacks, allocator; measured ~20 MiB with a 14k-parameter model on x86-64 Linux).
const BASELINE_BYTES: u64 = 20 << 20;

/// The same for `rgrad generate` (no optimizer, no buffers pooled for a next step).
const GENERATE_BASELINE_BYTES: u64 = 10 << 20;

/// f32 values held per token and layer at the peak, in units of `n_embd`. Autograd
/// keeps ~18 (two layer-norm outputs, the fused QKV projection (3), the attention
/// output and its projection, two residual sums, the MLP's hidden layer before and
/// after GELU (4 + 4) and its projection); backward's gradients of a layer and the
/// CPU buffer pool (freed activations are kept for the next step) add the rest.
/// Calibrated on measured peaks (Xeon Sapphire Rapids, 2 threads): nanoGPT's char
/// model and the built-in task at several batch sizes, within 10%.
const ACTIVATION_FLOATS_PER_EMBD: u64 = 38;

pub struct Estimate {
    pub params: u64,
    pub bytes: u64,
    /// (what, bytes), largest parts of `bytes`, for the message.
    pub parts: Vec<(&'static str, u64)>,
    pub flops_per_token: f64,
}

/// Parameters of a GPT-2 shaped model (weights and biases, tied LM head counted once).
pub fn param_count(c: &GptConfig) -> u64 {
    let (v, t, e, l) = (
        c.vocab_size as u64,
        c.block_size as u64,
        c.n_embd as u64,
        c.n_layer as u64,
    );
    let per_layer = 12 * e * e + 13 * e;
    v * e + t * e + l * per_layer + 2 * e
}

/// Parameters that take part in matmuls (all but the position embeddings and the
/// small vectors): the `N` of the usual `6N` FLOPs per token.
fn matmul_params(c: &GptConfig) -> u64 {
    let (v, e, l) = (c.vocab_size as u64, c.n_embd as u64, c.n_layer as u64);
    v * e + l * 12 * e * e
}

/// Training with `batch` rows of `seq` tokens per micro-batch; `eval_prompts`: the
/// number of prompts an accuracy evaluation (the built-in task) generates in one
/// batch, their length, and their length with the answer, if any.
pub fn training(
    c: &GptConfig,
    batch: usize,
    seq: usize,
    bf16: bool,
    eval_prompts: Option<(usize, usize, usize)>,
) -> Estimate {
    let params = param_count(c);
    let tokens = (batch * seq) as u64;
    let (e, l, v) = (c.n_embd as u64, c.n_layer as u64, c.vocab_size as u64);
    let mut per_layer = ACTIVATION_FLOATS_PER_EMBD * e * 4;
    if bf16 {
        // bf16 copies of the four matmul inputs (1 + 1 + 1 + 4 embd) and of q, k, v.
        per_layer += 10 * e * 2;
    }
    let activations = tokens * (l * per_layer + 4 * e * 4);
    // Logits, their softmax gradient and the LM head's transient output.
    let logits = tokens * v * 4 * 3;
    let mut parts = vec![
        ("parameters", 4 * params),
        ("gradients", 4 * params),
        ("AdamW state", 8 * params),
        ("activations", activations),
        ("logits", logits),
        ("process", BASELINE_BYTES),
    ];
    if let Some((rows, prompt_len, total_len)) = eval_prompts {
        // Its KV cache and prefill come on top: the pool still holds training's buffers.
        let (kv, prefill) = generation_buffers(c, rows, prompt_len, total_len);
        parts.push(("accuracy evaluation", kv + prefill));
    }
    let flops = 6.0 * matmul_params(c) as f64 + 12.0 * (l * e * seq as u64) as f64;
    finish(params, parts, flops)
}

/// Generation of `rows` sequences with weights of `weight_bytes_per_param` bytes.
pub fn generation(c: &GptConfig, weight_bytes_per_param: u64, rows: usize) -> Estimate {
    let params = param_count(c);
    let (e, l, t) = (c.n_embd as u64, c.n_layer as u64, c.block_size as u64);
    let (kv_cache, prefill) = generation_buffers(c, rows, c.block_size, c.block_size);
    let parts = vec![
        ("weights", weight_bytes_per_param * params),
        ("KV cache", kv_cache),
        ("prefill activations", prefill),
        ("process", GENERATE_BASELINE_BYTES),
    ];
    let flops = 2.0 * matmul_params(c) as f64 + 4.0 * (l * e * t) as f64;
    finish(params, parts, flops)
}

/// Bytes of the KV cache for `cache_len` positions (the generator sizes it to what
/// the run can reach) and of a `prefill_len` prefill (a layer's activations for every
/// position, and the last position's logits) for `rows` sequences.
fn generation_buffers(
    c: &GptConfig,
    rows: usize,
    prefill_len: usize,
    cache_len: usize,
) -> (u64, u64) {
    let (e, l, t, v) = (
        c.n_embd as u64,
        c.n_layer as u64,
        cache_len.min(c.block_size) as u64,
        c.vocab_size as u64,
    );
    let rows = rows as u64;
    let kv_cache = 2 * l * rows * t * e * 4;
    let prefill = rows * prefill_len as u64 * 12 * e * 4 + rows * v * 4 * 2;
    (kv_cache, prefill)
}

fn finish(params: u64, parts: Vec<(&'static str, u64)>, flops_per_token: f64) -> Estimate {
    Estimate {
        params,
        bytes: parts.iter().map(|p| p.1).sum(),
        parts,
        flops_per_token,
    }
}

/// Bytes this process may still use: the smaller of the kernel's `MemAvailable` and
/// the room left under a cgroup v2/v1 limit, with where the figure came from.
pub fn available() -> Option<(u64, &'static str)> {
    let meminfo = std::fs::read_to_string("/proc/meminfo").ok()?;
    let kb: u64 = meminfo
        .lines()
        .find(|l| l.starts_with("MemAvailable:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()?;
    let mut best = (kb * 1024, "MemAvailable");
    if let Some(room) = cgroup_room() {
        if room < best.0 {
            best = (room, "cgroup memory limit");
        }
    }
    Some(best)
}

fn cgroup_room() -> Option<u64> {
    let read = |p: &str| -> Option<u64> { std::fs::read_to_string(p).ok()?.trim().parse().ok() };
    let (limit, used) = match read("/sys/fs/cgroup/memory.max") {
        Some(limit) => (limit, read("/sys/fs/cgroup/memory.current")?),
        None => (
            read("/sys/fs/cgroup/memory/memory.limit_in_bytes")?,
            read("/sys/fs/cgroup/memory/memory.usage_in_bytes")?,
        ),
    };
    Some(limit.saturating_sub(used))
}

pub fn gib(bytes: u64) -> String {
    let g = bytes as f64 / (1u64 << 30) as f64;
    if g >= 0.1 {
        format!("{g:.1} GiB")
    } else {
        format!("{:.0} MiB", bytes as f64 / (1u64 << 20) as f64)
    }
}

/// One line: parameters, FLOPs per token, the estimate and its parts.
pub fn describe(e: &Estimate) -> String {
    let parts: Vec<String> = e
        .parts
        .iter()
        .map(|(what, b)| format!("{what} {}", gib(*b)))
        .collect();
    format!(
        "{:.2}M parameters, {:.2} MFLOP/token; memory estimate {} ({})",
        e.params as f64 / 1e6,
        e.flops_per_token / 1e6,
        gib(e.bytes),
        parts.join(", ")
    )
}

/// An error when the estimate exceeds the memory available and `force` is off;
/// `advice` says what to change.
pub fn check(e: &Estimate, force: bool, advice: &str) -> Result<()> {
    let Some((avail, source)) = available() else {
        return Ok(());
    };
    if e.bytes <= avail || force {
        return Ok(());
    }
    bail!(
        "not enough memory: this run needs about {} but {} are available ({source}); {advice}, or pass --force to try anyway",
        gib(e.bytes),
        gib(avail)
    )
}

/// A `/proc/self/status` memory figure (`VmRSS`: resident now, a memory-mapped file's
/// touched pages included; `VmHWM`: the peak) in bytes; `None` off Linux.
pub fn process_memory(key: &str) -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with(key))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}
