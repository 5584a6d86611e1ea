// Moving and converting elements: strided copies by element size, fills, and casts
// between every pair of dtypes.
#include "common.cuh"

// dst[at(ld, i)] = src[at(ls, i)]; a contiguous `ld` gathers a view.
#define COPY(T, sfx) \
    extern "C" __global__ void copy_##sfx(u32 n, Layout ls, const T* src, Layout ld, T* dst) { \
        FOR_EACH(i, n) dst[at(ld, i)] = src[at(ls, i)]; \
    }
COPY(unsigned short, b2) COPY(u32, b4) COPY(u64, b8)

// Every element set to one bit pattern (the value converted on the host).
#define FILL(T, sfx) \
    extern "C" __global__ void fill_##sfx(u32 n, u64 bits, T* dst) { \
        T v = (T)bits; FOR_EACH(i, n) dst[i] = v; \
    }
FILL(unsigned short, b2) FILL(u32, b4) FILL(u64, b8)

// Conversions follow Rust's `as` (rg-cpu `kernels/cast.rs`): floats to integers
// truncate toward zero and saturate, NaN becomes 0; other pairs go through f64, except
// f32 <-> bf16/f16 which convert directly (round to nearest even).
__device__ __forceinline__ double to_f64(float x) { return x; }
__device__ __forceinline__ double to_f64(double x) { return x; }
__device__ __forceinline__ double to_f64(bf16 x) { return __bfloat162float(x); }
__device__ __forceinline__ double to_f64(f16 x) { return __half2float(x); }
__device__ __forceinline__ double to_f64(u32 x) { return x; }
__device__ __forceinline__ double to_f64(i64 x) { return (double)x; }

template <class D> __device__ __forceinline__ D from_f64(double x);
template <> __device__ __forceinline__ float from_f64<float>(double x) { return (float)x; }
template <> __device__ __forceinline__ double from_f64<double>(double x) { return x; }
template <> __device__ __forceinline__ bf16 from_f64<bf16>(double x) { return __double2bfloat16(x); }
template <> __device__ __forceinline__ f16 from_f64<f16>(double x) { return __double2half(x); }
template <> __device__ __forceinline__ u32 from_f64<u32>(double x) {
    if (!(x > 0.0)) return 0;  // also NaN
    if (x >= 4294967295.0) return 4294967295u;
    return (u32)x;
}
template <> __device__ __forceinline__ i64 from_f64<i64>(double x) {
    if (x != x) return 0;
    if (x <= -9223372036854775808.0) return (i64)0x8000000000000000ull;
    if (x >= 9223372036854775807.0) return 0x7fffffffffffffffll;
    return (i64)x;
}

template <class S, class D> __device__ __forceinline__ D convert(S x) { return from_f64<D>(to_f64(x)); }
template <> __device__ __forceinline__ bf16 convert<float, bf16>(float x) { return __float2bfloat16(x); }
template <> __device__ __forceinline__ f16 convert<float, f16>(float x) { return __float2half(x); }
template <> __device__ __forceinline__ float convert<bf16, float>(bf16 x) { return __bfloat162float(x); }
template <> __device__ __forceinline__ float convert<f16, float>(f16 x) { return __half2float(x); }
// Integers to integers without a detour through f64 (exact for every i64).
template <> __device__ __forceinline__ i64 convert<u32, i64>(u32 x) { return (i64)x; }
template <> __device__ __forceinline__ u32 convert<i64, u32>(i64 x) {
    return x < 0 ? 0u : (x > 4294967295ll ? 4294967295u : (u32)x);
}

#define CAST(S, ss, D, ds) \
    extern "C" __global__ void cast_##ss##_##ds(u32 n, Layout l, const S* x, D* y) { \
        FOR_EACH(i, n) y[i] = convert<S, D>(x[at(l, i)]); \
    }
#define CAST_FROM(S, ss) \
    CAST(S, ss, float, f32) CAST(S, ss, double, f64) CAST(S, ss, bf16, bf16) \
    CAST(S, ss, f16, f16) CAST(S, ss, u32, u32) CAST(S, ss, i64, i64)
CAST_FROM(float, f32)
CAST_FROM(double, f64)
CAST_FROM(bf16, bf16)
CAST_FROM(f16, f16)
CAST_FROM(u32, u32)
CAST_FROM(i64, i64)
