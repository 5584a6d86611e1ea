//! [`Real`]: the float types kernels compute in, with the transcendental functions the
//! hot kernels need. For f32, `exp` is a polynomial approximation (within 2 ulp over
//! the whole range) written with plain arithmetic, so loops calling it auto-vectorise
//! where a libm call would not; f64 keeps libm's functions, whose accuracy gradient
//! checks rely on.

use rg_core::FloatDType;

use crate::storage::CpuElement;

pub trait Real: FloatDType + CpuElement {
    /// `e^x`, vectorisable for f32.
    fn exp_v(self) -> Self;
    /// The logistic function `1 / (1 + e^-x)`, vectorisable for f32.
    #[inline(always)]
    fn sigmoid_v(self) -> Self {
        (Self::one() + (-self).exp_v()).recip()
    }

    // Hooks for row kernels written with a target's vector instructions (wasm32
    // SIMD128 for f32, `kernels::rows_simd128`; AVX2 with FMA and AVX-512 for f32
    // softmax, layer norm and GELU, `kernels::rows_x86`); the defaults decline, and the caller runs its portable
    // loop.

    /// Softmax of each `cols`-long row of `x` into `y`; `false` if not done.
    #[inline(always)]
    fn softmax_rows_native(_x: &[Self], _y: &mut [Self], _cols: usize) -> bool {
        false
    }

    /// GELU of each element of `x` into `y` (see `kernels::gelu`); `false` if not done.
    #[inline(always)]
    fn gelu_native(_x: &[Self], _y: &mut [Self]) -> bool {
        false
    }

    /// `dx = dy * gelu'(x)` elementwise (see `kernels::gelu`); `false` if not done.
    #[inline(always)]
    fn gelu_backward_native(_x: &[Self], _dy: &[Self], _dx: &mut [Self]) -> bool {
        false
    }

    /// Layer norm of each row (see `kernels::layer_norm`); `false` if not done.
    #[inline(always)]
    fn layer_norm_rows_native(
        _x: &[Self],
        _gamma: &[Self],
        _beta: &[Self],
        _y: &mut [Self],
        _mean: &mut [Self],
        _rstd: &mut [Self],
        _eps: f64,
    ) -> bool {
        false
    }

    /// One attention query row against the KV cache (see
    /// `kernels::attention::forward`), returning the log-sum-exp; `None` if not done.
    #[inline(always)]
    fn attention_row_native(
        _qi: &[Self],
        _k: &[Self],
        _ks: usize,
        _v: &[Self],
        _vs: usize,
        _p: &mut [Self],
        _out: &mut [Self],
    ) -> Option<Self> {
        None
    }
}

impl Real for f64 {
    #[inline(always)]
    fn exp_v(self) -> f64 {
        self.exp()
    }
}

impl Real for f32 {
    #[inline(always)]
    fn exp_v(self) -> f32 {
        exp_f32(self)
    }

    #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
    fn softmax_rows_native(x: &[f32], y: &mut [f32], cols: usize) -> bool {
        crate::kernels::rows_simd128::softmax_rows(x, y, cols);
        true
    }

    #[cfg(target_arch = "x86_64")]
    fn softmax_rows_native(x: &[f32], y: &mut [f32], cols: usize) -> bool {
        crate::kernels::rows_x86::softmax_rows(x, y, cols)
    }

    #[cfg(target_arch = "x86_64")]
    fn gelu_native(x: &[f32], y: &mut [f32]) -> bool {
        crate::kernels::rows_x86::gelu(x, y)
    }

    #[cfg(target_arch = "x86_64")]
    fn gelu_backward_native(x: &[f32], dy: &[f32], dx: &mut [f32]) -> bool {
        crate::kernels::rows_x86::gelu_backward(x, dy, dx)
    }

    #[cfg(target_arch = "x86_64")]
    fn layer_norm_rows_native(
        x: &[f32],
        gamma: &[f32],
        beta: &[f32],
        y: &mut [f32],
        mean: &mut [f32],
        rstd: &mut [f32],
        eps: f64,
    ) -> bool {
        use crate::kernels::rows_x86::{layer_norm_rows, LayerNormRows};
        layer_norm_rows(LayerNormRows {
            x,
            gamma,
            beta,
            y,
            mean,
            rstd,
            eps: eps as f32,
        })
    }

