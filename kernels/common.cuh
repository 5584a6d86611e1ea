// Shared definitions of the RustyGradients kernels (included by every kernels/*.cu).
//
// Compiled by NVRTC (`cargo xtask kernels`): no host code, no standard library headers
// beyond <cuda_bf16.h>. Every entry point is `extern "C"` with a stable name
// `<op>_<dtype>`; the Rust side (crates/rg-cuda) passes arguments in exactly the
// order declared here.
#pragma once
#include <cuda_bf16.h>
#include <cuda_fp16.h>

typedef unsigned int u32;
typedef unsigned long long u64;
typedef long long i64;
typedef __nv_bfloat16 bf16;
typedef __half f16;

// NVRTC has no <math.h>: +inf as a bit pattern.
#ifndef INFINITY
#define INFINITY __int_as_float(0x7f800000)
#endif

// A strided view, dims coalesced on the host (rg-cuda `layout.rs`): element `i` of the
// row-major iteration order sits at `offset + sum(idx[d] * strides[d])`. Must match
// `KernelLayout` in crates/rg-cuda/src/layout.rs field for field.
#define RG_MAX_RANK 6
struct Layout {
    u32 rank;
    u32 dims[RG_MAX_RANK];
    u64 strides[RG_MAX_RANK];
    u64 offset;
};

// The outermost axis needs no division (i < dims[0] once the inner axes are peeled
// off), so a contiguous run (rank 1) costs no division at all.
__device__ __forceinline__ u64 at(const Layout& l, u32 i) {
    u64 off = l.offset;
    for (int d = (int)l.rank - 1; d > 0; --d) {
        u32 n = l.dims[d];
        u32 q = i / n;
        off += (u64)(i - q * n) * l.strides[d];
        i = q;
    }
    return l.rank ? off + (u64)i * l.strides[0] : off;
}

// Grid-stride loop over `n` elements. The host keeps n below 2^31 (rg-cuda
// `layout::check_count`), so `i + stride` cannot wrap around.
#define FOR_EACH(i, n) \
    for (u32 i = blockIdx.x * blockDim.x + threadIdx.x; i < (n); i += blockDim.x * gridDim.x)

// Accumulation type: f32 for f32, bf16 and f16; f64 for f64.
template <class T> struct AccT { typedef float type; };
template <> struct AccT<double> { typedef double type; };

__device__ __forceinline__ float to_acc(float x) { return x; }
__device__ __forceinline__ double to_acc(double x) { return x; }
__device__ __forceinline__ float to_acc(bf16 x) { return __bfloat162float(x); }
__device__ __forceinline__ float to_acc(f16 x) { return __half2float(x); }

template <class T> __device__ __forceinline__ T from_acc(float x);
template <class T> __device__ __forceinline__ T from_acc(double x);
template <> __device__ __forceinline__ float from_acc<float>(float x) { return x; }
template <> __device__ __forceinline__ double from_acc<double>(double x) { return x; }
template <> __device__ __forceinline__ bf16 from_acc<bf16>(float x) { return __float2bfloat16(x); }
template <> __device__ __forceinline__ f16 from_acc<f16>(float x) { return __float2half(x); }
template <> __device__ __forceinline__ float from_acc<float>(double x) { return (float)x; }
template <> __device__ __forceinline__ double from_acc<double>(float x) { return x; }
template <> __device__ __forceinline__ bf16 from_acc<bf16>(double x) { return __double2bfloat16(x); }
template <> __device__ __forceinline__ f16 from_acc<f16>(double x) { return __double2half(x); }

__device__ __forceinline__ bool is_nan(float x) { return x != x; }
__device__ __forceinline__ bool is_nan(double x) { return x != x; }

__device__ __forceinline__ float warp_sum(float v) {
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}
__device__ __forceinline__ double warp_sum(double v) {
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}
// Max that propagates NaN (as the CPU backend's reductions do).
template <class A> __device__ __forceinline__ A nan_max(A a, A b) { return (b > a || is_nan(b)) ? b : a; }
template <class A> __device__ __forceinline__ A nan_min(A a, A b) { return (b < a || is_nan(b)) ? b : a; }
template <class A> __device__ __forceinline__ A warp_max(A v) {
    for (int o = 16; o > 0; o >>= 1) v = nan_max(v, (A)__shfl_xor_sync(0xffffffffu, v, o));
    return v;
}

// Sum over the block; every thread gets the result. `scratch` holds 32 values.
template <class A> __device__ __forceinline__ A block_sum(A v, A* scratch) {
    int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, warps = (blockDim.x + 31) >> 5;
    v = warp_sum(v);
    __syncthreads();
    if (lane == 0) scratch[warp] = v;
    __syncthreads();
    v = lane < warps ? scratch[lane] : (A)0;
    return warp_sum(v);
}
template <class A> __device__ __forceinline__ A block_max(A v, A* scratch) {
    int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, warps = (blockDim.x + 31) >> 5;
    v = warp_max(v);
    __syncthreads();
    if (lane == 0) scratch[warp] = v;
    __syncthreads();
    v = lane < warps ? scratch[lane] : scratch[0];
    return warp_max(v);
}

__device__ __forceinline__ float exp_acc(float x) { return expf(x); }
__device__ __forceinline__ double exp_acc(double x) { return exp(x); }
__device__ __forceinline__ float log_acc(float x) { return logf(x); }
__device__ __forceinline__ double log_acc(double x) { return log(x); }
