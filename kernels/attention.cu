// Causal scaled dot-product attention, fused and tiled (flash-attention style): no
// T x S score matrix is ever stored. q is [b, t, h, d], k and v [b, s, h, d] with any
// strides on the b, t/s and h axes and unit stride on d (rg-cuda copies otherwise);
// query i sees keys j <= i + (s - t). Head dim d <= 128 (DMAX).
//
// Forward: a block of 4 warps owns 16 query rows of one (batch, head); warp w owns rows
// 4w..4w+3. Key/value tiles of 32 rows are staged in shared memory; lane j scores key j
// of the tile, an online softmax keeps each row's running max m and sum l, and every
// lane accumulates output columns lane, lane + 32, ... Writes out (T) and the f32
// log-sum-exp of the scaled scores, lse [b, h, t], for the backward pass.
//
// Backward (three kernels, no atomics): delta = rowsum(dout * out); dq per query tile
// (keys streamed, scores recomputed from lse); dk and dv per key tile (queries streamed).
//
// Decode (t == 1): split-K. Each block takes 256 keys of one (batch, head), its warps 64
// each; partial (m, l, acc) go to a workspace and a second kernel merges them.
#include "common.cuh"

#define DMAX 128
#define KT 32            // keys (or queries) per staged tile
#define NEG_INF (-INFINITY)

struct Strides { u64 b, t, h; };

__device__ __forceinline__ u64 row_at(const Strides& s, u32 b, u32 t, u32 h) { return b * s.b + t * s.t + h * s.h; }

// Loads `rows` rows (starting at row0, of `limit`) of one (b, h) into shared memory as f32, zero past the end.
template <class T>
__device__ __forceinline__ void stage(float* dst, u32 pitch, const T* src, const Strides& st, u32 b, u32 h, u32 row0, u32 rows, u32 limit, u32 d) {
    for (u32 idx = threadIdx.x; idx < rows * d; idx += blockDim.x) {
        u32 r = idx / d, c = idx - r * d, g = row0 + r;
        dst[r * pitch + c] = g < limit ? to_acc(src[row_at(st, b, g, h) + c]) : 0.0f;
    }
}

template <class T>
__device__ void attention_fwd(u32 T_, u32 S, u32 H, u32 d, const T* q, Strides qs, const T* k, Strides ks, const T* v, Strides vs,
                              T* out, float* lse, float scale) {
    __shared__ float sq[16 * DMAX];
    __shared__ float sk[KT * (DMAX + 1)];
    __shared__ float sv[KT * DMAX];
    u32 b = blockIdx.z, h = blockIdx.y, q0 = blockIdx.x * 16;
    u32 lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    u32 offset = S - T_;
    stage(sq, d, q, qs, b, h, q0, 16, T_, d);
    float m[4], l[4], acc[4][4];
    for (int r = 0; r < 4; ++r) { m[r] = NEG_INF; l[r] = 0.f; for (int c = 0; c < 4; ++c) acc[r][c] = 0.f; }
    u32 last_q = min(q0 + 16, T_) - 1;
    u32 kend = min(S, last_q + offset + 1);
    for (u32 k0 = 0; k0 < kend; k0 += KT) {
        __syncthreads();
        stage(sk, d + 1, k, ks, b, h, k0, KT, S, d);
        stage(sv, d, v, vs, b, h, k0, KT, S, d);
        __syncthreads();
        for (int r = 0; r < 4; ++r) {
            u32 row = warp * 4 + r, qi = q0 + row;
            if (qi >= T_) break;
            u32 kj = k0 + lane;
            float s = 0.f;
            for (u32 c = 0; c < d; ++c) s += sq[row * d + c] * sk[lane * (d + 1) + c];
            bool visible = kj < S && kj <= qi + offset;
            s = visible ? s * scale : NEG_INF;
            float mt = warp_max(s);
            float mn = fmaxf(m[r], mt);
            float p = visible ? expf(s - mn) : 0.f;
            float corr = expf(m[r] - mn);
            l[r] = l[r] * corr + warp_sum(p);
            for (int c = 0; c < 4; ++c) acc[r][c] *= corr;
            for (int j = 0; j < KT; ++j) {
                float pj = __shfl_sync(0xffffffffu, p, j);
                if (pj == 0.f) continue;
                for (int c = 0; c < 4; ++c) {
                    u32 col = lane + 32 * c;
                    if (col < d) acc[r][c] += pj * sv[j * d + col];
                }
            }
            m[r] = mn;
        }
    }
    for (int r = 0; r < 4; ++r) {
        u32 qi = q0 + warp * 4 + r;
        if (qi >= T_) break;
        float inv = 1.f / l[r];
        T* o = out + (((u64)b * T_ + qi) * H + h) * d;
        for (int c = 0; c < 4; ++c) {
            u32 col = lane + 32 * c;
            if (col < d) o[col] = from_acc<T>(acc[r][c] * inv);
        }
        if (lane == 0) lse[((u64)b * H + h) * T_ + qi] = m[r] + logf(l[r]);
    }
}

