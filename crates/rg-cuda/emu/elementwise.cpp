// Elementwise kernels on the host emulator: strided and broadcast views, integral powers,
// the causal fill, comparisons, where.
#include "shim.h"
#include "elementwise.cu"
#include "common_test.h"
int main() {
    // x viewed as the transpose of a [5, 7] matrix: dims [7, 5], strides [1, 7], offset 0.
    auto x = rnd(35, -2, 2);
    Layout lt{2, {7, 5, 1, 1, 1, 1}, {1, 7, 0, 0, 0, 0}, 0};
    std::vector<float> y(35, NAN);
    std::vector<double> ref(35);
    auto xt = [&](unsigned i) { unsigned r = i / 5, c = i % 5; return (double)x[c * 7 + r]; };
    launch({2, 1, 1}, {32, 1, 1}, [&] { unary_gelu_f32(35, lt, x.data(), y.data()); });
    for (unsigned i = 0; i < 35; ++i) { double v = xt(i); ref[i] = 0.5 * v * (1 + std::tanh(0.7978845608028654 * (v + 0.044715 * v * v * v))); }
    report("gelu on a transposed view", rel(y, ref));
    launch({1, 1, 1}, {64, 1, 1}, [&] { powf_f32(35, lt, x.data(), y.data(), -3.0, 1, -3); });
    for (unsigned i = 0; i < 35; ++i) ref[i] = std::pow(xt(i), -3);
    report("powf -3 (integral)", rel(y, ref));
    // Broadcast add: a [7, 5] transposed view + row [5] (stride 0 on axis 0), with offset 2.
    auto row = rnd(8);
    Layout lb{2, {7, 5, 1, 1, 1, 1}, {0, 1, 0, 0, 0, 0}, 2};
    launch({1, 1, 1}, {32, 1, 1}, [&] { binary_add_f32(35, lt, x.data(), lb, row.data(), y.data()); });
    for (unsigned i = 0; i < 35; ++i) ref[i] = xt(i) + row[2 + i % 5];
    report("broadcast add", rel(y, ref));
    // Rank-1 contiguous with offset.
    Layout lc{1, {30, 1, 1, 1, 1, 1}, {1, 0, 0, 0, 0, 0}, 5};
    launch({1, 1, 1}, {32, 1, 1}, [&] { affine_f32(30, lc, x.data(), y.data(), -2.0, 0.5); });
    std::vector<float> y30(y.begin(), y.begin() + 30); std::vector<double> r30(30);
    for (unsigned i = 0; i < 30; ++i) r30[i] = x[5 + i] * -2.0 + 0.5;
    report("affine contiguous + offset", rel(y30, r30));
    // Causal fill on [2, 3, 4] (t = 3, s = 4: one cached position).
    auto m = rnd(24);
    Layout l24{1, {24, 1, 1, 1, 1, 1}, {1, 0, 0, 0, 0, 0}, 0};
    std::vector<float> y24(24, NAN); std::vector<double> r24(24);
    launch({1, 1, 1}, {32, 1, 1}, [&] { causal_fill_f32(24, l24, m.data(), y24.data(), 3, 4, -1e4); });
    for (unsigned i = 0; i < 24; ++i) { unsigned j = i % 4, r = (i / 4) % 3; r24[i] = j > r + 1 ? -1e4 : m[i]; }
    report("causal_fill", rel(y24, r24));
    // cmp and where.
    std::vector<unsigned> c(35, 7);
    launch({1, 1, 1}, {32, 1, 1}, [&] { cmp_f32(35, 4, lt, x.data(), lb, row.data(), c.data()); });
    int bad = 0; for (unsigned i = 0; i < 35; ++i) bad += c[i] != (unsigned)(xt(i) > row[2 + i % 5]);
    report("cmp gt", bad);
    Layout l35{1, {35, 1, 1, 1, 1, 1}, {1, 0, 0, 0, 0, 0}, 0};
    std::vector<float> w(35, NAN);
    launch({1, 1, 1}, {32, 1, 1}, [&] { where_b4(35, l35, c.data(), lt, (const u32*)x.data(), lb, (const u32*)row.data(), (u32*)w.data()); });
    for (unsigned i = 0; i < 35; ++i) ref[i] = c[i] ? xt(i) : row[2 + i % 5];
    report("where", rel(w, ref));
    return fails;
}
