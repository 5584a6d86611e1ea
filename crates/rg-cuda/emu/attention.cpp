// Fused attention on the host emulator: forward, split-K decode and the three backward
// kernels against a double-precision reference (training, KV-cache prefix, decode).
#include "shim.h"
#include "attention.cu"
#include <cstdio>
#include <random>
#include <cassert>

static double rel(const std::vector<float>& a, const std::vector<double>& b) {
    double n = 0, d = 0;
    for (size_t i = 0; i < a.size(); ++i) { if (!std::isfinite(a[i])) return 1e9; n += (a[i] - b[i]) * (a[i] - b[i]); d += b[i] * b[i]; }
    return std::sqrt(n / d);
}

int main() {
    std::mt19937 rng(1);
    std::uniform_real_distribution<float> U(-1, 1);
    struct Case { unsigned B, T, S, H, D; };
    int fails = 0;
    for (Case c : {Case{1, 37, 37, 2, 64}, Case{1, 5, 70, 2, 64}, Case{2, 1, 600, 2, 64}, Case{1, 1, 9, 1, 32}, Case{2, 40, 40, 1, 16}}) {
        unsigned B = c.B, T = c.T, S = c.S, H = c.H, D = c.D;
        std::vector<float> q(B * T * H * D), k(B * S * H * D), v(B * S * H * D), dout(B * T * H * D);
        for (auto* x : {&q, &k, &v, &dout}) for (auto& e : *x) e = U(rng);
        float scale = 1.0f / std::sqrt((float)D);
        Strides qs{(u64)T * H * D, (u64)H * D, D}, ks{(u64)S * H * D, (u64)H * D, D};
        // Reference in double: P, out, lse, and gradients.
        unsigned off = S - T;
        std::vector<double> ro(q.size()), rl(B * H * T), rdq(q.size(), 0), rdk(k.size(), 0), rdv(v.size(), 0);
        for (unsigned b = 0; b < B; ++b) for (unsigned h = 0; h < H; ++h) for (unsigned i = 0; i < T; ++i) {
            std::vector<double> s(S, -INFINITY); double m = -INFINITY;
            for (unsigned j = 0; j <= i + off; ++j) { double a = 0; for (unsigned c2 = 0; c2 < D; ++c2) a += (double)q[((b*T+i)*H+h)*D+c2] * k[((b*S+j)*H+h)*D+c2]; s[j] = a * scale; m = std::max(m, s[j]); }
            double l = 0; for (unsigned j = 0; j <= i + off; ++j) l += std::exp(s[j] - m);
            double lse = m + std::log(l); rl[(b*H+h)*T+i] = lse;
            std::vector<double> p(S, 0); for (unsigned j = 0; j <= i + off; ++j) p[j] = std::exp(s[j] - lse);
            for (unsigned c2 = 0; c2 < D; ++c2) { double a = 0; for (unsigned j = 0; j <= i + off; ++j) a += p[j] * v[((b*S+j)*H+h)*D+c2]; ro[((b*T+i)*H+h)*D+c2] = a; }
            double delta = 0; for (unsigned c2 = 0; c2 < D; ++c2) delta += ro[((b*T+i)*H+h)*D+c2] * dout[((b*T+i)*H+h)*D+c2];
            for (unsigned j = 0; j <= i + off; ++j) {
                double dp = 0; for (unsigned c2 = 0; c2 < D; ++c2) dp += (double)dout[((b*T+i)*H+h)*D+c2] * v[((b*S+j)*H+h)*D+c2];
                double ds = p[j] * (dp - delta);
                for (unsigned c2 = 0; c2 < D; ++c2) {
                    rdv[((b*S+j)*H+h)*D+c2] += p[j] * dout[((b*T+i)*H+h)*D+c2];
                    rdq[((b*T+i)*H+h)*D+c2] += scale * ds * k[((b*S+j)*H+h)*D+c2];
                    rdk[((b*S+j)*H+h)*D+c2] += scale * ds * q[((b*T+i)*H+h)*D+c2];
                }
            }
        }
        std::vector<float> out(q.size(), NAN), lse(B * H * T, NAN);
        if (T == 1) {
            unsigned splits = (S + 255) / 256;
            std::vector<float> ws(B * H * splits * (D + 2), NAN);
            launch({splits, H, B}, {128, 1, 1}, [&] { attention_decode_f32(S, H, D, splits, q.data(), qs, k.data(), ks, v.data(), ks, ws.data(), scale); });
            launch({H, B, 1}, {32, 1, 1}, [&] { attention_decode_combine_f32(H, D, splits, ws.data(), out.data(), lse.data()); });
        } else {
            launch({(T + 15) / 16, H, B}, {128, 1, 1}, [&] { attention_fwd_f32(T, S, H, D, q.data(), qs, k.data(), ks, v.data(), ks, out.data(), lse.data(), scale); });
        }
        double eo = rel(out, ro), el = rel(lse, rl);
        // Backward from the reference forward (as the op receives it).
        std::vector<float> fo(ro.begin(), ro.end()), fl(rl.begin(), rl.end());
        std::vector<float> delta(B * H * T, NAN), dq(q.size(), NAN), dk(k.size(), NAN), dv(v.size(), NAN);
        unsigned rows = B * T * H;
        launch({(rows + 3) / 4, 1, 1}, {128, 1, 1}, [&] { attention_bwd_delta_f32(B, T, H, D, fo.data(), dout.data(), delta.data()); });
        launch({(T + 7) / 8, H, B}, {128, 1, 1}, [&] { attention_bwd_dq_f32(T, S, H, D, q.data(), qs, k.data(), ks, v.data(), ks, dout.data(), fl.data(), delta.data(), dq.data(), scale); });
        launch({(S + 7) / 8, H, B}, {128, 1, 1}, [&] { attention_bwd_dkv_f32(T, S, H, D, q.data(), qs, k.data(), ks, v.data(), ks, dout.data(), fl.data(), delta.data(), dk.data(), dv.data(), scale); });
        double eq = rel(dq, rdq), ek = rel(dk, rdk), ev = rel(dv, rdv);
        bool ok = eo < 1e-5 && el < 1e-5 && eq < 1e-5 && ek < 1e-5 && ev < 1e-5;
        fails += !ok;
        printf("B%u T%u S%u H%u D%u: out %.2e lse %.2e dq %.2e dk %.2e dv %.2e %s\n", B, T, S, H, D, eo, el, eq, ek, ev, ok ? "ok" : "FAIL");
        // bf16 storage, f32 compute: the same cases through the bf16 entry points,
        // against the f32 results (the inputs here are not rounded, so the bound is
        // bf16's rounding of inputs and outputs, 1e-2).
        auto to_b = [](const std::vector<float>& a) { std::vector<bf16> r(a.size()); for (size_t i = 0; i < a.size(); ++i) r[i] = __float2bfloat16(a[i]); return r; };
        auto to_f = [](const std::vector<bf16>& a) { std::vector<float> r(a.size()); for (size_t i = 0; i < a.size(); ++i) r[i] = __bfloat162float(a[i]); return r; };
        auto qb = to_b(q), kb = to_b(k), vb = to_b(v), gb = to_b(dout), ob = to_b(fo);
        std::vector<bf16> outb(q.size()), dqb(q.size()), dkb(k.size()), dvb(v.size());
        std::vector<float> lseb(B * H * T, NAN), deltab(B * H * T, NAN);
        if (T == 1) {
            unsigned splits = (S + 255) / 256;
            std::vector<float> ws(B * H * splits * (D + 2), NAN);
            launch({splits, H, B}, {128, 1, 1}, [&] { attention_decode_bf16(S, H, D, splits, qb.data(), qs, kb.data(), ks, vb.data(), ks, ws.data(), scale); });
            launch({H, B, 1}, {32, 1, 1}, [&] { attention_decode_combine_bf16(H, D, splits, ws.data(), outb.data(), lseb.data()); });
        } else {
            launch({(T + 15) / 16, H, B}, {128, 1, 1}, [&] { attention_fwd_bf16(T, S, H, D, qb.data(), qs, kb.data(), ks, vb.data(), ks, outb.data(), lseb.data(), scale); });
        }
        launch({(rows + 3) / 4, 1, 1}, {128, 1, 1}, [&] { attention_bwd_delta_bf16(B, T, H, D, ob.data(), gb.data(), deltab.data()); });
        launch({(T + 7) / 8, H, B}, {128, 1, 1}, [&] { attention_bwd_dq_bf16(T, S, H, D, qb.data(), qs, kb.data(), ks, vb.data(), ks, gb.data(), fl.data(), deltab.data(), dqb.data(), scale); });
        launch({(S + 7) / 8, H, B}, {128, 1, 1}, [&] { attention_bwd_dkv_bf16(T, S, H, D, qb.data(), qs, kb.data(), ks, vb.data(), ks, gb.data(), fl.data(), deltab.data(), dkb.data(), dvb.data(), scale); });
        double bo = rel(to_f(outb), ro), bl = rel(lseb, rl), bq = rel(to_f(dqb), rdq), bk = rel(to_f(dkb), rdk), bv = rel(to_f(dvb), rdv);
        bool okb = bo < 1e-2 && bl < 1e-2 && bq < 1e-2 && bk < 1e-2 && bv < 1e-2;
        fails += !okb;
        printf("  bf16: out %.2e lse %.2e dq %.2e dk %.2e dv %.2e %s\n", bo, bl, bq, bk, bv, okb ? "ok" : "FAIL");
    }
    return fails;
}
