//! The elementwise engine: applies a function to one, two or three views of one shape
//! and writes a new row-major vector. Runs along the innermost axis get specialised
//! loops (unit stride, broadcast stride 0, general stride) so the common cases
//! auto-vectorise; large outputs are split across the rayon pool.

use rayon::prelude::*;

use crate::aligned::AlignedVec;
use crate::parallel::chunk_len;
use crate::simd::multiversion;
use crate::storage::CpuElement;
use crate::strided::Walk;
use crate::view::Typed;

/// Fills `out` (row-major over `walk`'s shape) run by run, in parallel chunks when large.
/// `body(run_out, bases)` writes one run whose first element sits at `bases[v]` in view `v`.
pub fn drive<U: Send, const N: usize>(
    walk: &Walk<N>,
    out: &mut [U],
    body: impl Fn(&mut [U], [usize; N]) + Sync,
) {
    drive_weighted(walk, out, 1, body)
}

/// [`drive`] for outputs that each cost about `cost` element reads (a reduction), so
/// that the decision to go parallel, and the chunk size, follow the real work.
pub fn drive_weighted<U: Send, const N: usize>(
    walk: &Walk<N>,
    out: &mut [U],
    cost: usize,
    body: impl Fn(&mut [U], [usize; N]) + Sync,
) {
    let n = out.len();
    let cost = cost.max(1);
    let chunk = (chunk_len(n.saturating_mul(cost)) / cost).max(1);
    let fill = |start: usize, part: &mut [U]| {
        walk.for_runs(start, start + part.len(), |pos, bases, run| {
            body(&mut part[pos - start..pos - start + run], bases)
        })
    };
    if chunk >= n {
        fill(0, out);
    } else {
        out.par_chunks_mut(chunk)
            .enumerate()
            .for_each(|(i, part)| fill(i * chunk, part));
    }
}

/// Tiles of [`tiled_2d`]: 256 rows (a column-major input is read 1 KiB at a time along
/// its columns, a stream the prefetcher follows) by 16 columns (one cache line of each
/// f32 output row, written whole before it leaves the cache).
const TILE_ROWS: usize = 256;
const TILE_COLS: usize = 16;

/// Whether `layout` is a matrix stored column by column (a transposed weight): walking
/// the output row by row would read it a whole column apart per element, a cache miss
/// each (casting GPT-2's transposed weights to bf16 took 4.4 ns per element that way).
fn column_major_2d(layout: &rg_core::Layout) -> bool {
    let (dims, strides) = (layout.dims(), layout.strides());
    dims.len() == 2 && dims[0] > 1 && dims[1] > 1 && strides[0] == 1 && strides[1] >= dims[0]
}

/// Fills the row-major `[rows, cols]` output with `elem(i, j)` tile by tile, walking each
/// tile column by column: a column-major input is read along its columns and the output
/// rows of a tile stay in cache while they are written.
fn tiled_2d<U: Send>(cols: usize, out: &mut [U], elem: impl Fn(usize, usize) -> U + Sync) {
    let fill = |t: usize, block: &mut [U]| {
        let i0 = t * TILE_ROWS;
        let height = block.len() / cols;
        for j0 in (0..cols).step_by(TILE_COLS) {
            for j in j0..(j0 + TILE_COLS).min(cols) {
                for di in 0..height {
                    block[di * cols + j] = elem(i0 + di, j);
                }
            }
        }
    };
    if crate::parallel::worth_parallel(out.len()) {
        out.par_chunks_mut(TILE_ROWS * cols)
            .enumerate()
            .for_each(|(t, block)| fill(t, block));
    } else {
        for (t, block) in out.chunks_mut(TILE_ROWS * cols).enumerate() {
            fill(t, block);
        }
    }
}