    #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
    fn layer_norm_rows_native(
        x: &[f32],
        gamma: &[f32],
        beta: &[f32],
        y: &mut [f32],
        mean: &mut [f32],
        rstd: &mut [f32],
        eps: f64,
    ) -> bool {
        crate::kernels::rows_simd128::layer_norm_rows(x, gamma, beta, y, mean, rstd, eps as f32);
        true
    }

    #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
    fn attention_row_native(
        qi: &[f32],
        k: &[f32],
        ks: usize,
        v: &[f32],
        vs: usize,
        p: &mut [f32],
        out: &mut [f32],
    ) -> Option<f32> {
        Some(crate::kernels::rows_simd128::attention_row(
            qi, k, ks, v, vs, p, out,
        ))
    }
}

/// The constants of [`exp_f32`]'s scheme, shared with its vector copies
/// (`kernels::rows_x86`, `kernels::rows_simd128`).
pub(crate) mod exp_consts {
    /// Inputs above give infinity, below zero.
    pub const HI: f32 = 88.376_26;
    pub const LO: f32 = -87.336_55;
    /// ln 2 split so that `n * LN2_HI` is exact.
    pub const LN2_HI: f32 = 0.693_359_4;
    pub const LN2_LO: f32 = -2.121_944_4e-4;
    /// Adding then subtracting 1.5 * 2^23 rounds to the nearest integer.
    pub const ROUND: f32 = 12_582_912.0;
    /// `e^r ~ 1 + r + r^2 * p(r)`, `p`'s coefficients from the highest degree down.
    pub const POLY: [f32; 6] = [
        1.987_569_1e-4,
        1.398_2e-3,
        8.333_452e-3,
        4.166_579_6e-2,
        1.666_666_5e-1,
        0.5,
    ];
}

/// `e^x` for f32 (Cephes' `expf` scheme): `x = n ln2 + r` with `|r| <= ln2 / 2`, a
/// degree-6 polynomial for `e^r`, and `2^n` built from its exponent bits. Branch-free:
/// out-of-range inputs are clamped and then selected, NaN propagates.
#[inline(always)]
pub fn exp_f32(x: f32) -> f32 {
    use exp_consts::{HI, LN2_HI, LN2_LO, LO, POLY, ROUND};
    const LOG2E: f32 = std::f32::consts::LOG2_E;
    let c = if x > HI { HI } else { x };
    let c = if c < LO { LO } else { c };
    let t = c * LOG2E + ROUND;
    let n = t - ROUND;
    let r = c - n * LN2_HI - n * LN2_LO;
    let r2 = r * r;
    let p = POLY[1..].iter().fold(POLY[0], |p, &k| p * r + k);
    let p = p * r2 + r + 1.0;
    // `t`'s low mantissa bits hold n (within [-126, 127] after the clamp) as an
    // integer; reading it from the bits avoids a float-to-int conversion, which has
    // no packed form on baseline x86-64 and would keep the loop scalar.
    let n_int = t.to_bits().wrapping_sub(ROUND.to_bits());
    let scale = f32::from_bits(n_int.wrapping_add(127) << 23);
    let y = p * scale;
    if x > HI {
        f32::INFINITY
    } else if x < LO {
        0.0
    } else {
        y
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exp_f32_is_accurate_everywhere() {
        let mut worst = 0.0f64;
        let mut x = -87.0f32;
        while x < 88.0 {
            let want = (x as f64).exp();
            let got = exp_f32(x) as f64;
            worst = worst.max(((got - want) / want).abs());
            x += 0.000_731;
        }
        assert!(worst < 2.5e-7, "max relative error {worst}");
        assert_eq!(exp_f32(0.0), 1.0);
        assert_eq!(exp_f32(-1000.0), 0.0);
        assert_eq!(exp_f32(1000.0), f32::INFINITY);
        assert_eq!(exp_f32(f32::NEG_INFINITY), 0.0);
        assert!(exp_f32(f32::NAN).is_nan());
    }
}
