//! Runtime choice of vector instructions.
//!
//! The crate is compiled for the baseline x86-64 target (SSE2), where the compiler's
//! auto-vectorised loops are 4 f32 wide. Functions defined with [`multiversion!`] are
//! compiled three times, for AVX-512, AVX2 and the baseline, and each call runs the
//! widest copy the CPU supports, so the hot loops in them use 16- or 8-wide registers.
//! `RG_CPU_SIMD=base|avx2|avx512` caps the level (for benchmarking the difference).
//! The AVX-512 copies need Rust 1.89+ (see `build.rs`); older compilers stop at AVX2.
//! Elsewhere the levels and the bf16 detection exist but only x86 code reads them
//! (wasm32 builds pick their kernels at compile time, `+simd128`).
#![cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]

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

/// Whether the hand-written NEON kernels run (aarch64 only, where NEON is part of the
/// baseline): `RG_CPU_SIMD=base` turns them off, to compare with the portable code.
#[cfg(target_arch = "aarch64")]
pub fn neon() -> bool {
    use std::sync::OnceLock;
    static ON: OnceLock<bool> = OnceLock::new();
    *ON.get_or_init(|| std::env::var("RG_CPU_SIMD").as_deref() != Ok("base"))
}

/// Whether the aarch64 `bfdot` kernels run: the CPU has the BF16 extension (detected
/// once), NEON is on, and `RG_CPU_BF16=widen` does not ask for widening to f32.
#[cfg(target_arch = "aarch64")]
pub fn neon_bf16() -> bool {
    use std::sync::OnceLock;
    static ON: OnceLock<bool> = OnceLock::new();
    *ON.get_or_init(|| {
        neon()
            && std::env::var("RG_CPU_BF16").as_deref() != Ok("widen")
            && std::arch::is_aarch64_feature_detected!("bf16")
    })
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

/// How bf16 matrix products are computed, slowest to fastest: operands widened to f32
/// for the f32 GEMM, AVX512_BF16 `vdpbf16ps` on pairs, or AMX tiles (`tdpbf16ps`).
/// `RG_CPU_BF16=widen|avx512bf16|amx` caps the level (to compare the paths on one
/// machine); a `RG_CPU_SIMD` cap below AVX-512 means `Widen`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Bf16Level {
    Widen = 1,
    Dot = 2,
    Amx = 3,
}

static BF16_SUPPORT: AtomicU8 = AtomicU8::new(0);
static BF16_LEVEL: AtomicU8 = AtomicU8::new(0);

fn bf16_from(v: u8) -> Option<Bf16Level> {
    match v {
        1 => Some(Bf16Level::Widen),
        2 => Some(Bf16Level::Dot),
        3 => Some(Bf16Level::Amx),
        _ => None,
    }
}

/// The fastest bf16 path this CPU and OS allow, ignoring `RG_CPU_BF16` (tests use it
/// to run every path the machine has). Detected once; the first call that finds AMX
/// asks Linux for the tile-data permission, and without it reports `Dot` at most.
pub fn bf16_support() -> Bf16Level {
    if let Some(l) = bf16_from(BF16_SUPPORT.load(Ordering::Relaxed)) {
        return l;
    }
    let l = detect_bf16();
    BF16_SUPPORT.store(l as u8, Ordering::Relaxed);
    l
}

/// The bf16 path in use: [`bf16_support`] capped by `RG_CPU_BF16` and `RG_CPU_SIMD`,
/// and widening where `vdpbf16ps` is the slower of the two (see [`dot_beats_widening`]).
pub fn bf16_level() -> Bf16Level {
    if let Some(l) = bf16_from(BF16_LEVEL.load(Ordering::Relaxed)) {
        return l;
    }
    let cap = match std::env::var("RG_CPU_BF16").as_deref() {
        Ok("widen") => Bf16Level::Widen,
        Ok("avx512bf16") => Bf16Level::Dot,
        _ => Bf16Level::Amx,
    };
    let l = match bf16_support().min(cap) {
        // Asked for by name, the slower path still runs (to compare the two).
        Bf16Level::Dot if !dot_beats_widening() && cap != Bf16Level::Dot => Bf16Level::Widen,
        l => l,
    };
    BF16_LEVEL.store(l as u8, Ordering::Relaxed);
    l
}

