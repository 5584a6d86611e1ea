#!/usr/bin/env python3
"""The training equality check of `scripts/gpu-check.sh`: three `rgrad train
--log-format json` runs of the same task, seed and steps,

    cpu   --device cpu                              (a world of one, no collectives)
    cuda  --device cuda --collectives single        (a world of one, no collectives)
    nccl  --device cuda --collectives auto          (auto must pick nccl: a world of one)

    python3 scripts/train_equality.py CPU.jsonl CUDA.jsonl NCCL.jsonl [--md OUT.md]

Checks, and prints as a table:

1. the nccl run's per-step losses and gradient norms, and its held-out loss, are
   bitwise the cuda run's, and so are its final parameters (the checkpoints'
   model.safetensors, byte for byte): averaging over one rank is the identity, so
   NCCL must change nothing;
2. every loss of both GPU runs (per step, and held out) is within TOLERANCE of the
   cpu run's. Why 1e-3: the check runs with TF32 off (rg-cuda's default; gpu-check.sh
   unsets RG_CUDA_TF32), so cuBLAS and the CUDA kernels compute in f32 like the CPU
   and differ from it only in the order of additions (cuBLAS's blocking, parallel
   reductions in softmax, layer norm and cross-entropy): about 1e-6 relative per loss
   and gradient. Ten AdamW steps at lr 1e-3 spread that to the parameters, the most
   through components whose gradient is near zero, where rounding may flip the sign
   of the update (at most 2 * lr per step). rg-cuda's own test of ten fine-tuning
   steps against PyTorch (another f32 implementation) holds to 1e-4; 1e-3 leaves ten
   times that. TF32 (10 mantissa bits) would move losses by about as much as the
   tolerance, which is why it is off here;
3. each run reports the device and collectives it was asked for (`done` event).

Exits 0 when all hold, 1 otherwise (the reasons are printed).
"""
import json
import sys

TOLERANCE = 1e-3


def load(path):
    """The step events and the done event of a run's log; a run that never started
    (no log) has neither."""
    steps, done = [], None
    try:
        f = open(path)
    except OSError:
        return steps, done
    with f:
        for line in f:
            line = line.strip()
            if not line.startswith("{"):
                continue
            event = json.loads(line)
            if event.get("event") == "step":
                steps.append(event)
            elif event.get("event") == "done":
                done = event
    return steps, done


def same_bits(a, b):
    # json gives Python floats for the f64 rgrad printed (shortest round-trip form),
    # so equal floats are equal bits; None (a NaN printed as null) equals nothing.
    return a is not None and b is not None and float(a).hex() == float(b).hex()


def file_bytes(path):
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError:
        return None


def checkpoint_model(done):
    ckpt = (done or {}).get("checkpoint")
    return file_bytes(f"{ckpt}/model.safetensors") if ckpt else None


def fmt(x):
    return "null" if x is None else f"{x:.7f}"


class Checks:
    """Counts checks; a failed one keeps its reason."""

    def __init__(self):
        self.passed = 0
        self.problems = []

    def __call__(self, ok, problem):
        if ok:
            self.passed += 1
        else:
            self.problems.append(problem)
        return ok


