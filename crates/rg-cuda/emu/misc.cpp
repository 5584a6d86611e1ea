// Copies, casts, fills, gather/scatter-add and AdamW on the host emulator.
#include "shim.h"
#include "copy.cu"
#include "indexing.cu"
#include "adamw.cu"
#include "common_test.h"
int main() {
    // Strided copy: src transposed [4, 3] view of a [3, 4]; dst a [4, 3] window (row stride 5, offset 1).
    auto s = rnd(12);
    Layout ls{2, {4, 3, 1, 1, 1, 1}, {1, 4, 0, 0, 0, 0}, 0};
    Layout ld{2, {4, 3, 1, 1, 1, 1}, {5, 1, 0, 0, 0, 0}, 1};
    std::vector<float> d(21, -7.f);
    launch({1, 1, 1}, {32, 1, 1}, [&] { copy_b4(12, ls, (const u32*)s.data(), ld, (u32*)d.data()); });
    int bad = 0;
    for (unsigned r = 0; r < 4; ++r) for (unsigned c = 0; c < 3; ++c) bad += d[1 + r * 5 + c] != s[c * 4 + r];
    bad += d[0] != -7.f || d[4] != -7.f;
    report("copy strided -> strided", bad);
    // Casts.
    std::vector<float> v = {1.5f, -2.7f, 4.5e9f, NAN, -INFINITY, 3.0f};
    Layout l6{1, {6, 1, 1, 1, 1, 1}, {1, 0, 0, 0, 0, 0}, 0};
    std::vector<u32> u(6, 77);
    launch({1, 1, 1}, {32, 1, 1}, [&] { cast_f32_u32(6, l6, v.data(), u.data()); });
    std::vector<u32> want = {1, 0, 4294967295u, 0, 0, 3};
    bad = 0; for (int i = 0; i < 6; ++i) bad += u[i] != want[i];
    report("cast f32 -> u32 (saturating, NaN 0)", bad);
    std::vector<i64> il(6, 77);
    launch({1, 1, 1}, {32, 1, 1}, [&] { cast_f32_i64(6, l6, v.data(), il.data()); });
    std::vector<i64> wi = {1, -2, (i64)4.5e9f, 0, (i64)0x8000000000000000ull, 3};
    bad = 0; for (int i = 0; i < 6; ++i) bad += il[i] != wi[i];
    report("cast f32 -> i64", bad);
    std::vector<unsigned long long> fb(3, 0);
    launch({1, 1, 1}, {32, 1, 1}, [&] { fill_b8(3, 0x4004000000000000ull, fb.data()); });
    report("fill b8", fb[2] != 0x4004000000000000ull);
    // index_select and index_add over [2, 6, 3] with ids along axis 1.
    unsigned outer = 2, size = 6, inner = 3;
    std::vector<u32> ids = {4, 0, 4, 2, 5};
    unsigned n = ids.size();
    auto src = rnd(outer * size * inner);
    std::vector<float> out(outer * n * inner, NAN); std::vector<double> ref(out.size());
    launch({1, 1, 1}, {32, 1, 1}, [&] { index_select_b4(outer * n * inner, n, size, inner, ids.data(), (const u32*)src.data(), (u32*)out.data()); });
    for (unsigned o = 0; o < outer; ++o) for (unsigned i = 0; i < n; ++i) for (unsigned c = 0; c < inner; ++c) ref[(o*n+i)*inner+c] = src[(o*size+ids[i])*inner+c];
    report("index_select", rel(out, ref));
    auto g = rnd(outer * n * inner);
    std::vector<u32> starts = {0, 1, 1, 2, 2, 4, 5}, positions = {1, 3, 0, 2, 4};
    std::vector<float> acc(outer * size * inner, NAN); std::vector<double> racc(acc.size(), 0);
    launch({1, 1, 1}, {32, 1, 1}, [&] { index_add_f32(outer * size * inner, n, size, inner, starts.data(), positions.data(), g.data(), acc.data()); });
    for (unsigned o = 0; o < outer; ++o) for (unsigned i = 0; i < n; ++i) for (unsigned c = 0; c < inner; ++c) racc[(o*size+ids[i])*inner+c] += g[(o*n+i)*inner+c];
    report("index_add", rel(acc, racc));
    // AdamW, one step.
    auto p = rnd(50), gr = rnd(50), m = rnd(50), vv = rnd(50, 0, 1);
    std::vector<double> rp(50);
    double b1 = 0.9, b2 = 0.95, lr = 1e-2, eps = 1e-8, wd = 0.1, gs = 0.5, bc1 = 1 / (1 - std::pow(b1, 3)), bc2 = 1 / (1 - std::pow(b2, 3));
    for (int i = 0; i < 50; ++i) { double gi = gr[i] * gs, mi = b1 * m[i] + (1 - b1) * gi, vi = b2 * vv[i] + (1 - b2) * gi * gi; rp[i] = p[i] - lr * (mi * bc1 / (std::sqrt(vi * bc2) + eps) + wd * p[i]); }
    launch({1, 1, 1}, {64, 1, 1}, [&] { adamw_f32(50, p.data(), gr.data(), m.data(), vv.data(), b1, b2, 1 - b1, 1 - b2, bc1, bc2, lr, eps, wd, gs); });
    report("adamw", rel(p, rp));
    return fails;
}