/// Whether `vdpbf16ps` outruns the f32 GEMM on widened operands: on AMD (Zen 4/5) it
/// issues as often as an f32 FMA and does twice its work (bf16 GEMM 345-382 GFLOP/s
/// against 181-184 for f32 on Zen 4); Intel cores issue it once per two cycles against
/// two FMAs per cycle (Xeon Emerald Rapids: 1.34 G/s against 5.48 G/s in a dependency-
/// free loop), half the f32 rate, so the widening path wins there (bf16 GEMM 2048:
/// 190 GFLOP/s widened, 140 with `vdpbf16ps`). Intel CPUs with AMX use the tiles.
fn dot_beats_widening() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        let v = std::arch::x86_64::__cpuid(0);
        let vendor = [v.ebx, v.edx, v.ecx].map(u32::to_le_bytes).concat();
        vendor != *b"GenuineIntel"
    }
    #[cfg(not(target_arch = "x86_64"))]
    true
}

fn detect_bf16() -> Bf16Level {
    #[cfg(all(target_arch = "x86_64", rg_cpu_avx512))]
    {
        // The bf16 kernels and their packers use AVX-512F (and BW for the packers).
        if level() < Level::Avx512 || !is_x86_feature_detected!("avx512bw") {
            return Bf16Level::Widen;
        }
        if amx_bf16_cpuid() && amx_permitted() {
            return Bf16Level::Amx;
        }
        if is_x86_feature_detected!("avx512bf16") {
            return Bf16Level::Dot;
        }
    }
    Bf16Level::Widen
}

/// CPUID leaf 7: AMX-TILE (EDX bit 24) and AMX-BF16 (EDX bit 22), and the OS enabling
/// the tile state in XCR0 (bits 17 and 18, checked after OSXSAVE).
#[cfg(all(target_arch = "x86_64", rg_cpu_avx512))]
fn amx_bf16_cpuid() -> bool {
    use std::arch::x86_64::{__cpuid, __cpuid_count};
    // Leaf 7 only after checking leaf 0's maximum.
    let max = __cpuid(0).eax;
    if max < 7 {
        return false;
    }
    let edx = __cpuid_count(7, 0).edx;
    let cpu = edx & (1 << 24) != 0 && edx & (1 << 22) != 0;
    let osxsave = __cpuid(1).ecx & (1 << 27) != 0;
    if !cpu || !osxsave {
        return false;
    }
    let xcr0: u64;
    // SAFETY: XGETBV with ECX = 0 is valid once CPUID reports OSXSAVE.
    unsafe {
        let (lo, hi): (u32, u32);
        std::arch::asm!("xgetbv", in("ecx") 0, out("eax") lo, out("edx") hi, options(nomem, nostack));
        xcr0 = (u64::from(hi) << 32) | u64::from(lo);
    }
    xcr0 & (0b11 << 17) == 0b11 << 17
}

/// Linux hands out AMX tile data only to processes that ask (`arch_prctl(
/// ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA)`, kernel 5.16+); the permission then holds
/// for every thread of the process. A refusal (older kernel, seccomp) means no AMX.
#[cfg(all(target_arch = "x86_64", rg_cpu_avx512))]
fn amx_permitted() -> bool {
    #[cfg(target_os = "linux")]
    {
        const SYS_ARCH_PRCTL: usize = 158;
        const ARCH_REQ_XCOMP_PERM: usize = 0x1023;
        const XFEATURE_XTILEDATA: usize = 18;
        let ret: isize;
        // SAFETY: a plain syscall with integer arguments that reads and writes no memory
        // of ours; rcx and r11 are clobbered by `syscall`.
        unsafe {
            std::arch::asm!(
                "syscall",
                inlateout("rax") SYS_ARCH_PRCTL => ret,
                in("rdi") ARCH_REQ_XCOMP_PERM,
                in("rsi") XFEATURE_XTILEDATA,
                lateout("rcx") _,
                lateout("r11") _,
                options(nostack),
            );
        }
        ret == 0
    }
    #[cfg(not(target_os = "linux"))]
    false
}
