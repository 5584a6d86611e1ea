//! The machine's memory read bandwidth, measured by the bench itself so every decode
//! and row-op figure can be read as a fraction of it: every thread of the pool sums
//! its own contiguous share of a buffer far larger than the caches, with the widest
//! loads the CPU has and several independent accumulators (so neither the adds'
//! latency nor a narrow load width caps the rate below what memory delivers).

use anyhow::{bail, Context, Result};
use rayon::prelude::*;

use crate::{Measured, Reps};

/// `"1GiB"` / `"512MiB"` -> bytes.
fn parse_bytes(size: &str) -> Result<usize> {
    let (num, scale) = if let Some(n) = size.strip_suffix("GiB") {
        (n, 1 << 30)
    } else if let Some(n) = size.strip_suffix("MiB") {
        (n, 1 << 20)
    } else {
        bail!("memory_read size is NGiB or NMiB, got {size:?}");
    };
    let n: usize = num
        .parse()
        .with_context(|| format!("memory_read size {size:?}"))?;
    Ok(n * scale)
}

/// Reads the whole buffer once per repetition; work is the bytes read.
pub fn memory_read(size: &str, reps: &Reps) -> Result<Measured> {
    let bytes = parse_bytes(size)?;
    // Written once, so every page is resident before the timed reads.
    let data: Vec<f32> = (0..bytes / 4).map(|i| (i % 7) as f32).collect();
    let threads = rayon::current_num_threads().max(1);
    // A few chunks per thread, each large enough to stream.
    let chunk = (data.len() / (threads * 4)).next_multiple_of(64).max(64);
    let mut sink = 0.0f32;
    let times = reps.run(|| {
        sink += data.par_chunks(chunk).map(sum).sum::<f32>();
        Ok(())
    })?;
    // Keeps the sums observable, so the reads cannot be optimised away.
    std::hint::black_box(sink);
    Ok(Measured::new(times, (data.len() * 4) as f64, "byte"))
}

fn sum(x: &[f32]) -> f32 {
    #[cfg(target_arch = "x86_64")]
    if is_x86_feature_detected!("avx512f") {
        // SAFETY: the CPU has AVX-512F.
        return unsafe { sum_avx512(x) };
    }
    sum_portable(x)
}

/// Eight independent accumulators: the compiler vectorises them at the baseline width.
fn sum_portable(x: &[f32]) -> f32 {
    let mut acc = [0.0f32; 8];
    let mut chunks = x.chunks_exact(8);
    for c in &mut chunks {
        for (a, v) in acc.iter_mut().zip(c) {
            *a += v;
        }
    }
    acc.iter().sum::<f32>() + chunks.remainder().iter().sum::<f32>()
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn sum_avx512(x: &[f32]) -> f32 {
    use std::arch::x86_64::*;
    let mut acc = [_mm512_setzero_ps(); 4];
    let mut blocks = x.chunks_exact(64);
    for b in &mut blocks {
        for (j, a) in acc.iter_mut().enumerate() {
            // SAFETY: `b` holds 64 f32s, so lanes `16 j .. 16 j + 16` are in bounds.
            let v = unsafe { _mm512_loadu_ps(b.as_ptr().add(16 * j)) };
            *a = _mm512_add_ps(*a, v);
        }
    }
    let total = _mm512_add_ps(_mm512_add_ps(acc[0], acc[1]), _mm512_add_ps(acc[2], acc[3]));
    _mm512_reduce_add_ps(total) + sum_portable(blocks.remainder())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sums_agree_and_sizes_parse() {
        let x: Vec<f32> = (0..1000).map(|i| (i % 5) as f32).collect();
        let want: f32 = x.iter().sum();
        assert_eq!(sum(&x), want);
        assert_eq!(sum_portable(&x), want);
        assert_eq!(parse_bytes("2MiB").unwrap(), 2 << 20);
        assert_eq!(parse_bytes("1GiB").unwrap(), 1 << 30);
        assert!(parse_bytes("1GB").is_err());
        let m = memory_read(
            "1MiB",
            &Reps {
                warmup: 0,
                warmup_s: 0.0,
                min_reps: 2,
                max_reps: 2,
                budget_s: 0.0,
            },
        )
        .unwrap();
        assert_eq!((m.times_s.len(), m.work), (2, (1 << 20) as f64));
    }
}
