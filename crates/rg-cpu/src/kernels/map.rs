//! The elementwise engine: applies a function to one, two or three views of one shape
//! and writes a new row-major vector. Runs along the innermost axis get specialised
//! loops (unit stride, broadcast stride 0, general stride) so the common cases
//! auto-vectorise; large outputs are split across the rayon pool.

use rayon::prelude::*;

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

/// `f(x)` for every element of `src`.
pub fn map1<T, U, F>(src: Typed<'_, T>, f: F) -> Vec<U>
where
    T: CpuElement,
    U: CpuElement,
    F: Fn(T) -> U + Sync,
{
    let walk = Walk::new([src.layout]);
    let [s] = walk.inner_strides();
    let data = src.data;
    let mut out = crate::pool::for_overwrite(walk.len());
    drive(&walk, &mut out, |o, [b]| match s {
        1 => {
            let n = o.len();
            unit1(o, &data[b..b + n], &f);
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
pub fn map2<A, B, U, F>(a: Typed<'_, A>, b: Typed<'_, B>, f: F) -> Vec<U>
where
    A: CpuElement,
    B: CpuElement,
    U: CpuElement,
    F: Fn(A, B) -> U + Sync,
{
    let walk = Walk::new([a.layout, b.layout]);
    let (da, db) = (a.data, b.data);
    let mut out = crate::pool::for_overwrite(walk.len());
    drive(&walk, &mut out, |o, [ba, bb]| {
        let n = o.len();
        match walk.inner_strides() {
            [1, 1] => unit2(o, &da[ba..ba + n], &db[bb..bb + n], &f),
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
pub fn map3<A, B, C, U, F>(a: Typed<'_, A>, b: Typed<'_, B>, c: Typed<'_, C>, f: F) -> Vec<U>
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
