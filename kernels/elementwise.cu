// Elementwise kernels over strided views: unary ops, affine, powf, binary ops,
// comparisons, where, GELU backward and the causal fill. Outputs are contiguous;
// compute happens in the accumulation type (f32 for bf16), rounding once on store.
#include "common.cuh"

#define SQRT_2_OVER_PI 0.7978845608028654
#define GELU_COEFF 0.044715

template <class A> __device__ __forceinline__ A sigmoid(A x) { return (A)1 / ((A)1 + exp_acc(-x)); }

// GELU (tanh approximation) as x * sigmoid(2z): no cancellation near zero.
template <class A> __device__ __forceinline__ A gelu(A x) {
    A z = (A)SQRT_2_OVER_PI * (x + (A)GELU_COEFF * x * x * x);
    return x * sigmoid((A)2 * z);
}
template <class A> __device__ __forceinline__ A gelu_grad(A x, A dy) {
    A c = (A)SQRT_2_OVER_PI, x2 = x * x;
    A s = sigmoid((A)2 * c * (x + (A)GELU_COEFF * x2 * x));
    A dz = c * ((A)1 + (A)(3.0 * GELU_COEFF) * x2);
    return dy * (s + (x + x) * s * ((A)1 - s) * dz);
}

struct Neg { template <class A> __device__ A operator()(A x) const { return -x; } };
struct Exp { template <class A> __device__ A operator()(A x) const { return exp_acc(x); } };
struct Log { template <class A> __device__ A operator()(A x) const { return log_acc(x); } };
struct Tanh { template <class A> __device__ A operator()(A x) const { return tanh(x); } };
struct Sqrt { template <class A> __device__ A operator()(A x) const { return sqrt(x); } };
struct Relu { template <class A> __device__ A operator()(A x) const { return x < (A)0 ? (A)0 : x; } };
struct Gelu { template <class A> __device__ A operator()(A x) const { return gelu(x); } };
struct Square { template <class A> __device__ A operator()(A x) const { return x * x; } };
struct Recip { template <class A> __device__ A operator()(A x) const { return (A)1 / x; } };
struct Abs { template <class A> __device__ A operator()(A x) const { return fabs(x); } };

template <class T, class F>
__device__ __forceinline__ void unary(u32 n, const Layout& l, const T* x, T* y, F f) {
    typedef typename AccT<T>::type A;
    FOR_EACH(i, n) y[i] = from_acc<T>(f(to_acc(x[at(l, i)])));
}

#define UNARY(name, F, T, sfx) \
    extern "C" __global__ void unary_##name##_##sfx(u32 n, Layout l, const T* x, T* y) { unary<T>(n, l, x, y, F()); }
#define UNARY_ALL(name, F) UNARY(name, F, float, f32) UNARY(name, F, double, f64) UNARY(name, F, bf16, bf16)
UNARY_ALL(neg, Neg)
UNARY_ALL(exp, Exp)
UNARY_ALL(log, Log)
UNARY_ALL(tanh, Tanh)
UNARY_ALL(sqrt, Sqrt)
UNARY_ALL(relu, Relu)
UNARY_ALL(gelu, Gelu)
UNARY_ALL(square, Square)
UNARY_ALL(recip, Recip)
UNARY_ALL(abs, Abs)

// x * mul + add, the scalars in the accumulation type.
#define AFFINE(T, sfx) \
    extern "C" __global__ void affine_##sfx(u32 n, Layout l, const T* x, T* y, double mul, double add) { \
        typedef AccT<T>::type A; A m = (A)mul, a = (A)add; \
        FOR_EACH(i, n) y[i] = from_acc<T>(to_acc(x[at(l, i)]) * m + a); \
    }
AFFINE(float, f32) AFFINE(double, f64) AFFINE(bf16, bf16)

// x ^ e. mode 0: a general power; mode 1: the integral power `ie` by repeated squaring
// (exact for negative bases, as powf is not).
template <class A> __device__ __forceinline__ A powi(A x, long long e) {
    bool neg = e < 0;
    unsigned long long k = neg ? (unsigned long long)(-e) : (unsigned long long)e;
    A r = (A)1;
    while (k) { if (k & 1) r *= x; x *= x; k >>= 1; }
    return neg ? (A)1 / r : r;
}
#define POWF(T, sfx) \
    extern "C" __global__ void powf_##sfx(u32 n, Layout l, const T* x, T* y, double e, int mode, long long ie) { \
        typedef AccT<T>::type A; \
        FOR_EACH(i, n) { A v = to_acc(x[at(l, i)]); y[i] = from_acc<T>(mode ? powi(v, ie) : (A)pow(v, (A)e)); } \
    }
POWF(float, f32) POWF(double, f64) POWF(bf16, bf16)