def main(argv):
    md_path = None
    if "--md" in argv:
        i = argv.index("--md")
        md_path = argv[i + 1]
        argv = argv[:i] + argv[i + 2:]
    if len(argv) != 3:
        print(__doc__)
        return 2
    runs = {name: load(path) for name, path in zip(("cpu", "cuda", "nccl"), argv)}
    check = Checks()
    expect = {"cpu": ("cpu", "single"), "cuda": ("cuda:0", "single"), "nccl": ("cuda:0", "nccl")}
    for name, (steps, done) in runs.items():
        check(steps, f"{name}: no step events")
        if not check(done is not None, f"{name}: no done event (the run failed or was cut short)"):
            continue
        got = (done.get("device"), done.get("collectives"))
        check(got == expect[name], f"{name}: ran on {got[0]} with collectives {got[1]}, "
                                   f"expected {expect[name][0]} with {expect[name][1]}")
    counts = {k: len(s) for k, (s, _) in runs.items()}
    check(len(set(counts.values())) == 1,
          "runs have different step counts: " + ", ".join(f"{k} {n}" for k, n in counts.items()))

    lines = [
        "| step | cpu loss | cuda loss | nccl loss | \\|cuda - cpu\\| | nccl = cuda (loss, grad norm) |",
        "| ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    worst = 0.0
    # Step by step as far as each pair of runs goes, so a failed nccl run still leaves
    # the cpu-cuda comparison (the missing steps are one failed check above).
    for i in range(max(counts.values())):
        c, g, m = (runs[k][0][i] if i < counts[k] else None for k in ("cpu", "cuda", "nccl"))
        step = next(e["step"] for e in (c, g, m) if e is not None)
        equal = None
        if g is not None and m is not None:
            equal = same_bits(g["loss"], m["loss"]) and same_bits(g["grad_norm"], m["grad_norm"])
            check(equal, f"step {step}: nccl differs from cuda (loss {m['loss']!r} vs "
                         f"{g['loss']!r}, grad norm {m['grad_norm']!r} vs {g['grad_norm']!r})")
        diff = float("nan")
        if c is not None and g is not None:
            if c["loss"] is not None and g["loss"] is not None:
                diff = abs(g["loss"] - c["loss"])
                worst = max(worst, diff)
            check(diff <= TOLERANCE, f"step {step}: cuda loss {g['loss']!r} vs cpu "
                                     f"{c['loss']!r}: {diff:.3g} apart (tolerance {TOLERANCE:g})")
        loss = [fmt(e["loss"]) if e is not None else "" for e in (c, g, m)]
        same = "" if equal is None else ("yes" if equal else "NO")
        lines.append(f"| {step} | {' | '.join(loss)} | {diff:.2e} | {same} |")

    dones = {k: d for k, (_, d) in runs.items()}
    c, g, m = (dones[k].get("eval_loss") if dones[k] else None for k in ("cpu", "cuda", "nccl"))
    if any(dones.values()):
        equal = None
        if dones["cuda"] and dones["nccl"]:
            equal = check(same_bits(g, m), f"held-out loss: nccl {m!r} differs from cuda {g!r}")
        diff = float("nan")
        if dones["cpu"] and dones["cuda"]:
            if c is not None and g is not None:
                diff = abs(g - c)
                worst = max(worst, diff)
            check(diff <= TOLERANCE, f"held-out loss: cuda {g!r} vs cpu {c!r}: {diff:.3g} "
                                     f"apart (tolerance {TOLERANCE:g})")
        loss = [fmt(x) if dones[k] else "" for k, x in zip(("cpu", "cuda", "nccl"), (c, g, m))]
        same = "" if equal is None else ("yes" if equal else "NO")
        lines.append(f"| held out | {' | '.join(loss)} | {diff:.2e} | {same} |")
    if dones["cuda"] and dones["nccl"]:
        cuda_model, nccl_model = checkpoint_model(dones["cuda"]), checkpoint_model(dones["nccl"])
        if check(cuda_model is not None and nccl_model is not None,
                 "final parameters: a checkpoint's model.safetensors is missing"):
            if check(cuda_model == nccl_model, "final parameters: the nccl run's "
                                               "model.safetensors differs from the cuda run's"):
                lines.append("")
                lines.append(f"final parameters: the nccl and cuda checkpoints are equal byte "
                             f"for byte ({len(cuda_model)} bytes of model.safetensors)")

    lines.append("")
    lines.append(f"largest |cuda - cpu| loss difference: {worst:.2e} (tolerance {TOLERANCE:g}, "
                 f"TF32 off); nccl against cuda: bitwise equality required")
    failed = len(check.problems)
    verdict = "PASS" if not failed else "FAIL"
    lines.append(f"train equality: {verdict} ({check.passed} checks passed, {failed} failed)")
    lines.extend(f"- {p}" for p in check.problems)
    text = "\n".join(lines)
    print(text)
    if md_path:
        with open(md_path, "w") as f:
            f.write(text + "\n")
    return 0 if not failed else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