// delta[b, h, i] = sum_c dout[b, i, h, c] out[b, i, h, c]; one warp per row. out and
// dout are contiguous [b, t, h, d].
template <class T>
__device__ void attention_bwd_delta(u32 B, u32 T_, u32 H, u32 d, const T* out, const T* dout, float* delta) {
    u32 lane = threadIdx.x & 31;
    u32 row = blockIdx.x * (blockDim.x >> 5) + (threadIdx.x >> 5);
    if (row >= B * T_ * H) return;
    u32 h = row % H, i = (row / H) % T_, b = row / H / T_;
    const T* o = out + (u64)row * d;
    const T* g = dout + (u64)row * d;
    float s = 0.f;
    for (u32 c = lane; c < d; c += 32) s += to_acc(o[c]) * to_acc(g[c]);
    s = warp_sum(s);
    if (lane == 0) delta[((u64)b * H + h) * T_ + i] = s;
}

// dq for 8 query rows per block (2 per warp): ds_ij = p_ij (dp_ij - delta_i) with
// p_ij = exp(scale q_i.k_j - lse_i), dp_ij = dout_i.v_j; dq_i = scale sum_j ds_ij k_j.
template <class T>
__device__ void attention_bwd_dq(u32 T_, u32 S, u32 H, u32 d, const T* q, Strides qs, const T* k, Strides ks, const T* v, Strides vs,
                                 const T* dout, const float* lse, const float* delta, T* dq, float scale) {
    __shared__ float sq[8 * DMAX];
    __shared__ float sg[8 * DMAX];
    __shared__ float sk[KT * (DMAX + 1)];
    __shared__ float sv[KT * (DMAX + 1)];
    u32 b = blockIdx.z, h = blockIdx.y, q0 = blockIdx.x * 8;
    u32 lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    u32 offset = S - T_;
    Strides os = {(u64)T_ * H * d, (u64)H * d, (u64)d};
    stage(sq, d, q, qs, b, h, q0, 8, T_, d);
    stage(sg, d, dout, os, b, h, q0, 8, T_, d);
    float acc[2][4];
    float li[2], di[2];
    for (int r = 0; r < 2; ++r) {
        u32 qi = q0 + warp * 2 + r;
        li[r] = qi < T_ ? lse[((u64)b * H + h) * T_ + qi] : 0.f;
        di[r] = qi < T_ ? delta[((u64)b * H + h) * T_ + qi] : 0.f;
        for (int c = 0; c < 4; ++c) acc[r][c] = 0.f;
    }
    u32 last_q = min(q0 + 8, T_) - 1;
    u32 kend = min(S, last_q + offset + 1);
    for (u32 k0 = 0; k0 < kend; k0 += KT) {
        __syncthreads();
        stage(sk, d + 1, k, ks, b, h, k0, KT, S, d);
        stage(sv, d + 1, v, vs, b, h, k0, KT, S, d);
        __syncthreads();
        for (int r = 0; r < 2; ++r) {
            u32 row = warp * 2 + r, qi = q0 + row;
            if (qi >= T_) break;
            u32 kj = k0 + lane;
            float s = 0.f, dp = 0.f;
            for (u32 c = 0; c < d; ++c) {
                s += sq[row * d + c] * sk[lane * (d + 1) + c];
                dp += sg[row * d + c] * sv[lane * (d + 1) + c];
            }
            bool visible = kj < S && kj <= qi + offset;
            float p = visible ? expf(s * scale - li[r]) : 0.f;
            float ds = p * (dp - di[r]);
            for (int j = 0; j < KT; ++j) {
                float dsj = __shfl_sync(0xffffffffu, ds, j);
                if (dsj == 0.f) continue;
                for (int c = 0; c < 4; ++c) {
                    u32 col = lane + 32 * c;
                    if (col < d) acc[r][c] += dsj * sk[j * (d + 1) + col];
                }
            }
        }
    }
    for (int r = 0; r < 2; ++r) {
        u32 qi = q0 + warp * 2 + r;
        if (qi >= T_) break;
        T* o = dq + (((u64)b * T_ + qi) * H + h) * d;
        for (int c = 0; c < 4; ++c) {
            u32 col = lane + 32 * c;
            if (col < d) o[col] = from_acc<T>(acc[r][c] * scale);
        }
    }
}

