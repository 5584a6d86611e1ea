// Layer norm over the last axis of contiguous [rows, cols] data.
// Forward: one block per row; two passes on data shifted by the row's first element
// (as rg-cpu: exact for constant rows, no cancellation far from zero).
// Backward: dx one block per row; dgamma and dbeta are column sums over rows, a
// second kernel with one thread column per feature (deterministic, no atomics).
#include "common.cuh"

template <class T>
__device__ void layer_norm(u32 rows, u32 cols, const T* x, const T* gamma, const T* beta, T* y, T* mean, T* rstd, double eps) {
    typedef typename AccT<T>::type A;
    __shared__ A scratch[32];
    for (u32 r = blockIdx.x; r < rows; r += gridDim.x) {
        const T* xr = x + (u64)r * cols;
        A shift = to_acc(xr[0]);
        A s = 0;
        for (u32 j = threadIdx.x; j < cols; j += blockDim.x) s += to_acc(xr[j]) - shift;
        A mu = shift + block_sum(s, scratch) / (A)cols;
        A v = 0;
        for (u32 j = threadIdx.x; j < cols; j += blockDim.x) { A d = to_acc(xr[j]) - mu; v += d * d; }
        A var = block_sum(v, scratch) / (A)cols;
        A rs = (A)1 / sqrt(var + (A)eps);
        T* yr = y + (u64)r * cols;
        for (u32 j = threadIdx.x; j < cols; j += blockDim.x)
            yr[j] = from_acc<T>((to_acc(xr[j]) - mu) * rs * to_acc(gamma[j]) + to_acc(beta[j]));
        if (threadIdx.x == 0) { mean[r] = from_acc<T>(mu); rstd[r] = from_acc<T>(rs); }
    }
}

// With xhat = (x - mean) rstd and g = dy gamma: dx = rstd (g - mean(g) - xhat mean(g xhat)).
template <class T>
__device__ void layer_norm_dx(u32 rows, u32 cols, const T* dy, const T* x, const T* gamma, const T* mean, const T* rstd, T* dx) {
    typedef typename AccT<T>::type A;
    __shared__ A scratch[32];
    for (u32 r = blockIdx.x; r < rows; r += gridDim.x) {
        u64 o = (u64)r * cols;
        A mu = to_acc(mean[r]), rs = to_acc(rstd[r]);
        A sg = 0, sgx = 0;
        for (u32 j = threadIdx.x; j < cols; j += blockDim.x) {
            A g = to_acc(dy[o + j]) * to_acc(gamma[j]);
            sg += g;
            sgx += g * (to_acc(x[o + j]) - mu) * rs;
        }
        A mean_g = block_sum(sg, scratch) / (A)cols;
        A mean_gx = block_sum(sgx, scratch) / (A)cols;
        for (u32 j = threadIdx.x; j < cols; j += blockDim.x) {
            A h = (to_acc(x[o + j]) - mu) * rs;
            dx[o + j] = from_acc<T>(rs * (to_acc(dy[o + j]) * to_acc(gamma[j]) - mean_g - h * mean_gx));
        }
    }
}

// dgamma[c] = sum_r dy[r, c] xhat[r, c], dbeta[c] = sum_r dy[r, c]; blocks of 32 x 8.
template <class T>
__device__ void layer_norm_params(u32 rows, u32 cols, const T* dy, const T* x, const T* mean, const T* rstd, T* dgamma, T* dbeta) {
    typedef typename AccT<T>::type A;
    __shared__ A pg[8][33], pb[8][33];
    u32 c = blockIdx.x * 32 + threadIdx.x;
    A g = 0, b = 0;
    if (c < cols) {
        for (u32 r = threadIdx.y; r < rows; r += 8) {
            u64 o = (u64)r * cols + c;
            A d = to_acc(dy[o]);
            g += d * (to_acc(x[o]) - to_acc(mean[r])) * to_acc(rstd[r]);
            b += d;
        }
    }
    pg[threadIdx.y][threadIdx.x] = g;
    pb[threadIdx.y][threadIdx.x] = b;
    __syncthreads();
    if (threadIdx.y == 0 && c < cols) {
        for (int k = 1; k < 8; ++k) { g += pg[k][threadIdx.x]; b += pb[k][threadIdx.x]; }
        dgamma[c] = from_acc<T>(g);
        dbeta[c] = from_acc<T>(b);
    }
}

