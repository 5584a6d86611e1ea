// Row kernels on the host emulator: softmax, log-softmax, layer norm (plain and split
// parameter gradients), the fused cross-entropy forward and backward.
#include "shim.h"
#include "softmax.cu"
#include "layer_norm.cu"
#include "cross_entropy.cu"
#include "common_test.h"
int main() {
    unsigned R = 13, C = 300;
    auto x = rnd(R * C, -4, 4), dy = rnd(R * C);
    // softmax / log-softmax and backward.
    std::vector<double> sm(R * C), ls(R * C), lse(R);
    for (unsigned r = 0; r < R; ++r) {
        double m = -1e30; for (unsigned c = 0; c < C; ++c) m = std::max(m, (double)x[r*C+c]);
        double s = 0; for (unsigned c = 0; c < C; ++c) s += std::exp(x[r*C+c] - m);
        lse[r] = m + std::log(s);
        for (unsigned c = 0; c < C; ++c) { sm[r*C+c] = std::exp(x[r*C+c] - m) / s; ls[r*C+c] = x[r*C+c] - lse[r]; }
    }
    std::vector<float> y(R * C, NAN), dx(R * C, NAN);
    launch({R, 1, 1}, {128, 1, 1}, [&] { softmax_f32(R, C, x.data(), y.data(), 0); });
    report("softmax", rel(y, sm));
    std::vector<double> dref(R * C);
    for (unsigned r = 0; r < R; ++r) { double s = 0; for (unsigned c = 0; c < C; ++c) s += dy[r*C+c] * y[r*C+c]; for (unsigned c = 0; c < C; ++c) dref[r*C+c] = y[r*C+c] * (dy[r*C+c] - s); }
    launch({4, 1, 1}, {96, 1, 1}, [&] { softmax_backward_f32(R, C, y.data(), dy.data(), dx.data(), 0); });
    report("softmax_backward", rel(dx, dref));
    launch({5, 1, 1}, {320, 1, 1}, [&] { softmax_f32(R, C, x.data(), y.data(), 1); });
    report("log_softmax", rel(y, ls));
    for (unsigned r = 0; r < R; ++r) { double s = 0; for (unsigned c = 0; c < C; ++c) s += dy[r*C+c]; for (unsigned c = 0; c < C; ++c) dref[r*C+c] = dy[r*C+c] - std::exp((double)y[r*C+c]) * s; }
    launch({R, 1, 1}, {64, 1, 1}, [&] { softmax_backward_f32(R, C, y.data(), dy.data(), dx.data(), 1); });
    report("log_softmax_backward", rel(dx, dref));
    // Layer norm.
    auto g = rnd(C), b = rnd(C);
    std::vector<double> ry(R * C), rm(R), rr(R), rdx(R * C), rdg(C, 0), rdb(C, 0);
    for (unsigned r = 0; r < R; ++r) {
        double mu = 0; for (unsigned c = 0; c < C; ++c) mu += x[r*C+c]; mu /= C;
        double var = 0; for (unsigned c = 0; c < C; ++c) var += (x[r*C+c] - mu) * (x[r*C+c] - mu); var /= C;
        double rs = 1 / std::sqrt(var + 1e-5); rm[r] = mu; rr[r] = rs;
        double mg = 0, mgx = 0;
        for (unsigned c = 0; c < C; ++c) { double h = (x[r*C+c] - mu) * rs; ry[r*C+c] = h * g[c] + b[c]; double gg = dy[r*C+c] * g[c]; mg += gg; mgx += gg * h; rdg[c] += dy[r*C+c] * h; rdb[c] += dy[r*C+c]; }
        mg /= C; mgx /= C;
        for (unsigned c = 0; c < C; ++c) { double h = (x[r*C+c] - mu) * rs; rdx[r*C+c] = rs * (dy[r*C+c] * g[c] - mg - h * mgx); }
    }
    std::vector<float> mean(R, NAN), rstd(R, NAN);
    launch({7, 1, 1}, {128, 1, 1}, [&] { layer_norm_f32(R, C, x.data(), g.data(), b.data(), y.data(), mean.data(), rstd.data(), 1e-5); });
    report("layer_norm y", rel(y, ry)); report("layer_norm mean", rel(mean, rm)); report("layer_norm rstd", rel(rstd, rr));
    launch({R, 1, 1}, {256, 1, 1}, [&] { layer_norm_dx_f32(R, C, dy.data(), x.data(), g.data(), mean.data(), rstd.data(), dx.data()); });
    report("layer_norm dx", rel(dx, rdx));
    std::vector<float> dg(C, NAN), db(C, NAN);
    launch({(C + 31) / 32, 1, 1}, {32, 8, 1}, [&] { layer_norm_params_f32(R, C, dy.data(), x.data(), mean.data(), rstd.data(), dg.data(), db.data()); });
    report("layer_norm dgamma", rel(dg, rdg)); report("layer_norm dbeta", rel(db, rdb));
    unsigned chunk = 4, splits = (R + chunk - 1) / chunk;
    std::vector<float> pg(splits * C, NAN), pb(splits * C, NAN); dg.assign(C, NAN); db.assign(C, NAN);
    launch({(C + 31) / 32, splits, 1}, {32, 8, 1}, [&] { layer_norm_params_part_f32(R, C, dy.data(), x.data(), mean.data(), rstd.data(), pg.data(), pb.data(), chunk); });
    launch({2, 1, 1}, {128, 1, 1}, [&] { layer_norm_params_finish_f32(C, splits, pg.data(), pb.data(), dg.data(), db.data()); });
    report("layer_norm split dgamma", rel(dg, rdg)); report("layer_norm split dbeta", rel(db, rdb));
    // Cross-entropy: row 3 ignored.
    std::vector<unsigned> t(R); for (unsigned r = 0; r < R; ++r) t[r] = (r * 37) % C; t[3] = 0xffffffffu;
    std::vector<double> rl(R), rdl(R * C, 0);
    auto dl = rnd(R, 0.5, 1.5);
    for (unsigned r = 0; r < R; ++r) {
        rl[r] = t[r] == 0xffffffffu ? 0 : lse[r] - x[r*C+t[r]];
        if (t[r] != 0xffffffffu) for (unsigned c = 0; c < C; ++c) rdl[r*C+c] = dl[r] * (std::exp(x[r*C+c] - lse[r]) - (c == t[r]));
    }
    std::vector<float> loss(R, NAN), flse(R, NAN);
    launch({R, 1, 1}, {128, 1, 1}, [&] { cross_entropy_f32(R, C, x.data(), t.data(), loss.data(), flse.data()); });
    report("ce loss", rel(loss, rl)); report("ce lse", rel(flse, lse));
    for (int rec = 0; rec < 2; ++rec) {
        dx.assign(R * C, NAN);
        launch({3, 1, 1}, {96, 1, 1}, [&] { cross_entropy_backward_f32(R, C, x.data(), flse.data(), t.data(), dl.data(), dx.data(), rec); });
        report(rec ? "ce backward (recomputed lse)" : "ce backward", rel(dx, rdl));
    }
    return fails;
}