// dk and dv for 8 key rows per block (2 per warp), query tiles streamed:
// dv_j = sum_i p_ij dout_i, dk_j = scale sum_i ds_ij q_i.
template <class T>
__device__ void attention_bwd_dkv(u32 T_, u32 S, u32 H, u32 d, const T* q, Strides qs, const T* k, Strides ks, const T* v, Strides vs,
                                  const T* dout, const float* lse, const float* delta, T* dk, T* dv, float scale) {
    __shared__ float sk[8 * DMAX];
    __shared__ float sv[8 * DMAX];
    __shared__ float sq[KT * (DMAX + 1)];
    __shared__ float sg[KT * (DMAX + 1)];
    __shared__ float sl[KT], sd[KT];
    u32 b = blockIdx.z, h = blockIdx.y, k0 = blockIdx.x * 8;
    u32 lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    u32 offset = S - T_;
    Strides os = {(u64)T_ * H * d, (u64)H * d, (u64)d};
    stage(sk, d, k, ks, b, h, k0, 8, S, d);
    stage(sv, d, v, vs, b, h, k0, 8, S, d);
    float ak[2][4], av[2][4];
    for (int r = 0; r < 2; ++r)
        for (int c = 0; c < 4; ++c) { ak[r][c] = 0.f; av[r][c] = 0.f; }
    // The first query that sees key k0 is k0 - offset.
    u32 qstart = k0 > offset ? ((k0 - offset) / KT) * KT : 0;
    for (u32 q0 = qstart; q0 < T_; q0 += KT) {
        __syncthreads();
        stage(sq, d + 1, q, qs, b, h, q0, KT, T_, d);
        stage(sg, d + 1, dout, os, b, h, q0, KT, T_, d);
        if (threadIdx.x < KT) {
            u32 qi = q0 + threadIdx.x;
            sl[threadIdx.x] = qi < T_ ? lse[((u64)b * H + h) * T_ + qi] : 0.f;
            sd[threadIdx.x] = qi < T_ ? delta[((u64)b * H + h) * T_ + qi] : 0.f;
        }
        __syncthreads();
        for (int r = 0; r < 2; ++r) {
            u32 row = warp * 2 + r, kj = k0 + row;
            if (kj >= S) break;
            u32 qi = q0 + lane;
            float s = 0.f, dp = 0.f;
            for (u32 c = 0; c < d; ++c) {
                s += sq[lane * (d + 1) + c] * sk[row * d + c];
                dp += sg[lane * (d + 1) + c] * sv[row * d + c];
            }
            bool visible = qi < T_ && kj <= qi + offset;
            float p = visible ? expf(s * scale - sl[lane]) : 0.f;
            float ds = p * (dp - sd[lane]);
            for (int i = 0; i < KT; ++i) {
                float pi = __shfl_sync(0xffffffffu, p, i);
                float dsi = __shfl_sync(0xffffffffu, ds, i);
                if (pi == 0.f && dsi == 0.f) continue;
                for (int c = 0; c < 4; ++c) {
                    u32 col = lane + 32 * c;
                    if (col < d) {
                        av[r][c] += pi * sg[i * (d + 1) + col];
                        ak[r][c] += dsi * sq[i * (d + 1) + col];
                    }
                }
            }
        }
    }
    for (int r = 0; r < 2; ++r) {
        u32 kj = k0 + warp * 2 + r;
        if (kj >= S) break;
        u64 o = (((u64)b * S + kj) * H + h) * d;
        for (int c = 0; c < 4; ++c) {
            u32 col = lane + 32 * c;
            if (col < d) {
                dk[o + col] = from_acc<T>(ak[r][c] * scale);
                dv[o + col] = from_acc<T>(av[r][c]);
            }
        }
    }
}

