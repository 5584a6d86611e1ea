//! The GEMM against a naive f64 product, for every kernel (the portable one included,
//! so the fallback is exercised on AVX-512 machines too), over sizes that are not
//! multiples of the tiles or blocks, strided and transposed operands, in-place and
//! packed lhs, one thread and the pool.

use half::bf16;
use proptest::prelude::*;

use super::{depth_block, gemm, nc, one_block_max, Elem, Kernel, Mat, KC, MC};

/// A deterministic generator of values in `[-1, 1)`.
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> f32 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((self.0 >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
    }
}

/// How an operand of `rows x cols` is laid out in its buffer.
#[derive(Debug, Clone, Copy)]
enum Layout {
    RowMajor,
    /// Stored as its transpose (unit row stride).
    Transposed,
    /// Row-major with padded rows and a leading offset.
    Padded,
    /// Neither stride is 1 (every other element of a wider buffer).
    Strided,
    /// One row repeated (row stride 0).
    BroadcastRow,
}

const LAYOUTS: [Layout; 5] = [
    Layout::RowMajor,
    Layout::Transposed,
    Layout::Padded,
    Layout::Strided,
    Layout::BroadcastRow,
];

/// A buffer and the `(offset, row stride, col stride)` describing the operand in it.
fn operand(
    rows: usize,
    cols: usize,
    layout: Layout,
    rng: &mut Lcg,
) -> (Vec<f32>, usize, usize, usize) {
    let (len, off, rs, cs) = match layout {
        Layout::RowMajor => (rows * cols, 0, cols, 1),
        Layout::Transposed => (rows * cols, 0, 1, rows),
        Layout::Padded => (3 + rows * (cols + 5), 3, cols + 5, 1),
        Layout::Strided => (rows * cols * 2, 1, 2 * cols, 2),
        Layout::BroadcastRow => (cols, 0, 0, 1),
    };
    ((0..len.max(1)).map(|_| rng.next()).collect(), off, rs, cs)
}

/// `a * b` in f64 from the operands' f32 values.
fn reference(
    (m, n, k): (usize, usize, usize),
    a: impl Fn(usize, usize) -> f64,
    b: impl Fn(usize, usize) -> f64,
) -> (Vec<f64>, Vec<f64>) {
    // The product and, for the tolerance, the product of magnitudes.
    let mut c = vec![0.0; m * n];
    let mut mag = vec![0.0; m * n];
    for i in 0..m {
        for p in 0..k {
            let x = a(i, p);
            for j in 0..n {
                c[i * n + j] += x * b(p, j);
                mag[i * n + j] += (x * b(p, j)).abs();
            }
        }
    }
    (c, mag)
}

/// Runs the GEMM with operands of element type `E` (converted from the f32 test data)
/// and checks it against the f64 product of the converted values.
fn check<E: Elem>(
    kern: Kernel,
    (m, n, k): (usize, usize, usize),
    (la, lb): (Layout, Layout),
    parallel: bool,
    seed: u64,
    convert: fn(f32) -> E,
) {
    let mut rng = Lcg(seed);
    let (ad, ao, ars, acs) = operand(m, k, la, &mut rng);
    let (bd, bo, brs, bcs) = operand(k, n, lb, &mut rng);
    let ae: Vec<E> = ad.iter().map(|&x| convert(x)).collect();
    let be: Vec<E> = bd.iter().map(|&x| convert(x)).collect();
    let a = Mat {
        ptr: ae[ao..].as_ptr(),
        rs: ars,
        cs: acs,
    };
    let b = Mat {
        ptr: be[bo..].as_ptr(),
        rs: brs,
        cs: bcs,
    };
    // Output rows padded, and pre-filled with garbage the GEMM must overwrite.
    let ldc = n + 3;
    let mut c = vec![f32::NAN; m * ldc];
    // SAFETY: the operands were built for exactly these dims and strides, and `c` holds
    // `m` rows of `ldc >= n` values.
    unsafe { gemm(kern, (m, n, k), a, b, None, c.as_mut_ptr(), ldc, parallel) };
    let (want, mag) = reference(
        (m, n, k),
        |i, p| ae[ao + i * ars + p * acs].to_f32() as f64,
        |p, j| be[bo + p * brs + j * bcs].to_f32() as f64,
    );
    let tol = 1e-5 * (k.max(1) as f64).sqrt();
    for i in 0..m {
        for j in 0..n {
            let (got, w) = (c[i * ldc + j] as f64, want[i * n + j]);
            assert!(
                (got - w).abs() <= tol * mag[i * n + j].max(1e-30) + 1e-30,
                "({m}, {n}, {k}) {la:?} x {lb:?} parallel {parallel}: c[{i}][{j}] = {got}, want {w}"
            );
        }
        // The padding between rows is never written.
        assert!(c[i * ldc + n..(i + 1) * ldc].iter().all(|x| x.is_nan()));
    }
}

