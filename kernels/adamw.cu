// One fused AdamW step in place over contiguous param, m, v (rg-cpu `kernels/adamw.rs`):
// g = grad * gs (gradient clipping folded in), m = b1 m + (1 - b1) g, v = b2 v + (1 - b2) g^2,
// p -= lr (m inv_bc1 / (sqrt(v inv_bc2) + eps) + wd p), computed in the accumulation
// type and rounded once per store (bf16 parameters keep f32 arithmetic).
#include "common.cuh"

#define ADAMW(T, sfx) \
    extern "C" __global__ void adamw_##sfx(u32 n, T* p, const T* g, T* m, T* v, double b1, double b2, double one_b1, \
                                           double one_b2, double inv_bc1, double inv_bc2, double lr, double eps, double wd, double gs) { \
        typedef AccT<T>::type A; \
        FOR_EACH(i, n) { \
            A gi = to_acc(g[i]) * (A)gs; \
            A mi = (A)b1 * to_acc(m[i]) + (A)one_b1 * gi; \
            A vi = (A)b2 * to_acc(v[i]) + (A)one_b2 * gi * gi; \
            A pi = to_acc(p[i]); \
            A step = (mi * (A)inv_bc1) / (sqrt(vi * (A)inv_bc2) + (A)eps); \
            m[i] = from_acc<T>(mi); \
            v[i] = from_acc<T>(vi); \
            p[i] = from_acc<T>(pi - (A)lr * (step + (A)wd * pi)); \
        } \
    }
ADAMW(float, f32) ADAMW(double, f64) ADAMW(bf16, bf16)
