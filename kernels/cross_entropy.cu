// The fused classifier: softmax + cross-entropy over contiguous [rows, cols] logits,
// one block per row. Targets arrive as u32 already checked on the host, with
// 0xffffffff marking an ignored row.
// Forward: lse[r] = log(sum(exp(x[r]))), loss[r] = lse[r] - x[r, t] (0 if ignored).
// Backward: dx[r] = dloss[r] (softmax(x[r]) - onehot(t)), zero rows where ignored.
#include "common.cuh"

#define IGNORED 0xffffffffu

template <class T, class A>
__device__ __forceinline__ A ce_row_lse(const T* x, u32 cols, A* scratch) {
    A m = -(A)INFINITY;
    for (u32 j = threadIdx.x; j < cols; j += blockDim.x) m = nan_max(m, to_acc(x[j]));
    m = block_max(m, scratch);
    if (isinf(m)) return m;
    A s = 0;
    for (u32 j = threadIdx.x; j < cols; j += blockDim.x) s += exp_acc(to_acc(x[j]) - m);
    return m + log_acc(block_sum(s, scratch));
}

template <class T>
__device__ void cross_entropy(u32 rows, u32 cols, const T* x, const u32* targets, T* loss, T* lse) {
    typedef typename AccT<T>::type A;
    __shared__ A scratch[32];
    for (u32 r = blockIdx.x; r < rows; r += gridDim.x) {
        const T* xr = x + (u64)r * cols;
        A l = ce_row_lse<T, A>(xr, cols, scratch);
        if (threadIdx.x == 0) {
            u32 t = targets[r];
            lse[r] = from_acc<T>(l);
            loss[r] = from_acc<T>(t == IGNORED ? (A)0 : l - to_acc(xr[t]));
        }
    }
}

// `recompute`: take each row's log-sum-exp from the logits rather than `lse` (for bf16,
// whose stored lse is too coarse: one ulp near 10 is 0.06, a 6% error in exp).
template <class T>
__device__ void cross_entropy_backward(u32 rows, u32 cols, const T* x, const T* lse, const u32* targets, const T* dloss, T* dx, int recompute) {
    typedef typename AccT<T>::type A;
    __shared__ A scratch[32];
    for (u32 r = blockIdx.x; r < rows; r += gridDim.x) {
        u64 o = (u64)r * cols;
        u32 t = targets[r];
        if (t == IGNORED) {
            for (u32 j = threadIdx.x; j < cols; j += blockDim.x) dx[o + j] = from_acc<T>((A)0);
            continue;
        }
        A l = recompute ? ce_row_lse<T, A>(x + o, cols, scratch) : to_acc(lse[r]);
        A g = to_acc(dloss[r]);
        for (u32 j = threadIdx.x; j < cols; j += blockDim.x) {
            A p = g * exp_acc(to_acc(x[o + j]) - l);
            dx[o + j] = from_acc<T>(j == t ? p - g : p);
        }
    }
}

#define CROSS_ENTROPY(T, sfx) \
    extern "C" __global__ void cross_entropy_##sfx(u32 rows, u32 cols, const T* x, const u32* targets, T* loss, T* lse) { \
        cross_entropy<T>(rows, cols, x, targets, loss, lse); } \
    extern "C" __global__ void cross_entropy_backward_##sfx(u32 rows, u32 cols, const T* x, const T* lse, const u32* targets, const T* dloss, T* dx, int recompute) { \
        cross_entropy_backward<T>(rows, cols, x, lse, targets, dloss, dx, recompute); }
CROSS_ENTROPY(float, f32)
CROSS_ENTROPY(double, f64)
CROSS_ENTROPY(bf16, bf16)