#define DECODE_CHUNK 256
#define DECODE_WARP_KEYS 64

// One query row per (b, h) (t == 1: every key is visible). Block (split, h, b) covers
// keys [split * 256, ...); writes m, l and the unnormalised acc[d] to
// ws[((b * H + h) * splits + split) * (d + 2)].
template <class T>
__device__ void attention_decode(u32 S, u32 H, u32 d, u32 splits, const T* q, Strides qs, const T* k, Strides ks, const T* v, Strides vs,
                                 float* ws, float scale) {
    __shared__ float sq[DMAX];
    __shared__ float wm[4], wl[4];
    __shared__ float wacc[4][DMAX];
    u32 b = blockIdx.z, h = blockIdx.y, split = blockIdx.x;
    u32 lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    for (u32 c = threadIdx.x; c < d; c += blockDim.x) sq[c] = to_acc(q[row_at(qs, b, 0, h) + c]) * scale;
    __syncthreads();
    float m = NEG_INF, l = 0.f, acc[4] = {0.f, 0.f, 0.f, 0.f};
    u32 kbeg = split * DECODE_CHUNK + warp * DECODE_WARP_KEYS;
    u32 kend = min(S, kbeg + DECODE_WARP_KEYS);
    for (u32 k0 = kbeg; k0 < kend; k0 += 32) {
        u32 kj = k0 + lane;
        bool visible = kj < kend;
        float s = NEG_INF;
        if (visible) {
            const T* kr = k + row_at(ks, b, kj, h);
            s = 0.f;
            for (u32 c = 0; c < d; ++c) s += sq[c] * to_acc(kr[c]);
        }
        float mn = fmaxf(m, warp_max(s));
        float p = visible ? expf(s - mn) : 0.f;
        float corr = expf(m - mn);
        l = l * corr + warp_sum(p);
        for (int c = 0; c < 4; ++c) acc[c] *= corr;
        for (int j = 0; j < 32 && k0 + j < kend; ++j) {
            float pj = __shfl_sync(0xffffffffu, p, j);
            const T* vr = v + row_at(vs, b, k0 + j, h);
            for (int c = 0; c < 4; ++c) {
                u32 col = lane + 32 * c;
                if (col < d) acc[c] += pj * to_acc(vr[col]);
            }
        }
        m = mn;
    }
    if (lane == 0) { wm[warp] = m; wl[warp] = l; }
    for (int c = 0; c < 4; ++c) {
        u32 col = lane + 32 * c;
        if (col < d) wacc[warp][col] = acc[c];
    }
    __syncthreads();
    if (warp == 0) {
        float mm = fmaxf(fmaxf(wm[0], wm[1]), fmaxf(wm[2], wm[3]));
        float* o = ws + (((u64)b * H + h) * splits + split) * (d + 2);
        float ll = 0.f, wgt[4];
        for (int w = 0; w < 4; ++w) { wgt[w] = wm[w] == NEG_INF ? 0.f : expf(wm[w] - mm); ll += wl[w] * wgt[w]; }
        for (u32 c = lane; c < d; c += 32) {
            float a = 0.f;
            for (int w = 0; w < 4; ++w) a += wacc[w][c] * wgt[w];
            o[2 + c] = a;
        }
        if (lane == 0) { o[0] = mm; o[1] = ll; }
    }
}

