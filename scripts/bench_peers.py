#!/usr/bin/env python3
"""Peer measurements for `cargo xtask bench --peers`: the benchmark matrix's workloads
in PyTorch (and transformers' `generate`), numpy's OpenBLAS matmul, tiktoken and the
safetensors package, timed the same way as our runner (warm-up runs until `warmup` are done and
`warmup_s` has passed, then repetitions until `min_reps` are done and `max_reps` or
`budget_s` is reached).

    python3 scripts/bench_peers.py < rows.json        # or: bench_peers.py ROWS_JSON
    python3 scripts/bench_peers.py --serve            # one row per stdin line (xtask)
    rows: [{"workload": "matmul", "size": "1024", "warmup": 1, "warmup_s": 0.5, "min_reps": 3,
            "max_reps": 10, "budget_s": 2.0, "isolate": false}, ...]

Prints one JSON object: {"versions": {...}, "threads": N, "results": [{"workload",
"size", "peer", "times_s", "work", "work_unit", "peak_rss_bytes"} or {..., "skipped"}]}.

Rows with "device": "cuda" run on the first GPU (matmul in f32, TF32 or bf16, the GPT-2
training step in f32 or bf16 autocast, decode at batch 1); without one they are reported
as skipped. GPU repetitions end with torch.cuda.synchronize(); matmul rows run "inner"
products per repetition, like our runner.

Nothing is downloaded: models are randomly initialised and tiktoken's GPT-2 encoding is
built from the shared vocab.json. Rows with "isolate" run in a child process so that
their peak RSS (VmHWM) is theirs alone. numpy always runs in a child process with
OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE removed from its environment: this machine sets
them for old OpenBLAS builds, and numpy's bundled recent OpenBLAS is fastest without.
"""
import contextlib
import json
import math
import os
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
CORES = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
GPT2_PARAMS = 124_439_808
GPT2_PATTERN = r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""


def shared_dir():
    return os.environ.get("RG_SHARED_DIR", os.path.join(HERE, "..", "..", "shared"))


def peak_rss_bytes():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    return None


def repeat_timed(row, f):
    """Per-repetition seconds, as `f` measures and returns them."""
    warmed, warming = 0, time.perf_counter()
    while warmed < row.get("warmup", 1) or time.perf_counter() - warming < row.get("warmup_s", 0.0):
        f()
        warmed += 1
    times, start = [], time.perf_counter()
    min_reps, max_reps = max(1, row.get("min_reps", 3)), row.get("max_reps", 10)
    while len(times) < min_reps or (len(times) < max_reps and time.perf_counter() - start < row.get("budget_s", 5.0)):
        times.append(f())
    return times


def repeat(row, f):
    """Per-repetition wall seconds of `f()`."""

    def timed():
        t = time.perf_counter()
        f()
        return time.perf_counter() - t

    return repeat_timed(row, timed)


def dims(size):
    return [int(d) for d in size.split("x")]


def pattern(shape, seed):
    """Our runner's deterministic pattern in [-1, 1)."""
    import torch

    n = math.prod(shape)
    i = torch.arange(n, dtype=torch.int64)
    return (((i + seed) * 7919 % 1000).to(torch.float32) / 500.0 - 1.0).reshape(shape)


# ---- PyTorch kernels --------------------------------------------------------------


def torch_dtype(row):
    import torch

    return torch.bfloat16 if row.get("dtype") == "bf16" else torch.float32


def torch_matmul(row):
    """`a @ b` in the row's dtype (bf16: oneDNN, AMX where the CPU has it)."""
    n = int(row["size"])
    a, b = (pattern([n, n], s).to(torch_dtype(row)) for s in (0, 1))
    return repeat(row, lambda: a @ b), 2.0 * n**3, "flop"


def torch_row_op(row, op):
    x = pattern(dims(row["size"]), 0)
    return repeat(row, lambda: op(x)), 8.0 * x.numel(), "byte"


def torch_softmax(row):
    import torch

    return torch_row_op(row, lambda x: torch.softmax(x, -1))


def torch_layer_norm(row):
    import torch
    import torch.nn.functional as F

    cols = dims(row["size"])[-1]
    w, b = torch.ones(cols), torch.zeros(cols)
    return torch_row_op(row, lambda x: F.layer_norm(x, (cols,), w, b, 1e-5))


def torch_gelu(row):
    import torch.nn.functional as F

    return torch_row_op(row, lambda x: F.gelu(x, approximate="tanh"))


