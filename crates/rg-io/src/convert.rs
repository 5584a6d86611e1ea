//! Converting stored little-endian bytes into our dtypes: bf16/f16 to f32 (the common
//! case of loading half-precision checkpoints for f32 compute), and widening of the
//! integer types we have no dtype for.
//!
//! The loops work on fixed-size blocks of a few elements with no branches in the body,
//! which LLVM turns into SIMD code; they read bytes, not `&[u16]`, because tensor data
//! in a safetensors file need not be aligned to its element size. f16 needs more work
//! per element than SSE2 does quickly, so on x86-64 CPUs with F16C (every one since
//! 2012) it uses the hardware conversion instead, chosen at run time.

/// Elements per block: a multiple of every SIMD width in use (4 to 16 lanes).
const BLOCK: usize = 16;

/// Converts little-endian bf16 `src` into `dst`.
///
/// # Panics
/// If `src.len() != 2 * dst.len()` (a programming error: lengths come from validated
/// headers).
pub fn bf16_le_bytes_to_f32(src: &[u8], dst: &mut [f32]) {
    convert_blocks(src, dst, bf16_bits_to_f32);
}

/// Converts little-endian IEEE half-precision `src` into `dst`; exact for every value,
/// subnormals, infinities and NaNs included.
///
/// # Panics
/// If `src.len() != 2 * dst.len()`.
pub fn f16_le_bytes_to_f32(src: &[u8], dst: &mut [f32]) {
    check_lengths(src, dst);
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx") && std::arch::is_x86_feature_detected!("f16c") {
        // SAFETY: the CPU has the features the function is compiled for, and the
        // lengths were checked.
        unsafe { x86::f16_le_bytes_to_f32_f16c(src, dst) };
        return;
    }
    f16_le_bytes_to_f32_portable(src, dst);
}

/// The conversion without CPU-specific instructions (also what tests compare the
/// hardware path against).
pub(crate) fn f16_le_bytes_to_f32_portable(src: &[u8], dst: &mut [f32]) {
    convert_blocks(src, dst, f16_bits_to_f32);
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::{_mm256_cvtph_ps, _mm256_storeu_ps, _mm_loadu_si128};

    /// # Safety
    /// The CPU must support AVX and F16C, and `src.len() == 2 * dst.len()`.
    #[target_feature(enable = "avx,f16c")]
    pub(super) unsafe fn f16_le_bytes_to_f32_f16c(src: &[u8], dst: &mut [f32]) {
        let mut src_blocks = src.chunks_exact(16);
        let mut dst_blocks = dst.chunks_exact_mut(8);
        for (s, d) in (&mut src_blocks).zip(&mut dst_blocks) {
            // SAFETY: `s` holds 16 bytes (8 halves) and `d` 8 floats; the unaligned
            // load and store need no alignment. x86 is little-endian, as the file is.
            unsafe {
                let halves = _mm_loadu_si128(s.as_ptr().cast());
                _mm256_storeu_ps(d.as_mut_ptr(), _mm256_cvtph_ps(halves));
            }
        }
        super::f16_le_bytes_to_f32_portable(src_blocks.remainder(), dst_blocks.into_remainder());
    }
}

/// bf16 is the top half of an f32: shifting the bits up is the exact conversion
/// (NaN payloads included, as PyTorch converts).
#[inline(always)]
fn bf16_bits_to_f32(bits: u16) -> f32 {
    f32::from_bits((bits as u32) << 16)
}

/// Branch-free half -> single conversion (after F. Giesen's "half to float done
/// quick"): rebias the exponent, then fix up the two special exponents with selects
/// rather than branches so the loop vectorises.
#[inline(always)]
fn f16_bits_to_f32(bits: u16) -> f32 {
    const SHIFTED_EXP: u32 = 0x7c00 << 13; // f16 exponent mask, in f32 position
    const MAGIC: f32 = f32::from_bits(113 << 23); // 2^-14, the smallest normal f16
    let h = bits as u32;
    let magnitude = (h & 0x7fff) << 13;
    let exp = magnitude & SHIFTED_EXP;
    let rebiased = magnitude + ((127 - 15) << 23);
    // Inf/NaN: push the exponent up to all ones; NaNs come out quiet, as F16C's
    // hardware conversion makes them.
    let quiet_nan_bit = ((magnitude & 0x007f_ffff != 0) as u32) << 22;
    let inf_nan = (rebiased + ((128 - 16) << 23)) | quiet_nan_bit;
    // Zero/subnormal: let the FPU normalise by subtracting 2^-14.
    let subnormal = (f32::from_bits(rebiased + (1 << 23)) - MAGIC).to_bits();
    let out = if exp == SHIFTED_EXP {
        inf_nan
    } else if exp == 0 {
        subnormal
    } else {
        rebiased
    };
    f32::from_bits(out | ((h & 0x8000) << 16))
}

