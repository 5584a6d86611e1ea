//! Runtime choice of vector instructions.
//!
//! The crate is compiled for the baseline x86-64 target (SSE2), where the compiler's
//! auto-vectorised loops are 4 f32 wide. Functions defined with [`multiversion!`] are
//! compiled three times, for AVX-512, AVX2 and the baseline, and each call runs the
//! widest copy the CPU supports, so the hot loops in them use 16- or 8-wide registers.
//! `RG_CPU_SIMD=base|avx2|avx512` caps the level (for benchmarking the difference).
//! The AVX-512 copies need Rust 1.89+ (see `build.rs`); older compilers stop at AVX2.

// wasm32 builds pick their kernels at compile time (`+simd128`): nothing asks for the
// run-time level there.
#![cfg_attr(target_arch = "wasm32", allow(dead_code))]

use std::sync::atomic::{AtomicU8, Ordering};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    Base = 1,
    Avx2 = 2,
    Avx512 = 3,
}

static LEVEL: AtomicU8 = AtomicU8::new(0);

/// The vector level in use, detected once.
pub fn level() -> Level {
    match LEVEL.load(Ordering::Relaxed) {
        1 => Level::Base,
        2 => Level::Avx2,
        3 => Level::Avx512,
        _ => {
            let l = detect();
            LEVEL.store(l as u8, Ordering::Relaxed);
            l
        }
    }
}

fn detect() -> Level {
    let cap = match std::env::var("RG_CPU_SIMD").as_deref() {
        Ok("base") => Level::Base,
        Ok("avx2") => Level::Avx2,
        _ => Level::Avx512,
    };
    #[cfg(target_arch = "x86_64")]
    {
        let avx512 = cfg!(rg_cpu_avx512) && is_x86_feature_detected!("avx512f");
        let found = if avx512 && is_x86_feature_detected!("avx2") {
            Level::Avx512
        } else if is_x86_feature_detected!("avx2") {
            Level::Avx2
        } else {
            Level::Base
        };
        found.min(cap)
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = cap;
        Level::Base
    }
}

/// Defines a function whose body is compiled three times, for AVX-512, AVX2 and the
/// baseline, and picks the copy for the running CPU at each call.
///
/// Hot loops go in such functions, with their data passed as separate slice arguments:
/// the compiler only vectorises a loop when it can see the slices do not alias, which
/// it can for arguments but not for slices packed in a struct or captured by a closure
/// (and closures would not be inlined into the per-level copies anyway). Small closures
/// passed as `&F` arguments are inlined. Where bounds go in brackets:
///
/// ```text
/// multiversion! {
///     pub fn scale<T>(out: &mut [T], x: &[T], k: T) where [T: Real] { ... }
/// }
/// ```
macro_rules! multiversion {
    (
        $(#[$meta:meta])*
        $vis:vis fn $name:ident $(<$($g:ident),* $(,)?>)? ( $($arg:ident : $ty:ty),* $(,)? ) $(-> $ret:ty)?
        $(where [$($w:tt)*])?
        $body:block
    ) => {
        $(#[$meta])*
        #[allow(clippy::too_many_arguments)]
        $vis fn $name $(<$($g),*>)? ( $($arg : $ty),* ) $(-> $ret)? $(where $($w)*)? {
            #[inline(always)]
            #[allow(clippy::too_many_arguments)]
            fn body $(<$($g),*>)? ( $($arg : $ty),* ) $(-> $ret)? $(where $($w)*)? $body

            #[cfg(all(target_arch = "x86_64", rg_cpu_avx512))]
            #[target_feature(enable = "avx2,avx512f")]
            #[allow(clippy::too_many_arguments)]
            unsafe fn avx512 $(<$($g),*>)? ( $($arg : $ty),* ) $(-> $ret)? $(where $($w)*)? {
                body($($arg),*)
            }

            #[cfg(target_arch = "x86_64")]
            #[target_feature(enable = "avx2")]
            #[allow(clippy::too_many_arguments)]
            unsafe fn avx2 $(<$($g),*>)? ( $($arg : $ty),* ) $(-> $ret)? $(where $($w)*)? {
                body($($arg),*)
            }

            #[cfg(target_arch = "x86_64")]
            match $crate::simd::level() {
                // SAFETY: `level` only reports features the running CPU has.
                #[cfg(rg_cpu_avx512)]
                $crate::simd::Level::Avx512 => return unsafe { avx512($($arg),*) },
                $crate::simd::Level::Avx2 => return unsafe { avx2($($arg),*) },
                _ => {}
            }
            body($($arg),*)
        }
    };
}

pub(crate) use multiversion;
