#!/usr/bin/env bash
# The GPU check: runs on a GPU machine that has no package registry and no Rust, from
# the repository root, with gpu-bundle/ (made here by `cargo xtask gpu-bundle`) beside
# the checkout:
#
#   run(command="bash scripts/gpu-check.sh", carry=["gpu-bundle"])
#
# 1. the card, driver and CUDA versions (nvidia-smi, PyTorch);
# 2. libnccl for NCCL: cudarc opens only `libnccl.so` (or .so.12/.13), PyTorch's pip
#    wheel ships `nvidia/nccl/lib/libnccl.so.2`: found with python3 and linked as
#    libnccl.so in a temporary directory put on LD_LIBRARY_PATH;
# 3. every bundled CUDA test binary with RG_REQUIRE_CUDA=1 (a test that finds no GPU
#    fails instead of skipping), each under a timeout; `rg-dist.test.nccl_cuda` runs
#    every NCCL collective in a world of one on GPU 0;
# 4. training equality: `rgrad train` (built with cuda,nccl, no MPI) on the built-in
#    addition task for 10 steps on the CPU, on CUDA without collectives and on CUDA
#    with NCCL (a world of one); NCCL's losses, gradient norms and final parameters
#    must be bitwise the plain CUDA run's, and the GPU losses within 1e-3 of the CPU's
#    (scripts/train_equality.py says why); recorded in tests.tsv like a test binary;
# 5. the CUDA rows of the benchmark matrix (matmul f32/TF32/bf16 at 4096^3 and 8192^3,
#    GPT-2 124M training B16xT1024, decode at batch 1) and PyTorch on the same rows, on
#    the same card, in the same run (`xtask bench --device cuda --peers`);
# 6. a summary table: PASS/FAIL per test binary and the training check, each bench row
#    ours vs PyTorch.
#
# Writes into $OUT (else out/gpu-check): gpu-check.log, tests.tsv, train/ (the three
# runs' JSON logs) and train-equality.md, results.json (the
# bench rows, saved after each row), bench.md (the PERFORMANCE.md section; copy it in
# with `cargo xtask bench --device cuda --section-from bench.md`), summary.md.
# Bounded to RG_GPU_CHECK_BUDGET_S (default 450 s, under 8 minutes) by per-step
# timeouts; it never waits for input. A failing test does not stop the benchmarks; the
# exit status is non-zero if anything failed, 2 when there is no GPU at all.
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
# gpu-bundle/ holds manifest.json, tests.tsv and bundle.tar.gz (the binaries and
# fixtures), unpacked into UNPACKED.
BUNDLE=${RG_GPU_BUNDLE:-$ROOT/gpu-bundle}
UNPACKED=${TMPDIR:-/tmp}/rg-gpu-bundle
OUT=${OUT:-$ROOT/out/gpu-check}
BUDGET=${RG_GPU_CHECK_BUDGET_S:-450}
# Tests get at most this much of the budget, one binary at most TEST_TIMEOUT.
TEST_BUDGET=${RG_GPU_CHECK_TEST_BUDGET_S:-170}
TEST_TIMEOUT=${RG_GPU_CHECK_TEST_TIMEOUT_S:-90}
# The three training runs get at most this much of the budget together.
TRAIN_BUDGET=${RG_GPU_CHECK_TRAIN_BUDGET_S:-120}
TRAIN_STEPS=10
# Left for the summary after the benchmarks.
RESERVE=20
mkdir -p "$OUT"
LOG=$OUT/gpu-check.log
START=$SECONDS
elapsed() { echo $((SECONDS - START)); }
left() { echo $((BUDGET - (SECONDS - START))); }
step() { printf '\n== %s (%ss)\n' "$1" "$(elapsed)"; }
FAILED=0

