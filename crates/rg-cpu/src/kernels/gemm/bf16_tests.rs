//! The bf16 GEMM against an f64 product of the same bf16 values, for every bf16 kernel
//! this machine has (AMX and AVX512_BF16 on a Sapphire Rapids), over ragged sizes,
//! several blocks in every dimension, each operand layout (the fast packers and the
//! element-by-element one), one thread and the pool.

use half::bf16;
use proptest::prelude::*;

use super::bf16::{gemm, nc, one_block_max, Bf16Kernel, KC, MC};
use super::{Mat, Rounded};

/// A deterministic generator of values in `[-1, 1)`, as bf16.
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> bf16 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        bf16::from_f32(((self.0 >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0)
    }
}

#[derive(Debug, Clone, Copy)]
enum Layout {
    RowMajor,
    /// Stored as its transpose (unit row stride): the gradients' operands.
    Transposed,
    /// Row-major with padded rows and a leading offset.
    Padded,
    /// Neither stride is 1.
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

/// A buffer holding a `rows x cols` operand, and its `(offset, row stride, col stride)`.
fn operand(
    rows: usize,
    cols: usize,
    layout: Layout,
    rng: &mut Lcg,
) -> (Vec<bf16>, usize, usize, usize) {
    let (len, off, rs, cs) = match layout {
        Layout::RowMajor => (rows * cols, 0, cols, 1),
        Layout::Transposed => (rows * cols, 0, 1, rows),
        Layout::Padded => (3 + rows * (cols + 5), 3, cols + 5, 1),
        Layout::Strided => (rows * cols * 2, 1, 2 * cols, 2),
        Layout::BroadcastRow => (cols, 0, 0, 1),
    };
    ((0..len.max(1)).map(|_| rng.next()).collect(), off, rs, cs)
}

fn check(
    kern: Bf16Kernel,
    (m, n, k): (usize, usize, usize),
    (la, lb): (Layout, Layout),
    parallel: bool,
    seed: u64,
) {
    let mut rng = Lcg(seed);
    let (ad, ao, ars, acs) = operand(m, k, la, &mut rng);
    let (bd, bo, brs, bcs) = operand(k, n, lb, &mut rng);
    let at = |i: usize, p: usize| ad[ao + i * ars + p * acs].to_f64();
    let bt = |p: usize, j: usize| bd[bo + p * brs + j * bcs].to_f64();
    let a = Mat {
        ptr: ad[ao..].as_ptr(),
        rs: ars,
        cs: acs,
    };
    let b = Mat {
        ptr: bd[bo..].as_ptr(),
        rs: brs,
        cs: bcs,
    };
    // Odd seeds start every row from a bias.
    let bias: Option<Vec<f32>> =
        (seed % 2 == 1).then(|| (0..n).map(|_| rng.next().to_f32()).collect());
    let ldc = n + 3;
    let run = |c: &mut [f32], rounded: Option<Rounded>| {
        // SAFETY: the kernel is available; the operands were built for exactly these
        // dims and strides; `c` (and `rounded`) hold `m` rows of `ldc >= n` values.
        unsafe {
            gemm(
                kern,
                (m, n, k),
                a,
                b,
                bias.as_deref(),
                (c.as_mut_ptr(), ldc),
                rounded,
                parallel,
            )
        }
    };
    let mut c = vec![f32::NAN; m * ldc];
    run(&mut c, None);
    // The same product rounded to bf16 as it is stored, with C as scratch.
    let mut rounded = vec![bf16::NAN; m * ldc];
    run(
        &mut vec![f32::NAN; m * ldc],
        Some(Rounded(rounded.as_mut_ptr())),
    );
    // The products of bf16 values are exact in f32; what differs from f64 is the f32
    // rounding of the running sums, about 2^-24 per addition of the magnitudes.
    let tol = 2e-6 * (k.max(1) as f64).sqrt();
    let what = format!(
        "{kern:?} ({m}, {n}, {k}) {la:?} x {lb:?} parallel {parallel} bias {}",
        bias.is_some()
    );
    let mut row = vec![(0.0f64, 0.0f64); n];
    for i in 0..m {
        row.fill((0.0, 0.0));
        if let Some(bias) = &bias {
            row.iter_mut()
                .zip(bias)
                .for_each(|(r, &b)| *r = (b as f64, (b as f64).abs()));
        }
        for p in 0..k {
            let x = at(i, p);
            for (j, (s, mag)) in row.iter_mut().enumerate() {
                let y = x * bt(p, j);
                *s += y;
                *mag += y.abs();
            }
        }
        for (j, &(want, mag)) in row.iter().enumerate() {
            let got = c[i * ldc + j] as f64;
            assert!(
                (got - want).abs() <= tol * mag + 1e-30,
                "{what}: c[{i}][{j}] = {got}, want {want}"
            );
            // Rounding to bf16 (8 significant bits) moves a value by at most half its
            // last place, 2^-8 of it.
            let got = rounded[i * ldc + j].to_f64();
            let bound = tol * mag + (want.abs() + tol * mag) / 256.0 + 1e-30;
            assert!(
                (got - want).abs() <= bound,
                "{what}: rounded[{i}][{j}] = {got}, want {want}"
            );
        }
        assert!(
            c[i * ldc + n..(i + 1) * ldc].iter().all(|x| x.is_nan()),
            "row padding written"
        );
        assert!(
            rounded[i * ldc + n..(i + 1) * ldc]
                .iter()
                .all(|x| x.is_nan()),
            "rounded row padding written"
        );
    }
}

fn kernels() -> Vec<Bf16Kernel> {
    let v = Bf16Kernel::available();
    if v.is_empty() {
        eprintln!("no bf16 kernel on this CPU: nothing to test");
    }
    v
}

const SIZES: [usize; 13] = [1, 2, 3, 15, 16, 17, 31, 32, 33, 64, 65, 100, 129];

#[test]
fn odd_sizes_every_kernel() {
    for kern in kernels() {
        for (s, &m) in SIZES.iter().enumerate() {
            for t in 0..4 {
                let n = SIZES[(s + 3 * t + 1) % SIZES.len()];
                let k = SIZES[(s * 5 + t) % SIZES.len()];
                let lay = (LAYOUTS[(s + t) % 5], LAYOUTS[(s * 2 + t) % 5]);
                check(kern, (m, n, k), lay, t % 2 == 1, (s * 7 + t) as u64);
            }
        }
    }
}

#[test]
fn every_layout_pair_whole_and_partial_tiles() {
    for kern in kernels() {
        for la in LAYOUTS {
            for lb in LAYOUTS {
                // Whole 32 x 32 tiles and chunks (the vector packers) ...
                check(kern, (64, 96, 128), (la, lb), false, 1);
                // ... and ragged in every dimension.
                check(kern, (37, 70, 45), (la, lb), true, 2);
            }
        }
    }
}

#[test]
fn zero_and_unit_depth() {
    for kern in kernels() {
        for (m, n) in [(1, 1), (5, 70), (33, 17)] {
            check(
                kern,
                (m, n, 0),
                (Layout::RowMajor, Layout::RowMajor),
                false,
                3,
            );
            check(
                kern,
                (m, n, 1),
                (Layout::Transposed, Layout::Padded),
                true,
                4,
            );
        }
    }
}

#[test]
fn several_blocks_in_every_dimension() {
    for kern in kernels() {
        // Row blocks.
        check(
            kern,
            (MC + 40, 70, 300),
            (Layout::RowMajor, Layout::Transposed),
            true,
            5,
        );
        // Depth and column blocks, the last of each ragged.
        check(
            kern,
            (70, nc(kern, KC) + 45, one_block_max() + KC + 3),
            (Layout::Transposed, Layout::RowMajor),
            false,
            6,
        );
        // The deepest single depth block, over several column blocks.
        check(
            kern,
            (70, nc(kern, one_block_max()) + 45, one_block_max()),
            (Layout::RowMajor, Layout::RowMajor),
            true,
            7,
        );
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(32))]

    #[test]
    fn random_shapes_and_layouts(
        m in 1usize..100,
        n in 1usize..150,
        k in 0usize..300,
        la in 0usize..5,
        lb in 0usize..5,
        parallel in any::<bool>(),
        which in any::<bool>(),
        seed in any::<u64>(),
    ) {
        let ks = Bf16Kernel::available();
        if let Some(&kern) = ks.get(usize::from(which) % ks.len().max(1)) {
            check(kern, (m, n, k), (LAYOUTS[la], LAYOUTS[lb]), parallel, seed);
        }
    }
}