/// `f(x)` for every element of `src`.
pub fn map1<T, U, F>(src: Typed<'_, T>, f: F) -> AlignedVec<U>
where
    T: CpuElement,
    U: CpuElement,
    F: Fn(T) -> U + Sync,
{
    map1_runs(src, f, |_: &mut [U], _: &[T]| false)
}

/// [`map1`] that tries `run(out, a)` first on each unit-stride run: a kernel written with
/// a target's vector instructions, which returns `false` (nothing written) where it
/// does not apply, and then `f`'s loop runs.
pub fn map1_runs<T, U, F, R>(src: Typed<'_, T>, f: F, run: R) -> AlignedVec<U>
where
    T: CpuElement,
    U: CpuElement,
    F: Fn(T) -> U + Sync,
    R: Fn(&mut [U], &[T]) -> bool + Sync,
{
    if column_major_2d(src.layout) {
        let (data, [s0, s1], base) = (src.data, strides2(src.layout), src.layout.offset());
        let cols = src.layout.dims()[1];
        let mut out = crate::pool::for_overwrite(src.layout.elem_count());
        tiled_2d(cols, &mut out, |i, j| f(data[base + i * s0 + j * s1]));
        return out;
    }
    let walk = Walk::new([src.layout]);
    let [s] = walk.inner_strides();
    let data = src.data;
    let mut out = crate::pool::for_overwrite(walk.len());
    drive(&walk, &mut out, |o, [b]| match s {
        1 => {
            let a = &data[b..b + o.len()];
            if !run(o, a) {
                unit1(o, a, &f);
            }
        }
        0 => o.fill(f(data[b])),
        s => {
            for (k, o) in o.iter_mut().enumerate() {
                *o = f(data[b + k * s]);
            }
        }
    });
    out
}

/// `f(a, b)` for every pair of elements of two views of one shape.
pub fn map2<A, B, U, F>(a: Typed<'_, A>, b: Typed<'_, B>, f: F) -> AlignedVec<U>
where
    A: CpuElement,
    B: CpuElement,
    U: CpuElement,
    F: Fn(A, B) -> U + Sync,
{
    map2_runs(a, b, f, |_: &mut [U], _: &[A], _: &[B]| false)
}

/// [`map2`] that tries `run(out, a, b)` first where both inputs run with unit stride
/// (see [`map1_runs`]).
pub fn map2_runs<A, B, U, F, R>(a: Typed<'_, A>, b: Typed<'_, B>, f: F, run: R) -> AlignedVec<U>
where
    A: CpuElement,
    B: CpuElement,
    U: CpuElement,
    F: Fn(A, B) -> U + Sync,
    R: Fn(&mut [U], &[A], &[B]) -> bool + Sync,
{
    let two_d = a.layout.dims().len() == 2 && b.layout.dims() == a.layout.dims();
    if two_d && (column_major_2d(a.layout) || column_major_2d(b.layout)) {
        let (da, [a0, a1], oa) = (a.data, strides2(a.layout), a.layout.offset());
        let (db, [b0, b1], ob) = (b.data, strides2(b.layout), b.layout.offset());
        let cols = a.layout.dims()[1];
        let mut out = crate::pool::for_overwrite(a.layout.elem_count());
        tiled_2d(cols, &mut out, |i, j| {
            f(da[oa + i * a0 + j * a1], db[ob + i * b0 + j * b1])
        });
        return out;
    }
    let walk = Walk::new([a.layout, b.layout]);
    let (da, db) = (a.data, b.data);
    let mut out = crate::pool::for_overwrite(walk.len());
    drive(&walk, &mut out, |o, [ba, bb]| {
        let n = o.len();
        match walk.inner_strides() {
            [1, 1] => {
                let (x, y) = (&da[ba..ba + n], &db[bb..bb + n]);
                if !run(o, x, y) {
                    unit2(o, x, y, &f);
                }
            }
            [1, 0] => {
                let y = db[bb];
                unit1(o, &da[ba..ba + n], &|x| f(x, y));
            }
            [0, 1] => {
                let x = da[ba];
                unit1(o, &db[bb..bb + n], &|y| f(x, y));
            }
            [sa, sb] => {
                for (k, o) in o.iter_mut().enumerate() {
                    *o = f(da[ba + k * sa], db[bb + k * sb]);
                }
            }
        }
    });
    out
}

/// `f(a, b, c)` for every triple of elements of three views of one shape.
pub fn map3<A, B, C, U, F>(a: Typed<'_, A>, b: Typed<'_, B>, c: Typed<'_, C>, f: F) -> AlignedVec<U>
where
    A: CpuElement,
    B: CpuElement,
    C: CpuElement,
    U: CpuElement,
    F: Fn(A, B, C) -> U + Sync,
{
    let walk = Walk::new([a.layout, b.layout, c.layout]);
    let (da, db, dc) = (a.data, b.data, c.data);
    let mut out = crate::pool::for_overwrite(walk.len());
    drive(&walk, &mut out, |o, [ba, bb, bc]| {
        let n = o.len();
        match walk.inner_strides() {
            [1, 1, 1] => unit3(o, &da[ba..ba + n], &db[bb..bb + n], &dc[bc..bc + n], &f),
            [sa, sb, sc] => {
                for (k, o) in o.iter_mut().enumerate() {
                    *o = f(da[ba + k * sa], db[bb + k * sb], dc[bc + k * sc]);
                }
            }
        }
    });
    out
}

multiversion! {
    /// `out[i] = f(a[i])` over unit-stride runs.
    fn unit1<A, U, F>(out: &mut [U], a: &[A], f: &F) where [A: Copy, F: Fn(A) -> U] {
        for (o, &x) in out.iter_mut().zip(a) {
            *o = f(x);
        }
    }
}

multiversion! {
    /// `out[i] = f(a[i], b[i])` over unit-stride runs.
    fn unit2<A, B, U, F>(out: &mut [U], a: &[A], b: &[B], f: &F) where [A: Copy, B: Copy, F: Fn(A, B) -> U] {
        for ((o, &x), &y) in out.iter_mut().zip(a).zip(b) {
            *o = f(x, y);
        }
    }
}

multiversion! {
    /// `out[i] = f(a[i], b[i], c[i])` over unit-stride runs.
    fn unit3<A, B, C, U, F>(out: &mut [U], a: &[A], b: &[B], c: &[C], f: &F)
    where [A: Copy, B: Copy, C: Copy, F: Fn(A, B, C) -> U]
    {
        for (((o, &x), &y), &z) in out.iter_mut().zip(a).zip(b).zip(c) {
            *o = f(x, y, z);
        }
    }
}

fn strides2(layout: &rg_core::Layout) -> [usize; 2] {
    [layout.strides()[0], layout.strides()[1]]
}