main() {
step "bundle"
if [ ! -f "$BUNDLE/tests.tsv" ] || [ ! -f "$BUNDLE/bundle.tar.gz" ]; then
  echo "no bundle at $BUNDLE: run 'cargo xtask gpu-bundle' on the build machine and carry gpu-bundle"
  return 1
fi
rm -rf "$UNPACKED" && mkdir -p "$UNPACKED" && tar -xzf "$BUNDLE/bundle.tar.gz" -C "$UNPACKED" || {
  echo "cannot unpack $BUNDLE/bundle.tar.gz into $UNPACKED"
  return 1
}
if command -v python3 >/dev/null; then
  python3 - "$BUNDLE/manifest.json" <<'EOF' || true
import json, sys
m = json.load(open(sys.argv[1]))
print(f"bundle of commit {m['commit']}, built {m['date']}: {len(m['tests'])} test binaries, "
      f"{m['bytes'] / 2**20:.1f} MiB; shared fixtures: {', '.join(m['shared']) or 'none'}")
EOF
  # The device copy may have no .git: the bench report names the bundle's commit.
  RG_BENCH_COMMIT=$(python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['commit'])" "$BUNDLE/manifest.json" 2>/dev/null)
  export RG_BENCH_COMMIT
fi
# The checkout's shared/ if it has the fixtures, else the bundled copy.
if [ -d "$ROOT/shared/fixtures" ]; then
  export RG_SHARED_DIR="$ROOT/shared"
elif [ -d "$ROOT/../shared/fixtures" ]; then
  export RG_SHARED_DIR="$(cd "$ROOT/../shared" && pwd)"
else
  export RG_SHARED_DIR="$UNPACKED/shared"
fi
echo "RG_SHARED_DIR=$RG_SHARED_DIR"

step "GPU"
GPU=""
if command -v nvidia-smi >/dev/null; then
  timeout 30 nvidia-smi || true
  GPU=$(timeout 30 nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>/dev/null | head -1)
fi
if [ -z "$GPU" ]; then
  echo "NO GPU: nvidia-smi is $(command -v nvidia-smi >/dev/null && echo 'there but lists no GPU' || echo 'not installed')."
  echo "Skipped: RG_REQUIRE_CUDA=1 (tests run without it and must report 'skipped: no CUDA device'), all benchmark rows."
else
  echo "GPU: $GPU"
fi
if command -v python3 >/dev/null; then
  timeout 60 python3 -c "
import torch
print('PyTorch', torch.__version__, 'built for CUDA', torch.version.cuda, '| cuda available:', torch.cuda.is_available())
if torch.cuda.is_available():
    p = torch.cuda.get_device_properties(0)
    print('torch sees', p.name, f'{p.total_memory / 2**30:.0f} GiB,', p.multi_processor_count, 'SMs, capability', f'{p.major}.{p.minor}')
" 2>&1 || echo "PyTorch: not usable (the PyTorch peers will be skipped)"
fi
command -v nvcc >/dev/null && nvcc --version | tail -2
# What rg-cuda will find to load (it opens the driver and cuBLAS at run time).
echo "libraries:"; ldconfig -p 2>/dev/null | grep -E 'libcuda\.so|libcublas(Lt)?\.so' | sed 's/^/  /' | head -8

step "NCCL library"
# cudarc asks the loader for libnccl.so (then .so.12, .so.13); a system NCCL with that
# name is used as it is, else the wheel's libnccl.so.2 gets the name through a link.
NCCL_LIB=$(ldconfig -p 2>/dev/null | grep -E '^[[:space:]]*libnccl\.so ' | head -1 | sed 's/.*=> //')
if [ -n "$NCCL_LIB" ]; then
  echo "system NCCL: $NCCL_LIB"
elif command -v python3 >/dev/null; then
  NCCL_SO2=$(timeout 60 python3 - 2>/dev/null <<'EOF'
import glob, os, site
dirs = []
try:
    import nvidia.nccl
    dirs += list(nvidia.nccl.__path__)
except Exception:
    pass
for sp in site.getsitepackages() + [site.getusersitepackages()]:
    dirs.append(os.path.join(sp, "nvidia", "nccl"))
for d in dirs:
    found = sorted(glob.glob(os.path.join(d, "lib", "libnccl.so.2*")))
    if found:
        print(os.path.realpath(found[0]))
        break
EOF
)
  if [ -n "$NCCL_SO2" ] && [ -f "$NCCL_SO2" ]; then
    NCCL_LINKS="$UNPACKED/nccl-lib"
    mkdir -p "$NCCL_LINKS" && ln -sf "$NCCL_SO2" "$NCCL_LINKS/libnccl.so"
    export LD_LIBRARY_PATH="$NCCL_LINKS:$(dirname "$NCCL_SO2")${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
    NCCL_LIB="$NCCL_LINKS/libnccl.so -> $NCCL_SO2"
    echo "NCCL from the Python packages: $NCCL_LIB (its directory is on LD_LIBRARY_PATH)"
  fi
fi
[ -n "$NCCL_LIB" ] || echo "no libnccl found (neither the system's nor an nvidia-nccl wheel's): the NCCL test and training run will fail with rg-dist's error"

step "CUDA tests"
RESULTS=$OUT/tests.tsv
printf 'binary\tresult\tpassed\tfailed\tignored\tseconds\n' >"$RESULTS"
# Without a GPU the tests must say they skipped; libtest shows what passing tests
# print only with --nocapture.
TEST_ARGS=()
if [ -n "$GPU" ]; then export RG_REQUIRE_CUDA=1; else unset RG_REQUIRE_CUDA; TEST_ARGS=(--nocapture); fi
TEST_END=$((SECONDS + TEST_BUDGET))
while IFS=$'\t' read -r name pkgdir bin; do
  case "$name" in '#'*|'') continue ;; esac
  remaining=$((TEST_END - SECONDS))
  if [ "$remaining" -lt 5 ]; then
    printf '%s\tNOT RUN\t\t\t\t0\n' "$name" >>"$RESULTS"
    echo "-- $name: not run (test budget of ${TEST_BUDGET}s spent)"
    FAILED=1
    continue
  fi
  t=$((remaining < TEST_TIMEOUT ? remaining : TEST_TIMEOUT))
  echo "-- $name (timeout ${t}s)"
  dir="$ROOT/$pkgdir"
  [ -d "$dir" ] || dir="$ROOT"
  tlog=$(mktemp)
  t0=$SECONDS
  (cd "$dir" && CARGO_MANIFEST_DIR="$dir" timeout -k 5 "$t" "$UNPACKED/$bin" "${TEST_ARGS[@]}" </dev/null) >"$tlog" 2>&1
  rc=$?
  secs=$((SECONDS - t0))
  # libtest's closing line: "test result: ok. 12 passed; 0 failed; 1 ignored; ..."
  summary=$(grep -E '^test result:' "$tlog" | tail -1)
  passed=$(sed -nE 's/.* ([0-9]+) passed.*/\1/p' <<<"$summary")
  failed=$(sed -nE 's/.* ([0-9]+) failed.*/\1/p' <<<"$summary")
  ignored=$(sed -nE 's/.* ([0-9]+) ignored.*/\1/p' <<<"$summary")
  skipped_lines=$(grep -c 'skipped: no CUDA device' "$tlog")
  if [ "$rc" -eq 0 ]; then
    result=PASS
    [ -z "$GPU" ] && [ "$skipped_lines" -gt 0 ] && result="PASS (skipped: no CUDA device)"
  elif [ "$rc" -eq 124 ] || [ "$rc" -eq 137 ]; then
    result="TIMEOUT"
    FAILED=1
  else
    result="FAIL (exit $rc)"
    FAILED=1
  fi
  if [ "$rc" -ne 0 ]; then
    # The failures and the end of the output; the whole of it stays in the log.
    grep -E '^(---- |thread .* panicked|failures:|    [a-z_:0-9]+$)' "$tlog" | head -40
    tail -25 "$tlog"
  else
    grep -E '^test result:' "$tlog"
  fi
  cat "$tlog" >>"$OUT/tests-output.log"
  rm -f "$tlog"
  printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$name" "$result" "${passed:-}" "${failed:-}" "${ignored:-}" "$secs" >>"$RESULTS"
