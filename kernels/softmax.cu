// Softmax and log-softmax over the last axis of a contiguous [rows, cols] input, one
// block per row, forward and backward. Statistics in the accumulation type.
#include "common.cuh"

// log(sum(exp(x))) of one row as m + log(sum(exp(x - m))); an infinite maximum is
// returned as is (the shifted form would compute inf - inf).
template <class T, class A>
__device__ __forceinline__ A row_lse(const T* x, u32 cols, A* scratch) {
    A m = -(A)INFINITY;
    for (u32 j = threadIdx.x; j < cols; j += blockDim.x) m = nan_max(m, to_acc(x[j]));
    m = block_max(m, scratch);
    if (isinf(m)) return m;
    A s = 0;
    for (u32 j = threadIdx.x; j < cols; j += blockDim.x) s += exp_acc(to_acc(x[j]) - m);
    s = block_sum(s, scratch);
    return m + log_acc(s);
}

template <class T>
__device__ void softmax(u32 rows, u32 cols, const T* x, T* y, int log) {
    typedef typename AccT<T>::type A;
    __shared__ A scratch[32];
    for (u32 r = blockIdx.x; r < rows; r += gridDim.x) {
        const T* xr = x + (u64)r * cols;
        T* yr = y + (u64)r * cols;
        if (log) {
            A lse = row_lse<T, A>(xr, cols, scratch);
            for (u32 j = threadIdx.x; j < cols; j += blockDim.x) yr[j] = from_acc<T>(to_acc(xr[j]) - lse);
        } else {
            A m = -(A)INFINITY;
            for (u32 j = threadIdx.x; j < cols; j += blockDim.x) m = nan_max(m, to_acc(xr[j]));
            m = block_max(m, scratch);
            A s = 0;
            for (u32 j = threadIdx.x; j < cols; j += blockDim.x) s += exp_acc(to_acc(xr[j]) - m);
            A inv = (A)1 / block_sum(s, scratch);
            for (u32 j = threadIdx.x; j < cols; j += blockDim.x) yr[j] = from_acc<T>(exp_acc(to_acc(xr[j]) - m) * inv);
        }
    }
}

// Softmax: dx = y (dy - sum(dy y)). Log-softmax: dx = dy - exp(y) sum(dy).
template <class T>
__device__ void softmax_backward(u32 rows, u32 cols, const T* y, const T* dy, T* dx, int log) {
    typedef typename AccT<T>::type A;
    __shared__ A scratch[32];
    for (u32 r = blockIdx.x; r < rows; r += gridDim.x) {
        u64 o = (u64)r * cols;
        A s = 0;
        for (u32 j = threadIdx.x; j < cols; j += blockDim.x) s += log ? to_acc(dy[o + j]) : to_acc(dy[o + j]) * to_acc(y[o + j]);
        s = block_sum(s, scratch);
        for (u32 j = threadIdx.x; j < cols; j += blockDim.x) {
            A yv = to_acc(y[o + j]), g = to_acc(dy[o + j]);
            dx[o + j] = from_acc<T>(log ? g - exp_acc(yv) * s : yv * (g - s));
        }
    }
}

#define SOFTMAX(T, sfx) \
    extern "C" __global__ void softmax_##sfx(u32 rows, u32 cols, const T* x, T* y, int log) { softmax<T>(rows, cols, x, y, log); } \
    extern "C" __global__ void softmax_backward_##sfx(u32 rows, u32 cols, const T* y, const T* dy, T* dx, int log) { \
        softmax_backward<T>(rows, cols, y, dy, dx, log); }
SOFTMAX(float, f32)
SOFTMAX(double, f64)
SOFTMAX(bf16, bf16)