struct Add { template <class A> __device__ A operator()(A a, A b) const { return a + b; } };
struct Sub { template <class A> __device__ A operator()(A a, A b) const { return a - b; } };
struct Mul { template <class A> __device__ A operator()(A a, A b) const { return a * b; } };
struct Div { template <class A> __device__ A operator()(A a, A b) const { return a / b; } };
// Comparisons rather than fmax/fmin so that a NaN operand propagates.
struct Maximum { template <class A> __device__ A operator()(A a, A b) const { return (a >= b || is_nan(a)) ? a : b; } };
struct Minimum { template <class A> __device__ A operator()(A a, A b) const { return (a <= b || is_nan(a)) ? a : b; } };

template <class T, class F>
__device__ __forceinline__ void binary(u32 n, const Layout& la, const T* a, const Layout& lb, const T* b, T* y, F f) {
    FOR_EACH(i, n) y[i] = from_acc<T>(f(to_acc(a[at(la, i)]), to_acc(b[at(lb, i)])));
}
#define BINARY(name, F, T, sfx) \
    extern "C" __global__ void binary_##name##_##sfx(u32 n, Layout la, const T* a, Layout lb, const T* b, T* y) { \
        binary<T>(n, la, a, lb, b, y, F()); }
#define BINARY_ALL(name, F) BINARY(name, F, float, f32) BINARY(name, F, double, f64) BINARY(name, F, bf16, bf16)
BINARY_ALL(add, Add)
BINARY_ALL(sub, Sub)
BINARY_ALL(mul, Mul)
BINARY_ALL(div, Div)
BINARY_ALL(maximum, Maximum)
BINARY_ALL(minimum, Minimum)

// Comparisons, u32 1 or 0. op: 0 eq, 1 ne, 2 lt, 3 le, 4 gt, 5 ge (rg-cuda `ops/elementwise.rs`).
template <class V> __device__ __forceinline__ u32 compare(int op, V a, V b) {
    switch (op) {
        case 0: return a == b;
        case 1: return a != b;
        case 2: return a < b;
        case 3: return a <= b;
        case 4: return a > b;
        default: return a >= b;
    }
}
__device__ __forceinline__ float cmp_value(bf16 x) { return __bfloat162float(x); }
__device__ __forceinline__ float cmp_value(f16 x) { return __half2float(x); }
__device__ __forceinline__ float cmp_value(float x) { return x; }
__device__ __forceinline__ double cmp_value(double x) { return x; }
__device__ __forceinline__ u32 cmp_value(u32 x) { return x; }
__device__ __forceinline__ i64 cmp_value(i64 x) { return x; }
#define CMP(T, sfx) \
    extern "C" __global__ void cmp_##sfx(u32 n, int op, Layout la, const T* a, Layout lb, const T* b, u32* y) { \
        FOR_EACH(i, n) y[i] = compare(op, cmp_value(a[at(la, i)]), cmp_value(b[at(lb, i)])); \
    }
CMP(float, f32) CMP(double, f64) CMP(bf16, bf16) CMP(f16, f16) CMP(u32, u32) CMP(i64, i64)

// cond != 0 ? t : f, by element size (any dtype).
#define WHERE(T, sfx) \
    extern "C" __global__ void where_##sfx(u32 n, Layout lc, const u32* c, Layout lt, const T* t, Layout lf, const T* f, T* y) { \
        FOR_EACH(i, n) y[i] = c[at(lc, i)] != 0 ? t[at(lt, i)] : f[at(lf, i)]; \
    }
WHERE(unsigned short, b2) WHERE(u32, b4) WHERE(u64, b8)

#define GELU_BACKWARD(T, sfx) \
    extern "C" __global__ void gelu_backward_##sfx(u32 n, Layout lx, const T* x, Layout ld, const T* dy, T* y) { \
        FOR_EACH(i, n) y[i] = from_acc<T>(gelu_grad(to_acc(x[at(lx, i)]), to_acc(dy[at(ld, i)]))); \
    }
GELU_BACKWARD(float, f32) GELU_BACKWARD(double, f64) GELU_BACKWARD(bf16, bf16)

// Element (i, j) of the last two axes [t, s] becomes `value` where j > i + (s - t).
#define CAUSAL_FILL(T, sfx) \
    extern "C" __global__ void causal_fill_##sfx(u32 n, Layout l, const T* x, T* y, u32 t, u32 s, double value) { \
        T v = from_acc<T>((AccT<T>::type)value); \
        FOR_EACH(i, n) { \
            u32 j = i % s, r = (i / s) % t; \
            y[i] = (u64)j + t > (u64)r + s ? v : x[at(l, i)]; \
        } \
    }
CAUSAL_FILL(float, f32) CAUSAL_FILL(double, f64) CAUSAL_FILL(bf16, bf16)
