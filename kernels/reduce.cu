// Reductions along one axis: sum, max, min (NaN propagates) and argmax (u32, first
// maximum wins, NaN counts as the maximum). `lo` is the input's layout with the reduced
// axis removed (the outputs seen as a view of the input); element j of output o's run
// sits at `at(lo, o) + j * axis_stride`.
//
// Two shapes of launch (chosen in rg-cuda `ops/reduce.rs`):
// - `reduce_row_*`: one block per output, threads stride along the reduced run
//   (unit-stride runs, e.g. the last axis);
// - `reduce_col_*`: a block of 32 x 8 threads covers 32 neighbouring outputs, the 8 rows
//   of threads split the run (summing the rows of a matrix reads coalesced lines);
// - `reduce_part_*` + `reduce_finish_*`: the same, with the run also cut into
//   `gridDim.y` chunks whose partial results (accumulation type) a second kernel folds,
//   for few outputs over long runs (a bias gradient: 768 sums of 16K rows).
#include "common.cuh"

template <class A> struct SumOp {
    __device__ A init() const { return (A)0; }
    __device__ A step(A acc, A x) const { return acc + x; }
};
template <class A> struct MaxOp {
    __device__ A init() const { return -(A)INFINITY; }
    __device__ A step(A acc, A x) const { return nan_max(acc, x); }
};
template <class A> struct MinOp {
    __device__ A init() const { return (A)INFINITY; }
    __device__ A step(A acc, A x) const { return nan_min(acc, x); }
};

// (value, index): does `b` replace `a` as the arg-maximum? Larger wins, NaN beats
// numbers, ties and NaN-vs-NaN go to the smaller index.
template <class A> __device__ __forceinline__ bool beats(A bv, u32 bi, A av, u32 ai) {
    bool bn = is_nan(bv), an = is_nan(av);
    if (bn != an) return bn;
    if (!bn && bv != av) return bv > av;
    return bi < ai;
}

template <class T, class Op>
__device__ void reduce_row(u32 outputs, u32 len, const Layout& lo, u64 axis_stride, const T* x, T* y, Op op) {
    typedef typename AccT<T>::type A;
    __shared__ A scratch[32];
    for (u32 o = blockIdx.x; o < outputs; o += gridDim.x) {
        u64 base = at(lo, o);
        A acc = op.init();
        for (u32 j = threadIdx.x; j < len; j += blockDim.x) acc = op.step(acc, to_acc(x[base + j * axis_stride]));
        for (int s = 16; s > 0; s >>= 1) acc = op.step(acc, __shfl_xor_sync(0xffffffffu, acc, s));
        __syncthreads();
        if ((threadIdx.x & 31) == 0) scratch[threadIdx.x >> 5] = acc;
        __syncthreads();
        if (threadIdx.x == 0) {
            A r = scratch[0];
            for (u32 w = 1; w < (blockDim.x + 31) / 32; ++w) r = op.step(r, scratch[w]);
            y[o] = from_acc<T>(r);
        }
    }
}

template <class T, class Op>
__device__ void reduce_col(u32 outputs, u32 len, const Layout& lo, u64 axis_stride, const T* x, T* y, Op op) {
    typedef typename AccT<T>::type A;
    __shared__ A part[8][33];
    u32 o = blockIdx.x * 32 + threadIdx.x;
    A acc = op.init();
    if (o < outputs) {
        u64 base = at(lo, o);
        for (u32 j = threadIdx.y; j < len; j += 8) acc = op.step(acc, to_acc(x[base + j * axis_stride]));
    }
    part[threadIdx.y][threadIdx.x] = acc;
    __syncthreads();
    if (threadIdx.y == 0 && o < outputs) {
        for (int r = 1; r < 8; ++r) acc = op.step(acc, part[r][threadIdx.x]);
        y[o] = from_acc<T>(acc);
    }
}

// Chunk blockIdx.y of the run ([y * chunk, (y + 1) * chunk)) into part[y * outputs + o].
template <class T, class Op>
__device__ void reduce_part(u32 outputs, u32 len, const Layout& lo, u64 axis_stride, const T* x,
                            typename AccT<T>::type* part, u32 chunk, Op op) {
    typedef typename AccT<T>::type A;
    __shared__ A parts[8][33];
    u32 o = blockIdx.x * 32 + threadIdx.x;
    u32 begin = blockIdx.y * chunk;
    u32 end = min(len, begin + chunk);
    A acc = op.init();
    if (o < outputs) {
        u64 base = at(lo, o);
        for (u32 j = begin + threadIdx.y; j < end; j += 8) acc = op.step(acc, to_acc(x[base + j * axis_stride]));
    }
    parts[threadIdx.y][threadIdx.x] = acc;
    __syncthreads();
    if (threadIdx.y == 0 && o < outputs) {
        for (int r = 1; r < 8; ++r) acc = op.step(acc, parts[r][threadIdx.x]);
        part[(u64)blockIdx.y * outputs + o] = acc;
    }
}

// y[o] = fold of part[s * outputs + o] over the splits.
template <class T, class Op>
__device__ void reduce_finish(u32 outputs, u32 splits, const typename AccT<T>::type* part, T* y, Op op) {
    typedef typename AccT<T>::type A;
    FOR_EACH(o, outputs) {
        A acc = part[o];
        for (u32 s = 1; s < splits; ++s) acc = op.step(acc, part[(u64)s * outputs + o]);
        y[o] = from_acc<T>(acc);
    }
}