def torch_attention(row):
    import torch

    b, h, t, d = dims(row["size"])
    q, k, v = (pattern([b, h, t, d], s).requires_grad_() for s in range(3))
    mask = torch.ones(t, t, dtype=torch.bool).triu(1)
    scale = 1.0 / math.sqrt(d)

    def step():
        s = (q @ k.transpose(-2, -1)) * scale
        p = torch.softmax(s.masked_fill(mask, float("-inf")), -1)
        (p @ v).sum().backward()
        q.grad = k.grad = v.grad = None

    return repeat(row, step), 12.0 * b * h * t * t * d, "flop"


def torch_sdpa(row):
    """PyTorch's fused causal attention (`scaled_dot_product_attention`) forward and
    backward; work counted over the causal half as our fused row counts it."""
    import torch
    import torch.nn.functional as F

    b, h, t, d = dims(row["size"])
    q, k, v = (pattern([b, h, t, d], s).requires_grad_() for s in range(3))

    def step():
        F.scaled_dot_product_attention(q, k, v, is_causal=True).sum().backward()
        q.grad = k.grad = v.grad = None

    return repeat(row, step), 12.0 * b * h * d * (t * (t + 1) / 2), "flop"


def adamw(params, lr=6e-4):
    import torch

    try:
        return torch.optim.AdamW(params, lr=lr, betas=(0.9, 0.95), eps=1e-8, fused=True)
    except (RuntimeError, TypeError):  # builds without fused CPU AdamW
        return torch.optim.AdamW(params, lr=lr, betas=(0.9, 0.95), eps=1e-8, foreach=True)


def torch_adamw(row):
    import torch

    p = torch.nn.Parameter(pattern([GPT2_PARAMS], 0))
    p.grad = pattern([GPT2_PARAMS], 1) * 1e-3
    opt = adamw([{"params": [p], "weight_decay": 0.1}])
    return repeat(row, opt.step), 7.0 * 4.0 * GPT2_PARAMS, "byte"


# ---- a minimal GPT-2 (nanoGPT's model.py, no dropout) -----------------------------


