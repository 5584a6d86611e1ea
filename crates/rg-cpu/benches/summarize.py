"""Summarises the criterion results of `cargo bench -p rg-cpu --bench kernels` for
PERF.md: per benchmark, the median and the best sample (the least disturbed on a
shared machine), as GFLOP/s for matmul and GB/s (1e9 bytes) for row ops.

    python3 crates/rg-cpu/benches/summarize.py [TARGET_DIR/criterion]
"""

import json
import os
import sys

root = sys.argv[1] if len(sys.argv) > 1 else os.path.join(
    os.environ.get("CARGO_TARGET_DIR", "target"), "criterion"
)


def rate(throughput, seconds):
    if "Elements" in throughput:
        return f'{throughput["Elements"] / seconds / 1e9:7.1f} GFLOP/s'
    if "Bytes" in throughput:
        return f'{throughput["Bytes"] / seconds / 1e9:7.2f} GB/s'
    return ""


rows = []
for dirpath, _, files in os.walk(root):
    if os.path.basename(dirpath) != "new" or "estimates.json" not in files:
        continue
    with open(os.path.join(dirpath, "estimates.json")) as f:
        median = json.load(f)["median"]["point_estimate"] / 1e9
    with open(os.path.join(dirpath, "sample.json")) as f:
        sample = json.load(f)
    best = min(t / n for t, n in zip(sample["times"], sample["iters"])) / 1e9
    with open(os.path.join(dirpath, "benchmark.json")) as f:
        bench = json.load(f)
    tp = bench.get("throughput") or {}
    rows.append((bench["full_id"], median, best, tp))

print(f'| {"benchmark":50} | median ms | median rate | best ms | best rate |')
print(f'| {"-" * 50} | ---: | ---: | ---: | ---: |')
for name, median, best, tp in sorted(rows):
    print(f"| {name:50} | {median * 1e3:.3f} | {rate(tp, median)} | {best * 1e3:.3f} | {rate(tp, best)} |")