done <"$BUNDLE/tests.tsv"

step "training equality: rgrad train on cpu, cuda, cuda with NCCL (a world of one)"
TRAIN_OUT="$OUT/train"
TRAIN_NAME="rgrad train: cpu vs cuda vs cuda+nccl"
# name, seconds, flags...: one run, its JSON log in $TRAIN_OUT/<name>.jsonl.
train_run() {
  local name=$1 t=$2
  shift 2
  rm -rf "$UNPACKED/train-$name"
  echo "-- $name: rgrad train $* (timeout ${t}s)"
  # TF32 stays off (rg-cuda's default): the CPU comparison assumes f32 products.
  env -u RG_CUDA_TF32 timeout -k 5 "$t" "$UNPACKED/bin/rgrad" train --steps "$TRAIN_STEPS" \
    --warmup 2 --eval-every 0 --log-format json --out "$UNPACKED/train-$name" "$@" \
    </dev/null >"$TRAIN_OUT/$name.jsonl" 2>"$TRAIN_OUT/$name.stderr"
  local rc=$?
  [ "$rc" -eq 0 ] || { echo "   exit $rc:"; tail -5 "$TRAIN_OUT/$name.stderr"; }
  return "$rc"
}
t0=$SECONDS
if [ -z "$GPU" ]; then
  echo "skipped: no GPU"
  printf '%s\tSKIPPED (no GPU)\t\t\t\t0\n' "$TRAIN_NAME" >>"$RESULTS"