def gpt_model(n_layer, n_head, n_embd, vocab, block):
    import torch
    import torch.nn as nn
    import torch.nn.functional as F

    class Block(nn.Module):
        def __init__(self):
            super().__init__()
            self.ln_1, self.ln_2 = nn.LayerNorm(n_embd), nn.LayerNorm(n_embd)
            self.c_attn, self.attn_proj = nn.Linear(n_embd, 3 * n_embd), nn.Linear(n_embd, n_embd)
            self.c_fc, self.mlp_proj = nn.Linear(n_embd, 4 * n_embd), nn.Linear(4 * n_embd, n_embd)

        def forward(self, x):
            b, t, c = x.shape
            q, k, v = self.c_attn(self.ln_1(x)).split(n_embd, dim=2)
            q, k, v = (z.view(b, t, n_head, c // n_head).transpose(1, 2) for z in (q, k, v))
            y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
            x = x + self.attn_proj(y.transpose(1, 2).contiguous().view(b, t, c))
            return x + self.mlp_proj(F.gelu(self.c_fc(self.ln_2(x)), approximate="tanh"))

    class GPT(nn.Module):
        def __init__(self):
            super().__init__()
            self.wte, self.wpe = nn.Embedding(vocab, n_embd), nn.Embedding(block, n_embd)
            self.h = nn.ModuleList(Block() for _ in range(n_layer))
            self.ln_f = nn.LayerNorm(n_embd)
            self.lm_head = nn.Linear(n_embd, vocab, bias=False)
            self.lm_head.weight = self.wte.weight  # tied, as GPT-2
            for m in self.modules():
                if isinstance(m, (nn.Linear, nn.Embedding)):
                    nn.init.normal_(m.weight, std=0.02)

        def forward(self, idx, targets):
            pos = torch.arange(idx.shape[1], device=idx.device)
            x = self.wte(idx) + self.wpe(pos)
            for block in self.h:
                x = block(x)
            logits = self.lm_head(self.ln_f(x))
            return F.cross_entropy(logits.view(-1, logits.size(-1)), targets.view(-1))

    return GPT()


def torch_train_step(row, config):
    import torch

    b, t = (int(p[1:]) for p in row["size"].split("x"))
    torch.manual_seed(1337)
    model = gpt_model(*config)
    decay = [p for p in model.parameters() if p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.dim() < 2]
    opt = adamw([{"params": decay, "weight_decay": 0.1}, {"params": no_decay, "weight_decay": 0.0}])
    vocab = config[3]

    # bf16 rows: mixed precision as `rgrad train --dtype bf16` runs it (bf16 matmuls,
    # f32 master weights and optimizer state).
    bf16 = row.get("dtype") == "bf16"

    def step():
        x = torch.randint(vocab, (b, t))
        y = torch.randint(vocab, (b, t))
        ctx = torch.autocast("cpu", dtype=torch.bfloat16) if bf16 else contextlib.nullcontext()
        with ctx:
            loss = model(x, y)
        loss.item()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)

    return repeat(row, step), float(b * t), "token"


# ---- transformers generation ------------------------------------------------------


def hf_gpt2():
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(0)
    return GPT2LMHeadModel(GPT2Config()).eval()


def hf_generate(model, prompt, new_tokens):
    """Seconds for a greedy `generate` of exactly `new_tokens` tokens."""
    import torch

    with torch.no_grad():
        t = time.perf_counter()
        model.generate(
            prompt,
            attention_mask=torch.ones_like(prompt),
            max_new_tokens=new_tokens,
            min_new_tokens=new_tokens,  # a random model may pick end-of-text
            do_sample=False,
            pad_token_id=50256,
        )
        if prompt.is_cuda:
            torch.cuda.synchronize()
        return time.perf_counter() - t


def hf_prefill(row):
    import torch

    n = int(row["size"])
    model, prompt = hf_gpt2(), torch.randint(50257, (1, n))
    return repeat_timed(row, lambda: hf_generate(model, prompt, 1)), float(n), "token"


def hf_decode(row):
    """Seconds per token after the first (like ours): (t(1 + n) - t(1)) / n."""
    import torch

    p, n = (int(x) for x in row["size"].split("+"))
    model, prompt = hf_gpt2(), torch.randint(50257, (1, p))
    # Ours decodes n tokens of which n - 1 need a forward pass.
    steps = max(1, n - 1)
    return repeat_timed(row, lambda: (hf_generate(model, prompt, 1 + steps) - hf_generate(model, prompt, 1)) / steps), 1.0, "token"


# ---- CUDA rows (the same workloads on the first GPU) --------------------------------


def cuda_ready():
    """None when a GPU is usable, else why not."""
    try:
        import torch
    except ImportError as e:
        return f"torch: {e}"
    if not torch.cuda.is_available():
        return "no CUDA device (torch.cuda.is_available() is False)"
    return None


def set_tf32(on):
    """TF32 matrix products on or off (PyTorch's default is off for matmul)."""
    import torch

    torch.backends.cuda.matmul.allow_tf32 = on
    torch.backends.cudnn.allow_tf32 = on


def cuda_matmul(row):
    import torch

    why = cuda_ready()
    if why:
        return why
    n, inner, dtype = int(row["size"]), max(1, row.get("inner", 1)), row.get("dtype", "f32")
    set_tf32(dtype == "tf32")
    torch_dtype = torch.bfloat16 if dtype == "bf16" else torch.float32
    a = pattern([n, n], 0).to("cuda", torch_dtype)
    b = pattern([n, n], 1).to("cuda", torch_dtype)
    torch.cuda.synchronize()

    def rep():
        for _ in range(inner):
            a @ b
        torch.cuda.synchronize()

    try:
        times = repeat(row, rep)
    finally:
        set_tf32(False)
    return [t / inner for t in times], 2.0 * n**3, "flop"


def cuda_train_step(row):
    """GPT-2 124M in PyTorch eager on the GPU: f32 weights; "bf16" rows under
    torch.autocast (bf16 matmuls, f32 master weights), as mixed-precision training runs."""

    import torch

    why = cuda_ready()
    if why:
        return why
    set_tf32(False)
    b, t = (int(p[1:]) for p in row["size"].split("x"))
    torch.manual_seed(1337)
    vocab = 50257
    model = gpt_model(12, 12, 768, vocab, 1024).cuda()
    decay = [p for p in model.parameters() if p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.dim() < 2]
    opt = torch.optim.AdamW(
        [{"params": decay, "weight_decay": 0.1}, {"params": no_decay, "weight_decay": 0.0}],
        lr=6e-4, betas=(0.9, 0.95), eps=1e-8, fused=True,
    )
    bf16 = row.get("dtype") == "bf16"

    def step():
        x = torch.randint(vocab, (b, t), device="cuda")
        y = torch.randint(vocab, (b, t), device="cuda")
        ctx = torch.autocast("cuda", dtype=torch.bfloat16) if bf16 else contextlib.nullcontext()
        with ctx:
            loss = model(x, y)
        loss.item()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        torch.cuda.synchronize()

    return repeat(row, step), float(b * t), "token"


def cuda_decode(row):
    """transformers' greedy generate of GPT-2 124M on the GPU, batch 1, seconds per
    token after the first (like ours)."""
    import torch

    why = cuda_ready()
    if why:
        return why
    set_tf32(False)
    p, n = (int(x) for x in row["size"].split("+"))
    model = hf_gpt2().cuda()
    prompt = torch.randint(50257, (1, p)).cuda()
    steps = max(1, n - 1)

    def per_token():
        torch.cuda.synchronize()
        return (hf_generate(model, prompt, 1 + steps) - hf_generate(model, prompt, 1)) / steps

    return repeat_timed(row, per_token), 1.0, "token"


# ---- other peers ------------------------------------------------------------------


def numpy_matmul(row):
    import numpy as np

    if row.get("dtype", "f32") != "f32":
        return f"numpy has no {row['dtype']} matmul"
    n = int(row["size"])
    rng = np.random.default_rng(0)
    a = rng.standard_normal((n, n), dtype=np.float32)
    b = rng.standard_normal((n, n), dtype=np.float32)
    return repeat(row, lambda: a @ b), 2.0 * n**3, "flop"


def bytes_to_unicode():
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs, n = bs[:], 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, map(chr, cs)))