/// Every kernel this CPU can run: the portable one, and the hand-written ones for
/// its vector units (an AVX-512 machine runs the AVX2 kernel too).
fn kernels() -> Vec<Kernel> {
    let mut v = vec![Kernel::portable()];
    v.extend(Kernel::avx512());
    v.extend(Kernel::avx2());
    v.extend(Kernel::neon());
    v.extend(Kernel::simd128());
    v
}

const SIZES: [usize; 12] = [1, 2, 3, 15, 17, 31, 33, 64, 65, 100, 129, 257];

#[test]
fn odd_sizes_every_kernel() {
    for kern in kernels() {
        for (s, &m) in SIZES.iter().enumerate() {
            // A spread of (n, k) per m rather than the full cube.
            for t in 0..4 {
                let n = SIZES[(s + 3 * t + 1) % SIZES.len()];
                let k = SIZES[(s * 5 + t) % SIZES.len()];
                let lay = (LAYOUTS[(s + t) % 5], LAYOUTS[(s * 2 + t) % 5]);
                check::<f32>(kern, (m, n, k), lay, t % 2 == 1, (s * 7 + t) as u64, |x| x);
            }
        }
    }
}

#[test]
fn every_layout_pair() {
    for kern in kernels() {
        for la in LAYOUTS {
            for lb in LAYOUTS {
                check::<f32>(kern, (37, 70, 45), (la, lb), false, 1, |x| x);
                check::<f32>(kern, (13, 7, 300), (la, lb), true, 2, |x| x);
            }
        }
    }
}

#[test]
fn zero_and_unit_depth() {
    for kern in kernels() {
        for (m, n) in [(1, 1), (5, 70), (33, 17)] {
            check::<f32>(
                kern,
                (m, n, 0),
                (Layout::RowMajor, Layout::RowMajor),
                false,
                3,
                |x| x,
            );
            check::<f32>(
                kern,
                (m, n, 1),
                (Layout::Transposed, Layout::Padded),
                true,
                4,
                |x| x,
            );
        }
    }
}

#[test]
fn several_blocks_in_every_dimension() {
    // Past MC in rows and NC in columns, with ragged last blocks; then past the
    // deepest one-block product in depth.
    for (dims, seed) in [
        ((MC + 70, nc(KC, 64) + 45, KC + 100), 5),
        ((70, 200, one_block_max() + KC + 5), 8),
    ] {
        for kern in kernels() {
            check::<f32>(
                kern,
                dims,
                (Layout::RowMajor, Layout::Transposed),
                true,
                seed,
                |x| x,
            );
        }
    }
    // One thread, packed lhs (transposed), depth past two blocks.
    check::<f32>(
        Kernel::best(),
        (100, 90, one_block_max() + 2 * KC + 3),
        (Layout::Transposed, Layout::RowMajor),
        false,
        6,
        |x| x,
    );
}

#[test]
fn a_depth_up_to_the_one_block_limit_is_one_block() {
    let most = one_block_max();
    assert!(most >= KC);
    assert_eq!((depth_block(1), depth_block(most)), (1, most));
    assert_eq!(depth_block(most + 1), KC);
    // The deepest one-block product, with more columns than one rhs block holds at that
    // depth, on both paths of the lhs.
    let dims = (70, nc(most, 64) + 45, most);
    for (s, layouts) in [
        (Layout::RowMajor, Layout::RowMajor),
        (Layout::Transposed, Layout::Transposed),
    ]
    .into_iter()
    .enumerate()
    {
        for kern in kernels() {
            check::<f32>(kern, dims, layouts, s == 0, 7 + s as u64, |x| x);
        }
    }
}