// The same sums over the rows of chunk blockIdx.y only, in f32/f64, into
// pg/pb[y * cols + c]; `layer_norm_params_finish` adds the chunks up.
template <class T>
__device__ void layer_norm_params_part(u32 rows, u32 cols, const T* dy, const T* x, const T* mean, const T* rstd,
                                       typename AccT<T>::type* pg, typename AccT<T>::type* pb, u32 chunk) {
    typedef typename AccT<T>::type A;
    __shared__ A sg[8][33], sb[8][33];
    u32 c = blockIdx.x * 32 + threadIdx.x;
    u32 begin = blockIdx.y * chunk, end = min(rows, begin + chunk);
    A g = 0, b = 0;
    if (c < cols) {
        for (u32 r = begin + threadIdx.y; r < end; r += 8) {
            u64 o = (u64)r * cols + c;
            A d = to_acc(dy[o]);
            g += d * (to_acc(x[o]) - to_acc(mean[r])) * to_acc(rstd[r]);
            b += d;
        }
    }
    sg[threadIdx.y][threadIdx.x] = g;
    sb[threadIdx.y][threadIdx.x] = b;
    __syncthreads();
    if (threadIdx.y == 0 && c < cols) {
        for (int k = 1; k < 8; ++k) { g += sg[k][threadIdx.x]; b += sb[k][threadIdx.x]; }
        pg[(u64)blockIdx.y * cols + c] = g;
        pb[(u64)blockIdx.y * cols + c] = b;
    }
}

template <class T>
__device__ void layer_norm_params_finish(u32 cols, u32 splits, const typename AccT<T>::type* pg, const typename AccT<T>::type* pb,
                                         T* dgamma, T* dbeta) {
    typedef typename AccT<T>::type A;
    FOR_EACH(c, cols) {
        A g = 0, b = 0;
        for (u32 s = 0; s < splits; ++s) { g += pg[(u64)s * cols + c]; b += pb[(u64)s * cols + c]; }
        dgamma[c] = from_acc<T>(g);
        dbeta[c] = from_acc<T>(b);
    }
}

#define LAYER_NORM(T, sfx) \
    extern "C" __global__ void layer_norm_##sfx(u32 rows, u32 cols, const T* x, const T* gamma, const T* beta, T* y, T* mean, T* rstd, double eps) { \
        layer_norm<T>(rows, cols, x, gamma, beta, y, mean, rstd, eps); } \
    extern "C" __global__ void layer_norm_dx_##sfx(u32 rows, u32 cols, const T* dy, const T* x, const T* gamma, const T* mean, const T* rstd, T* dx) { \
        layer_norm_dx<T>(rows, cols, dy, x, gamma, mean, rstd, dx); } \
    extern "C" __global__ void layer_norm_params_##sfx(u32 rows, u32 cols, const T* dy, const T* x, const T* mean, const T* rstd, T* dgamma, T* dbeta) { \
        layer_norm_params<T>(rows, cols, dy, x, mean, rstd, dgamma, dbeta); } \
    extern "C" __global__ void layer_norm_params_part_##sfx(u32 rows, u32 cols, const T* dy, const T* x, const T* mean, const T* rstd, \
                                                            AccT<T>::type* pg, AccT<T>::type* pb, u32 chunk) { \
        layer_norm_params_part<T>(rows, cols, dy, x, mean, rstd, pg, pb, chunk); } \
    extern "C" __global__ void layer_norm_params_finish_##sfx(u32 cols, u32 splits, const AccT<T>::type* pg, const AccT<T>::type* pb, \
                                                              T* dgamma, T* dbeta) { \
        layer_norm_params_finish<T>(cols, splits, pg, pb, dgamma, dbeta); }
LAYER_NORM(float, f32)
LAYER_NORM(double, f64)
LAYER_NORM(bf16, bf16)
