"""The OpenBLAS ceiling for PERF.md: f32 square matmul through numpy (whose wheels
bundle their own, recent OpenBLAS), best of several runs, in GFLOP/s.

Run with the machine's OpenBLAS workarounds unset for this one process:
    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python3 crates/rg-cpu/benches/numpy_ceiling.py
"""

import time

import numpy as np

for n in (256, 1024, 2048):
    rng = np.random.default_rng(0)
    a = rng.standard_normal((n, n), dtype=np.float32)
    b = rng.standard_normal((n, n), dtype=np.float32)
    a @ b
    reps = {256: 200, 1024: 20, 2048: 6}[n]
    best = float("inf")
    for _ in range(reps):
        t = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - t)
    print(f"n={n:5} best {best * 1e3:8.3f} ms {2 * n**3 / best / 1e9:6.1f} GFLOP/s")