fn check_lengths(src: &[u8], dst: &[f32]) {
    assert_eq!(
        src.len(),
        2 * dst.len(),
        "half-precision conversion: {} source bytes for {} f32 outputs",
        src.len(),
        dst.len()
    );
}

#[inline(always)]
fn convert_blocks(src: &[u8], dst: &mut [f32], f: impl Fn(u16) -> f32 + Copy) {
    check_lengths(src, dst);
    let mut src_blocks = src.chunks_exact(2 * BLOCK);
    let mut dst_blocks = dst.chunks_exact_mut(BLOCK);
    for (s, d) in (&mut src_blocks).zip(&mut dst_blocks) {
        for (pair, out) in s.chunks_exact(2).zip(d.iter_mut()) {
            *out = f(u16::from_le_bytes([pair[0], pair[1]]));
        }
    }
    let tail = src_blocks.remainder().chunks_exact(2);
    for (pair, out) in tail.zip(dst_blocks.into_remainder()) {
        *out = f(u16::from_le_bytes([pair[0], pair[1]]));
    }
}

/// Decodes `N`-byte little-endian elements with `f`, e.g. stored i16 -> i64.
pub(crate) fn widen<T, const N: usize>(src: &[u8], f: impl Fn([u8; N]) -> T) -> Vec<T> {
    src.chunks_exact(N)
        .map(|c| {
            let mut bytes = [0u8; N];
            bytes.copy_from_slice(c);
            f(bytes)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use half::{bf16, f16};

    use super::*;

    #[test]
    fn f16_matches_half_for_every_bit_pattern() {
        f16_path_matches_half(f16_le_bytes_to_f32);
        f16_path_matches_half(f16_le_bytes_to_f32_portable);
    }

    fn f16_path_matches_half(convert: fn(&[u8], &mut [f32])) {
        // Odd offset and a length that is no multiple of 8: unaligned loads and the
        // remainder loop run too.
        let src: Vec<u8> = std::iter::once(0xAA)
            .chain((0..=u16::MAX).flat_map(|b| b.to_le_bytes()))
            .collect();
        let mut dst = vec![0f32; 1 << 16];
        convert(&src[1..], &mut dst);
        for (bits, got) in (0..=u16::MAX).zip(dst) {
            let want = f16::from_bits(bits).to_f32();
            if want.is_nan() {
                assert!(got.is_nan(), "bits {bits:#06x}");
                // The quiet bit and payload survive, as in a hardware conversion.
                assert_eq!(got.to_bits(), want.to_bits(), "bits {bits:#06x}");
            } else {
                assert_eq!(got.to_bits(), want.to_bits(), "bits {bits:#06x}");
            }
        }
    }

    #[test]
    fn bf16_matches_half_for_every_bit_pattern() {
        let src: Vec<u8> = (0..=u16::MAX).flat_map(|b| b.to_le_bytes()).collect();
        let mut dst = vec![0f32; 1 << 16];
        bf16_le_bytes_to_f32(&src, &mut dst);
        for (bits, got) in (0..=u16::MAX).zip(dst) {
            let want = bf16::from_bits(bits).to_f32();
            if want.is_nan() {
                // `half` quiets signalling NaNs; we keep the bits, as PyTorch does.
                assert!(got.is_nan());
                assert_eq!(got.to_bits(), (bits as u32) << 16);
            } else {
                assert_eq!(got.to_bits(), want.to_bits(), "bits {bits:#06x}");
            }
        }
    }

    #[test]
    fn lengths_that_are_not_a_multiple_of_the_block_convert_fully() {
        for n in 0..40 {
            let values: Vec<f32> = (0..n).map(|i| i as f32 - 7.5).collect();
            let bf: Vec<u8> = values
                .iter()
                .flat_map(|&v| bf16::from_f32(v).to_le_bytes())
                .collect();
            let h: Vec<u8> = values
                .iter()
                .flat_map(|&v| f16::from_f32(v).to_le_bytes())
                .collect();
            for (src, convert) in [
                (&bf, bf16_le_bytes_to_f32 as fn(&[u8], &mut [f32])),
                (&h, f16_le_bytes_to_f32),
                (&h, f16_le_bytes_to_f32_portable),
            ] {
                let mut dst = vec![f32::NAN; n];
                convert(src, &mut dst);
                assert_eq!(dst, values);
            }
        }
    }

    #[test]
    #[should_panic(expected = "source bytes")]
    fn mismatched_lengths_panic() {
        bf16_le_bytes_to_f32(&[0; 3], &mut [0.0; 2]);
    }
}