#[test]
fn lhs_with_a_4k_row_pitch() {
    // Row pitch 1024 f32 = 4 KiB (rows share L1 sets), read in place over 1024 depths.
    for kern in kernels() {
        check::<f32>(
            kern,
            (20, 40, 1024),
            (Layout::RowMajor, Layout::RowMajor),
            false,
            7,
            |x| x,
        );
    }
}

#[test]
fn bf16_operands_accumulate_in_f32() {
    for kern in kernels() {
        for (m, n, k) in [(1, 1, 1), (7, 65, 33), (64, 64, 64), (17, 100, 300)] {
            for (la, lb) in [
                (Layout::RowMajor, Layout::RowMajor),
                (Layout::Transposed, Layout::Strided),
            ] {
                check::<bf16>(kern, (m, n, k), (la, lb), m > 32, 8, bf16::from_f32);
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn random_shapes_and_layouts(
        m in 1usize..90,
        n in 1usize..150,
        k in 0usize..300,
        la in 0usize..5,
        lb in 0usize..5,
        parallel in any::<bool>(),
        portable in any::<bool>(),
        seed in any::<u64>(),
    ) {
        let kern = if portable { Kernel::portable() } else { Kernel::best() };
        check::<f32>(kern, (m, n, k), (LAYOUTS[la], LAYOUTS[lb]), parallel, seed, |x| x);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    /// The hand-written kernels of this CPU (AVX-512, AVX2, NEON) against the portable one,
    /// element by element, to 1e-5 of the sum of the terms' magnitudes, on shapes
    /// whose edges are not multiples of either kernel's tile.
    #[test]
    fn native_kernel_matches_portable(
        m in 1usize..70,
        n in 1usize..100,
        k in 1usize..300,
        la in 0usize..5,
        lb in 0usize..5,
        seed in any::<u64>(),
    ) {
        let native_kernels = &kernels()[1..];
        let mut rng = Lcg(seed);
        let (ad, ao, ars, acs) = operand(m, k, LAYOUTS[la], &mut rng);
        let (bd, bo, brs, bcs) = operand(k, n, LAYOUTS[lb], &mut rng);
        let a = Mat { ptr: ad[ao..].as_ptr(), rs: ars, cs: acs };
        let b = Mat { ptr: bd[bo..].as_ptr(), rs: brs, cs: bcs };
        let run = |kern: Kernel| {
            let mut c = vec![f32::NAN; m * n];
            // SAFETY: the operands were built for these dims and strides; `c` is `m x n`.
            unsafe { gemm(kern, (m, n, k), a, b, None, c.as_mut_ptr(), n, false) };
            c
        };
        let want = run(Kernel::portable());
        let (_, mag) = reference(
            (m, n, k),
            |i, p| ad[ao + i * ars + p * acs] as f64,
            |p, j| bd[bo + p * brs + j * bcs] as f64,
        );
        for &native in native_kernels {
            let got = run(native);
            for (idx, (&g, &w)) in got.iter().zip(&want).enumerate() {
                prop_assert!(
                    (g as f64 - w as f64).abs() <= 1e-5 * mag[idx].max(1e-30),
                    "{} vs portable ({m}, {n}, {k}): c[{idx}] = {g}, want {w}", native.name()
                );
            }
        }
    }
}

/// The `bfdot` kernel (aarch64 CPUs with the BF16 extension, e.g. `qemu-aarch64 -cpu
/// max`) on bf16 operands: odd depths (a pair padded with zero), depths past `KC`,
/// every layout of either operand, one thread and the pool.
#[test]
fn bfdot_kernel_on_bf16_operands() {
    let Some(kern) = Kernel::neon_bfdot() else {
        eprintln!("no bfdot kernel on this CPU: not exercised");
        return;
    };
    for (s, (m, n, k)) in [
        (1, 1, 1),
        (8, 12, 2),
        (9, 13, 3),
        (7, 65, 33),
        (64, 64, 64),
        (17, 100, KC + 1),
        (40, 30, 2 * KC + 5),
    ]
    .into_iter()
    .enumerate()
    {
        for (t, (la, lb)) in LAYOUTS
            .into_iter()
            .zip(LAYOUTS.into_iter().rev())
            .enumerate()
        {
            let parallel = (s + t) % 2 == 1;
            check::<bf16>(
                kern,
                (m, n, k),
                (la, lb),
                parallel,
                (s * 5 + t) as u64,
                bf16::from_f32,
            );
        }
    }
}