def tiktoken_encode(row):
    import tiktoken

    data = os.path.join(shared_dir(), "data")
    vocab_path, text_path = os.path.join(data, "gpt2-tokenizer", "vocab.json"), os.path.join(data, "tinyshakespeare.txt")
    if not (os.path.isfile(vocab_path) and os.path.isfile(text_path)):
        return f"{vocab_path} or {text_path} is absent (set RG_SHARED_DIR)"
    decode = {c: b for b, c in bytes_to_unicode().items()}
    with open(vocab_path, encoding="utf-8") as f:
        vocab = json.load(f)
    ranks = {bytes(decode[c] for c in tok): i for tok, i in vocab.items() if tok != "<|endoftext|>"}
    enc = tiktoken.Encoding(name="gpt2-local", pat_str=GPT2_PATTERN, mergeable_ranks=ranks, special_tokens={"<|endoftext|>": 50256})
    with open(text_path, encoding="utf-8") as f:
        text = f.read()
    return repeat(row, lambda: enc.encode_ordinary(text)), float(len(text.encode())), "byte"


def gpt2_shapes():
    """GPT-2 124M's tensors as its safetensors files name and shape them (LM head tied)."""
    c = 768
    shapes = {"wte.weight": (50257, c), "wpe.weight": (1024, c), "ln_f.weight": (c,), "ln_f.bias": (c,)}
    for i in range(12):
        for name, shape in [
            ("ln_1.weight", (c,)), ("ln_1.bias", (c,)), ("attn.c_attn.weight", (c, 3 * c)), ("attn.c_attn.bias", (3 * c,)),
            ("attn.c_proj.weight", (c, c)), ("attn.c_proj.bias", (c,)), ("ln_2.weight", (c,)), ("ln_2.bias", (c,)),
            ("mlp.c_fc.weight", (c, 4 * c)), ("mlp.c_fc.bias", (4 * c,)), ("mlp.c_proj.weight", (4 * c, c)), ("mlp.c_proj.bias", (c,)),
        ]:
            shapes[f"h.{i}.{name}"] = shape
    return shapes


def safetensors_open(row):
    import tempfile

    import torch
    from safetensors.torch import load_file, save_file

    tensors = {k: torch.zeros(shape) for k, shape in gpt2_shapes().items()}
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "model.safetensors")
        save_file(tensors, path)
        del tensors
        return repeat(row, lambda: load_file(path, device="cpu")), float(os.path.getsize(path)), "byte"


# workload -> [(peer, function)]
PEERS = {
    "matmul": [("torch", torch_matmul), ("numpy-openblas", numpy_matmul)],
    "softmax": [("torch", torch_softmax)],
    "layer_norm": [("torch", torch_layer_norm)],
    "gelu": [("torch", torch_gelu)],
    "attention_fwd_bwd": [("torch", torch_attention)],
    "attention_fused_fwd_bwd": [("torch sdpa", torch_sdpa)],
    "adamw_step": [("torch", torch_adamw)],
    "gpt2_train_step": [("torch", lambda r: torch_train_step(r, (12, 12, 768, 50257, 1024)))],
    "nanogpt_char_train_step": [("torch", lambda r: torch_train_step(r, (4, 4, 128, 65, 64)))],
    "gpt2_prefill": [("transformers", hf_prefill)],
    "gpt2_decode": [("transformers", hf_decode)],
    "tokenizer_encode": [("tiktoken", tiktoken_encode)],
    "safetensors_open": [("safetensors", safetensors_open)],
}

