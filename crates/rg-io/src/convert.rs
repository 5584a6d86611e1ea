//! Converting stored little-endian bytes into our dtypes: bf16/f16 to f32 (the common
//! case of loading half-precision checkpoints for f32 compute), and widening of the
//! integer types we have no dtype for.
//!
//! The loops work on fixed-size blocks of a few elements with no branches in the body,
//! which LLVM turns into SIMD code; they read bytes, not `&[u16]`, because tensor data
//! in a safetensors file need not be aligned to its element size.

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
    convert_blocks(src, dst, f16_bits_to_f32);
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

#[inline(always)]
fn convert_blocks(src: &[u8], dst: &mut [f32], f: impl Fn(u16) -> f32 + Copy) {
    assert_eq!(
        src.len(),
        2 * dst.len(),
        "half-precision conversion: {} source bytes for {} f32 outputs",
        src.len(),
        dst.len()
    );
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
        let src: Vec<u8> = (0..=u16::MAX).flat_map(|b| b.to_le_bytes()).collect();
        let mut dst = vec![0f32; 1 << 16];
        f16_le_bytes_to_f32(&src, &mut dst);
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
            let src: Vec<u8> = values
                .iter()
                .flat_map(|&v| bf16::from_f32(v).to_le_bytes())
                .collect();
            let mut dst = vec![f32::NAN; n];
            bf16_le_bytes_to_f32(&src, &mut dst);
            assert_eq!(dst, values);
        }
    }

    #[test]
    #[should_panic(expected = "source bytes")]
    fn mismatched_lengths_panic() {
        bf16_le_bytes_to_f32(&[0; 3], &mut [0.0; 2]);
    }
}