elif ! command -v python3 >/dev/null; then
  echo "FAIL: python3 is needed to compare the runs"
  printf '%s\tFAIL (no python3)\t\t\t\t0\n' "$TRAIN_NAME" >>"$RESULTS"
  FAILED=1
else
  mkdir -p "$TRAIN_OUT"
  TRAIN_END=$((SECONDS + TRAIN_BUDGET))
  # The cuda run asks for no collectives; the nccl run leaves the choice to auto,
  # which must take NCCL for --device cuda in this build (the comparison checks it).
  for run in "cpu --device cpu" "cuda --device cuda --collectives single" \
    "nccl --device cuda --collectives auto"; do
    read -r -a run_args <<<"$run"
    t=$((TRAIN_END - SECONDS))
    if [ "$t" -lt 5 ]; then
      echo "-- ${run_args[0]}: not run (training budget of ${TRAIN_BUDGET}s spent)"
      continue
    fi
    train_run "${run_args[0]}" "$t" "${run_args[@]:1}"
  done
  python3 "$ROOT/scripts/train_equality.py" "$TRAIN_OUT/cpu.jsonl" "$TRAIN_OUT/cuda.jsonl" \
    "$TRAIN_OUT/nccl.jsonl" --md "$OUT/train-equality.md"
  rc=$?
  # "train equality: PASS (N checks passed, M failed)" gives the columns.
  verdict=$(sed -nE 's/^train equality: (PASS|FAIL) \(([0-9]+) checks passed, ([0-9]+) failed\)$/\1\t\2\t\3/p' \
    "$OUT/train-equality.md" 2>/dev/null)
  [ -n "$verdict" ] || verdict="FAIL (comparison exit $rc)"$'\t\t'
  [ "$rc" -eq 0 ] || FAILED=1
  printf '%s\t%s\t\t%s\n' "$TRAIN_NAME" "$verdict" "$((SECONDS - t0))" >>"$RESULTS"
fi

step "CUDA benchmark rows, ours and PyTorch's"
bench_left=$(($(left) - RESERVE))
if [ -z "$GPU" ]; then
  echo "skipped: no GPU (rg-bench would report every CUDA row as 'no CUDA device')"