template <class T>
__device__ void argmax_row(u32 outputs, u32 len, const Layout& lo, u64 axis_stride, const T* x, u32* y) {
    typedef typename AccT<T>::type A;
    __shared__ A sv[32];
    __shared__ u32 si[32];
    for (u32 o = blockIdx.x; o < outputs; o += gridDim.x) {
        u64 base = at(lo, o);
        A bv = -(A)INFINITY;
        u32 bi = 0xffffffffu;
        for (u32 j = threadIdx.x; j < len; j += blockDim.x) {
            A v = to_acc(x[base + j * axis_stride]);
            if (bi == 0xffffffffu || beats(v, j, bv, bi)) { bv = v; bi = j; }
        }
        for (int s = 16; s > 0; s >>= 1) {
            A ov = __shfl_xor_sync(0xffffffffu, bv, s);
            u32 oi = __shfl_xor_sync(0xffffffffu, bi, s);
            if (oi != 0xffffffffu && (bi == 0xffffffffu || beats(ov, oi, bv, bi))) { bv = ov; bi = oi; }
        }
        __syncthreads();
        if ((threadIdx.x & 31) == 0) { sv[threadIdx.x >> 5] = bv; si[threadIdx.x >> 5] = bi; }
        __syncthreads();
        if (threadIdx.x == 0) {
            for (u32 w = 1; w < (blockDim.x + 31) / 32; ++w)
                if (si[w] != 0xffffffffu && (bi == 0xffffffffu || beats(sv[w], si[w], bv, bi))) { bv = sv[w]; bi = si[w]; }
            y[o] = bi;
        }
    }
}

template <class T>
__device__ void argmax_col(u32 outputs, u32 len, const Layout& lo, u64 axis_stride, const T* x, u32* y) {
    typedef typename AccT<T>::type A;
    __shared__ A pv[8][33];
    __shared__ u32 pi[8][33];
    u32 o = blockIdx.x * 32 + threadIdx.x;
    A bv = -(A)INFINITY;
    u32 bi = 0xffffffffu;
    if (o < outputs) {
        u64 base = at(lo, o);
        for (u32 j = threadIdx.y; j < len; j += 8) {
            A v = to_acc(x[base + j * axis_stride]);
            if (bi == 0xffffffffu || beats(v, j, bv, bi)) { bv = v; bi = j; }
        }
    }
    pv[threadIdx.y][threadIdx.x] = bv;
    pi[threadIdx.y][threadIdx.x] = bi;
    __syncthreads();
    if (threadIdx.y == 0 && o < outputs) {
        for (int r = 1; r < 8; ++r)
            if (pi[r][threadIdx.x] != 0xffffffffu && (bi == 0xffffffffu || beats(pv[r][threadIdx.x], pi[r][threadIdx.x], bv, bi))) {
                bv = pv[r][threadIdx.x]; bi = pi[r][threadIdx.x];
            }
        y[o] = bi;
    }
}

#define REDUCE(T, sfx) \
    extern "C" __global__ void reduce_row_sum_##sfx(u32 n, u32 len, Layout lo, u64 st, const T* x, T* y) { reduce_row<T>(n, len, lo, st, x, y, SumOp<AccT<T>::type>()); } \
    extern "C" __global__ void reduce_row_max_##sfx(u32 n, u32 len, Layout lo, u64 st, const T* x, T* y) { reduce_row<T>(n, len, lo, st, x, y, MaxOp<AccT<T>::type>()); } \
    extern "C" __global__ void reduce_row_min_##sfx(u32 n, u32 len, Layout lo, u64 st, const T* x, T* y) { reduce_row<T>(n, len, lo, st, x, y, MinOp<AccT<T>::type>()); } \
    extern "C" __global__ void reduce_row_argmax_##sfx(u32 n, u32 len, Layout lo, u64 st, const T* x, u32* y) { argmax_row<T>(n, len, lo, st, x, y); } \
    extern "C" __global__ void reduce_col_sum_##sfx(u32 n, u32 len, Layout lo, u64 st, const T* x, T* y) { reduce_col<T>(n, len, lo, st, x, y, SumOp<AccT<T>::type>()); } \
    extern "C" __global__ void reduce_col_max_##sfx(u32 n, u32 len, Layout lo, u64 st, const T* x, T* y) { reduce_col<T>(n, len, lo, st, x, y, MaxOp<AccT<T>::type>()); } \
    extern "C" __global__ void reduce_col_min_##sfx(u32 n, u32 len, Layout lo, u64 st, const T* x, T* y) { reduce_col<T>(n, len, lo, st, x, y, MinOp<AccT<T>::type>()); } \
    extern "C" __global__ void reduce_col_argmax_##sfx(u32 n, u32 len, Layout lo, u64 st, const T* x, u32* y) { argmax_col<T>(n, len, lo, st, x, y); }
#define REDUCE_SPLIT(T, sfx, name, OP) \
    extern "C" __global__ void reduce_part_##name##_##sfx(u32 n, u32 len, Layout lo, u64 st, const T* x, AccT<T>::type* part, u32 chunk) { \
        reduce_part<T>(n, len, lo, st, x, part, chunk, OP<AccT<T>::type>()); } \
    extern "C" __global__ void reduce_finish_##name##_##sfx(u32 n, u32 splits, const AccT<T>::type* part, T* y) { \
        reduce_finish<T>(n, splits, part, y, OP<AccT<T>::type>()); }
#define REDUCE_SPLITS(T, sfx) REDUCE_SPLIT(T, sfx, sum, SumOp) REDUCE_SPLIT(T, sfx, max, MaxOp) REDUCE_SPLIT(T, sfx, min, MinOp)
REDUCE_SPLITS(float, f32)
REDUCE_SPLITS(double, f64)
REDUCE_SPLITS(bf16, bf16)

REDUCE(float, f32)
REDUCE(double, f64)
REDUCE(bf16, bf16)