# The same for rows with "device": "cuda".
CUDA_PEERS = {
    "matmul": [("torch", cuda_matmul)],
    "gpt2_train_step": [("torch", cuda_train_step)],
    "gpt2_decode": [("transformers", cuda_decode)],
}


def peers_for(row):
    return (CUDA_PEERS if row.get("device") == "cuda" else PEERS).get(row["workload"])


def run_one(row, peer, func):
    out = {"workload": row["workload"], "size": row["size"], "dtype": row.get("dtype", "f32"), "peer": peer}
    try:
        got = func(row)
    except ImportError as e:
        out["skipped"] = f"{peer}: {e}"
        return out
    except Exception as e:  # one failing peer row must not lose the others
        out["skipped"] = f"{peer} failed: {type(e).__name__}: {e}"
        return out
    if isinstance(got, str):
        out["skipped"] = got
        return out
    times, work, unit = got
    out.update(times_s=times, work=work, work_unit=unit, peak_rss_bytes=peak_rss_bytes() if row.get("isolate") else None)
    return out


def run_child(rows, peer, env=None):
    """Runs `rows` for `peer` in a fresh interpreter and returns its results."""
    proc = subprocess.run(
        [sys.executable, os.path.abspath(__file__), "--child", peer],
        input=json.dumps(rows),
        capture_output=True,
        text=True,
        env=env,
    )
    if proc.returncode != 0:
        why = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        return [{"workload": r["workload"], "size": r["size"], "peer": peer, "skipped": f"{peer} child failed: {why}"} for r in rows]
    return json.loads(proc.stdout)


def setup_torch():
    import torch

    torch.set_num_threads(CORES)


def versions():
    out = {"python": sys.version.split()[0]}
    for name in ("torch", "numpy", "transformers", "tiktoken", "safetensors"):
        try:
            out[name] = __import__(name).__version__
        except Exception:
            out[name] = None
    try:
        import torch

        out["torch_threads"] = torch.get_num_threads()
        out["torch_mkl"] = torch.backends.mkl.is_available()
        out["torch_cuda"] = torch.version.cuda
        if torch.cuda.is_available():
            out["gpu"] = torch.cuda.get_device_name(0)
    except Exception:
        pass
    return out


def numpy_env():
    return {k: v for k, v in os.environ.items() if k not in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")}


def run_row(row, numpy_results=None):
    """Every peer's result for one row. numpy runs in a child (its own environment),
    isolated rows in a child each (their own peak RSS), the rest in this process."""
    peers = peers_for(row)
    if peers is None:
        return [{"workload": row["workload"], "size": row["size"], "peer": None, "skipped": "no peer for this workload"}]
    out = []
    for peer, func in peers:
        if peer == "numpy-openblas":
            if numpy_results is None:
                out.extend(run_child([row], peer, numpy_env()))
            else:
                out.extend(r for r in numpy_results if r["size"] == row["size"] and r.get("dtype", "f32") == row.get("dtype", "f32"))
        elif row.get("isolate"):
            out.extend(run_child([row], peer))
        else:
            out.append(run_one(row, peer, func))
    return out


def serve():
    """One row per input line, one line of results per row: lets `cargo xtask bench`
    run each peer row right after ours, so both see the same machine load, while
    paying for the imports once."""
    setup_torch()
    print(json.dumps({"versions": versions(), "threads": CORES}), flush=True)
    for line in sys.stdin:
        if line.strip():
            print(json.dumps({"results": run_row(json.loads(line))}), flush=True)


def main():
    args = sys.argv[1:]
    if args[:1] == ["--child"]:
        peer, rows = args[1], json.load(sys.stdin)
        if peer != "numpy-openblas":
            setup_torch()
        print(json.dumps([run_one(r, peer, dict(peers_for(r))[peer]) for r in rows]))
        return
    if args[:1] == ["--serve"]:
        serve()
        return
    rows = json.loads(args[0]) if args else json.load(sys.stdin)
    setup_torch()
    matmuls = [r for r in rows if r["workload"] == "matmul"]
    numpy_results = run_child(matmuls, "numpy-openblas", numpy_env()) if matmuls else []
    results = []
    for row in rows:
        results.extend(run_row(row, numpy_results))
        print(f"peers: {row['workload']} {row['size']} done", file=sys.stderr, flush=True)
    print(json.dumps({"versions": versions(), "threads": CORES, "results": results}))


if __name__ == "__main__":
    main()
