//! When and how finely to split work across the one rayon pool (the global one).
//!
//! Below [`PAR_THRESHOLD`] elements an op runs on the calling thread: waking the pool
//! costs more than the work. Above it, work is cut into a few chunks per thread so an
//! uneven thread still finishes close to the others.

/// Elements below which an op stays single-threaded.
pub const PAR_THRESHOLD: usize = 32 * 1024;

/// Smallest chunk handed to one task, in elements.
const MIN_CHUNK: usize = 8 * 1024;

/// Chunks per thread: enough to balance load, few enough to keep scheduling cheap.
const CHUNKS_PER_THREAD: usize = 4;

/// Whether work of `n` elements is worth parallelising.
pub fn worth_parallel(n: usize) -> bool {
    n >= PAR_THRESHOLD && rayon::current_num_threads() > 1
}

/// Chunk length (in elements) for splitting `n` elements: all of them when the work is
/// small, otherwise about `CHUNKS_PER_THREAD` chunks per pool thread.
pub fn chunk_len(n: usize) -> usize {
    if !worth_parallel(n) {
        return n.max(1);
    }
    let chunks = rayon::current_num_threads() * CHUNKS_PER_THREAD;
    n.div_ceil(chunks).max(MIN_CHUNK)
}

/// Rows per task when each row of `row_len` elements is processed as a unit (softmax,
/// layer norm, cross-entropy): at least one row, about `chunk_len` elements per task.
pub fn rows_per_task(rows: usize, row_len: usize) -> usize {
    let total = rows.saturating_mul(row_len.max(1));
    if !worth_parallel(total) {
        return rows.max(1);
    }
    (chunk_len(total) / row_len.max(1)).clamp(1, rows.max(1))
}

/// Runs `f(first_row, rows)` over `out` cut into whole rows of `cols` elements, in
/// parallel when large. `rows` holds one or more consecutive rows.
pub fn for_rows<T: Send>(out: &mut [T], cols: usize, f: impl Fn(usize, &mut [T]) + Sync) {
    use rayon::prelude::*;
    if out.is_empty() || cols == 0 {
        return;
    }
    let rows = out.len() / cols;
    let per_task = rows_per_task(rows, cols);
    if per_task >= rows {
        f(0, out);
        return;
    }
    out.par_chunks_mut(per_task * cols)
        .enumerate()
        .for_each(|(i, chunk)| f(i * per_task, chunk));
}

/// Makes the calling thread the first thread of the global pool (`RAYON_NUM_THREADS`
/// or one per core, this one included), for a program whose main thread issues the
/// ops: call it first thing in `main`, before any op runs.
///
/// Why: an op called from a thread outside the pool hands its work to the pool and
/// sleeps until a worker finishes it, so every op pays two thread wake-ups, and a
/// worker that dozed off between ops (rayon parks idle threads within microseconds)
/// starts late. Decoding issues ~170 ops of at most a few hundred microseconds per
/// token, and a small model's training step ~1,000, where those wake-ups are a large
/// share. From a pool thread an op runs its first part at once, and the other threads
/// steal the rest. Measured with `perf stat` on 2 cores: GPT-2 decoding (`rg-bench
/// gpt2_decode 64+32`, whole run) 63.8 K context switches before, 4.3 K after; the
/// nanoGPT char training step ~1,900 per step before, ~45 after.
///
/// Errors when the global pool is already running (nothing changes then).
pub fn init_thread_pool() -> Result<(), rayon::ThreadPoolBuildError> {
    rayon::ThreadPoolBuilder::new()
        .use_current_thread()
        .build_global()
}

/// How long a pool thread keeps looking for work after [`keep_workers_warm`] before it
/// may go to sleep.
const WARM_FOR: std::time::Duration = std::time::Duration::from_micros(300);

std::thread_local! {
    static KEEPING_WARM: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Keeps the other pool threads polling for work for a moment after a parallel op, so
/// that the next op of a chain of short ones (decoding: ~50 matrix-vector products of
/// 30-200 µs per token, with small ops between them) finds them awake.
///
/// Why: rayon parks an idle thread after a few dozen empty polls (microseconds), and
/// waking it costs tens of microseconds on a VM, paid by every product: on the 2-core
/// Xeon the Q8_0 decode products ran at 1.2× one thread's speed with 2 threads, the
/// LM head (1.8 ms) at 1.86×, and `perf stat` counted ~90 context switches per token.
/// The same holds for the GEMM: on the 2-core Xeon (Emerald Rapids) back-to-back 256 x
/// 256 x 256 products ran at 169 GFLOP/s without it and 207 with it (one thread: 155);
/// `rayon::join` of two 50 µs jobs took 57 µs straight after another, 109 µs after a
/// 20 µs pause and 201 µs after 1 ms.
/// Each other thread runs one polling job that takes every pending job it finds
/// (`rayon::yield_now`) and ends after [`WARM_FOR`] without any; the calling thread's
/// copy returns at once, and a thread already polling does not start a second.
pub fn keep_workers_warm() {
    if rayon::current_num_threads() < 2 {
        return;
    }
    let caller = rayon::current_thread_index();
    rayon::spawn_broadcast(move |ctx| {
        if Some(ctx.index()) == caller || KEEPING_WARM.with(|k| k.replace(true)) {
            return;
        }
        let mut idle_since = std::time::Instant::now();
        loop {
            match rayon::yield_now() {
                Some(rayon::Yield::Executed) => idle_since = std::time::Instant::now(),
                _ if idle_since.elapsed() >= WARM_FOR => break,
                _ => std::hint::spin_loop(),
            }
        }
        KEEPING_WARM.with(|k| k.set(false));
    });
}
