#pragma once
#include <cstdio>
#include <random>
#include <vector>
static std::mt19937 rng(7);
static std::vector<float> rnd(size_t n, float lo = -1, float hi = 1) {
    std::uniform_real_distribution<float> U(lo, hi);
    std::vector<float> v(n); for (auto& e : v) e = U(rng); return v;
}
static double rel(const std::vector<float>& a, const std::vector<double>& b) {
    double n = 0, d = 0;
    for (size_t i = 0; i < a.size(); ++i) { if (!std::isfinite(a[i])) return 1e9; n += (a[i] - b[i]) * (a[i] - b[i]); d += b[i] * b[i]; }
    return d == 0 ? std::sqrt(n) : std::sqrt(n / d);
}
static int fails = 0;
static void report(const char* what, double e, double tol = 1e-5) {
    bool ok = e <= tol; fails += !ok;
    printf("%-40s %.2e %s\n", what, e, ok ? "ok" : "FAIL");
}
