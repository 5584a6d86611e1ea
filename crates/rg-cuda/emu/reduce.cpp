// Reductions on the host emulator: row, column and split column kernels, argmax ties and
// NaN, bf16 input.
#include "shim.h"
#include "reduce.cu"
#include "common_test.h"
// x [R, C] contiguous; reduce over axis 0 (column sums: outputs C, stride C) and axis 1 (rows).
int main() {
    unsigned R = 700, C = 45;
    auto x = rnd(R * C);
    x[5 * C + 3] = 2.0f; x[9 * C + 3] = 2.0f;  // tie in column 3 for argmax (first wins: row 5)
    std::vector<double> colsum(C, 0), colmax(C, -1e30), rowsum(R, 0), rowmin(R, 1e30);
    std::vector<unsigned> colarg(C, 0), rowarg(R, 0);
    for (unsigned r = 0; r < R; ++r) for (unsigned c = 0; c < C; ++c) {
        double v = x[r * C + c];
        colsum[c] += v; if (v > colmax[c]) { colmax[c] = v; colarg[c] = r; }
        rowsum[r] += v; rowmin[r] = std::min(rowmin[r], v);
    }
    for (unsigned r = 0; r < R; ++r) { double b = -1e30; for (unsigned c = 0; c < C; ++c) if (x[r*C+c] > b) { b = x[r*C+c]; rowarg[r] = c; } }
    Layout lcol{1, {C, 1, 1, 1, 1, 1}, {1, 0, 0, 0, 0, 0}, 0};   // outputs over columns, stride 1
    Layout lrow{1, {R, 1, 1, 1, 1, 1}, {C, 0, 0, 0, 0, 0}, 0};   // outputs over rows, stride C
    std::vector<float> y(C, NAN);
    launch({(C + 31) / 32, 1, 1}, {32, 8, 1}, [&] { reduce_col_sum_f32(C, R, lcol, C, x.data(), y.data()); });
    report("reduce_col_sum", rel(y, colsum));
    launch({(C + 31) / 32, 1, 1}, {32, 8, 1}, [&] { reduce_col_max_f32(C, R, lcol, C, x.data(), y.data()); });
    report("reduce_col_max", rel(y, colmax));
    std::vector<unsigned> yi(C, 99999);
    launch({(C + 31) / 32, 1, 1}, {32, 8, 1}, [&] { reduce_col_argmax_f32(C, R, lcol, C, x.data(), yi.data()); });
    { int bad = 0; for (unsigned c = 0; c < C; ++c) bad += yi[c] != colarg[c]; report("reduce_col_argmax", bad); }
    // Split: chunks of 256 rows.
    unsigned chunk = 256, splits = (R + chunk - 1) / chunk;
    std::vector<float> part(splits * C, NAN);
    launch({(C + 31) / 32, splits, 1}, {32, 8, 1}, [&] { reduce_part_sum_f32(C, R, lcol, C, x.data(), part.data(), chunk); });
    launch({1, 1, 1}, {256, 1, 1}, [&] { reduce_finish_sum_f32(C, splits, part.data(), y.data()); });
    report("reduce_part+finish sum", rel(y, colsum));
    launch({(C + 31) / 32, splits, 1}, {32, 8, 1}, [&] { reduce_part_max_f32(C, R, lcol, C, x.data(), part.data(), chunk); });
    launch({1, 1, 1}, {256, 1, 1}, [&] { reduce_finish_max_f32(C, splits, part.data(), y.data()); });
    report("reduce_part+finish max", rel(y, colmax));
    std::vector<float> yr(R, NAN);
    launch({64, 1, 1}, {64, 1, 1}, [&] { reduce_row_sum_f32(R, C, lrow, 1, x.data(), yr.data()); });
    report("reduce_row_sum", rel(yr, rowsum));
    launch({64, 1, 1}, {64, 1, 1}, [&] { reduce_row_min_f32(R, C, lrow, 1, x.data(), yr.data()); });
    report("reduce_row_min", rel(yr, rowmin));
    std::vector<unsigned> yri(R, 99999);
    launch({64, 1, 1}, {64, 1, 1}, [&] { reduce_row_argmax_f32(R, C, lrow, 1, x.data(), yri.data()); });
    { int bad = 0; for (unsigned r = 0; r < R; ++r) bad += yri[r] != rowarg[r]; report("reduce_row_argmax", bad); }
    // NaN propagates through max; argmax picks the NaN.
    x[2 * C + 7] = NAN;
    launch({64, 1, 1}, {64, 1, 1}, [&] { reduce_row_argmax_f32(R, C, lrow, 1, x.data(), yri.data()); });
    report("argmax picks NaN", yri[2] != 7);
    launch({(C + 31) / 32, 1, 1}, {32, 8, 1}, [&] { reduce_col_max_f32(C, R, lcol, C, x.data(), y.data()); });
    report("max propagates NaN", !std::isnan(y[7]));
    // bf16 input, f32 accumulation.
    std::vector<bf16> xb(R * C); for (size_t i = 0; i < xb.size(); ++i) xb[i] = __float2bfloat16(std::isnan(x[i]) ? 0.5f : x[i]);
    std::vector<double> bs(C, 0); for (unsigned r = 0; r < R; ++r) for (unsigned c = 0; c < C; ++c) bs[c] += __bfloat162float(xb[r*C+c]);
    std::vector<bf16> yb(C);
    launch({(C + 31) / 32, splits, 1}, {32, 8, 1}, [&] { reduce_part_sum_bf16(C, R, lcol, C, xb.data(), part.data(), chunk); });
    launch({1, 1, 1}, {256, 1, 1}, [&] { reduce_finish_sum_bf16(C, splits, part.data(), yb.data()); });
    std::vector<float> ybf(C); for (unsigned c = 0; c < C; ++c) ybf[c] = __bfloat162float(yb[c]);
    report("bf16 split sum", rel(ybf, bs), 1e-2);
    return fails;
}