elif [ "$bench_left" -lt 30 ]; then
  echo "skipped: only ${bench_left}s left of the ${BUDGET}s budget"
  FAILED=1
else
  # Rows that would start after the deadline are skipped (and reported); the timeout
  # is the backstop for a row that hangs past its own.
  deadline=$((bench_left - 60 > 30 ? bench_left - 60 : 30))
  CARGO_MANIFEST_DIR="$ROOT/xtask" timeout -k 10 "$bench_left" \
    "$UNPACKED/bin/xtask" bench --device cuda --runner "$UNPACKED/bin/rg-bench" \
    --peers --python python3 --out "$OUT" --row-timeout 100 --deadline-s "$deadline" </dev/null
  rc=$?
  if [ "$rc" -ne 0 ]; then
    echo "xtask bench exited with $rc$([ "$rc" -eq 124 ] && echo ' (timed out; results.json holds the rows done)')"
    FAILED=1
  fi
fi

step "summary"
{
  echo "# GPU check: ${GPU:-no GPU}"
  echo
  echo "bundle: $BUNDLE; $(elapsed) s in all"
  echo
  echo "| test binary | result | passed | failed | ignored | seconds |"
  echo "| --- | --- | ---: | ---: | ---: | ---: |"
  tail -n +2 "$RESULTS" | awk -F'\t' '{printf "| %s | %s | %s | %s | %s | %s |\n", $1, $2, $3, $4, $5, $6}'
  echo
  if [ -f "$OUT/train-equality.md" ]; then
    echo "Training equality ($TRAIN_STEPS steps of the built-in task; libnccl: ${NCCL_LIB:-none found}):"
    echo
    cat "$OUT/train-equality.md"
    echo
  fi
  if [ -f "$OUT/results.json" ] && command -v python3 >/dev/null; then
    python3 - "$OUT/results.json" <<'EOF'
import json, sys
r = json.load(open(sys.argv[1]))
# What the issue asks of each row: ours / PyTorch at least this much.
targets = {"matmul": 0.9, "gpt2_train_step": 1.0}


def short(why):
    why = str(why)
    return why if len(why) <= 90 else why[:87] + "..."


print("| bench row | ours | PyTorch | ours/PyTorch | target |")
print("| --- | ---: | ---: | ---: | --- |")
for row in r["rows"]:
    label = f"{row['name']} {row['size']} {row['dtype']}"
    unit = row["rate_unit"]
    ours = f"{row['rate']:.4g} {unit}" if row.get("rate") else f"skipped: {short(row.get('skipped'))}"
    peer = next((p for p in row["peers"] if p["peer"] in ("torch", "transformers")), None)
    if peer is None:
        theirs, ratio = "", ""
    elif peer.get("rate"):
        theirs, ratio = f"{peer['rate']:.4g} {unit}", (f"{peer['ratio']:.3f}" if peer.get("ratio") else "")
    else:
        theirs, ratio = f"skipped: {short(peer.get('skipped'))}", ""
    goal = targets.get(row["name"])
    verdict = ""
    if goal is not None and ratio:
        verdict = ("met" if float(ratio) >= goal else "NOT met") + f" (>= {goal})"
    print(f"| {label} | {ours} | {theirs} | {ratio} | {verdict} |")
if not r.get("complete"):
    print("\n(results.json is partial: the benchmark run was cut short)")
EOF
  else
    echo "(no benchmark results)"
  fi
} >"$OUT/summary.md"
cat "$OUT/summary.md"
if [ -z "$GPU" ]; then
  echo
  echo "gpu-check: NO GPU on this machine: tests ran without RG_REQUIRE_CUDA, benchmarks skipped (exit 2)"
  return 2
fi
[ "$FAILED" -eq 0 ] && echo "gpu-check: all passed" || echo "gpu-check: FAILURES above"
return "$FAILED"
}

# Everything into the log as well; the script's status is main's.
main 2>&1 | tee "$LOG"
exit "${PIPESTATUS[0]}"