// Merges the splits of one (b, h): out = sum_s acc_s e^(m_s - M) / L, lse = M + log L.
template <class T>
__device__ void attention_decode_combine(u32 H, u32 d, u32 splits, const float* ws, T* out, float* lse) {
    u32 b = blockIdx.y, h = blockIdx.x, lane = threadIdx.x;
    const float* base = ws + ((u64)b * H + h) * splits * (d + 2);
    float mm = NEG_INF;
    for (u32 s = 0; s < splits; ++s) mm = fmaxf(mm, base[s * (d + 2)]);
    float ll = 0.f;
    for (u32 s = 0; s < splits; ++s) ll += base[s * (d + 2) + 1] * expf(base[s * (d + 2)] - mm);
    for (u32 c = lane; c < d; c += 32) {
        float a = 0.f;
        for (u32 s = 0; s < splits; ++s) a += base[s * (d + 2) + 2 + c] * expf(base[s * (d + 2)] - mm);
        out[((u64)b * H + h) * d + c] = from_acc<T>(a / ll);
    }
    if (lane == 0) lse[(u64)b * H + h] = mm + logf(ll);
}

#define ATTENTION(T, sfx) \
    extern "C" __global__ void attention_fwd_##sfx(u32 t, u32 s, u32 h, u32 d, const T* q, Strides qs, const T* k, Strides ks, \
                                                   const T* v, Strides vs, T* out, float* lse, float scale) { \
        attention_fwd<T>(t, s, h, d, q, qs, k, ks, v, vs, out, lse, scale); } \
    extern "C" __global__ void attention_bwd_delta_##sfx(u32 b, u32 t, u32 h, u32 d, const T* out, const T* dout, float* delta) { \
        attention_bwd_delta<T>(b, t, h, d, out, dout, delta); } \
    extern "C" __global__ void attention_bwd_dq_##sfx(u32 t, u32 s, u32 h, u32 d, const T* q, Strides qs, const T* k, Strides ks, \
                                                      const T* v, Strides vs, const T* dout, const float* lse, const float* delta, T* dq, float scale) { \
        attention_bwd_dq<T>(t, s, h, d, q, qs, k, ks, v, vs, dout, lse, delta, dq, scale); } \
    extern "C" __global__ void attention_bwd_dkv_##sfx(u32 t, u32 s, u32 h, u32 d, const T* q, Strides qs, const T* k, Strides ks, \
                                                       const T* v, Strides vs, const T* dout, const float* lse, const float* delta, \
                                                       T* dk, T* dv, float scale) { \
        attention_bwd_dkv<T>(t, s, h, d, q, qs, k, ks, v, vs, dout, lse, delta, dk, dv, scale); } \
    extern "C" __global__ void attention_decode_##sfx(u32 s, u32 h, u32 d, u32 splits, const T* q, Strides qs, const T* k, Strides ks, \
                                                      const T* v, Strides vs, float* ws, float scale) { \
        attention_decode<T>(s, h, d, splits, q, qs, k, ks, v, vs, ws, scale); } \
    extern "C" __global__ void attention_decode_combine_##sfx(u32 h, u32 d, u32 splits, const float* ws, T* out, float* lse) { \
        attention_decode_combine<T>(h, d, splits, ws, out, lse); }
ATTENTION(float, f32)
ATTENTION(bf16, bf16)
