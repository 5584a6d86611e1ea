#!/usr/bin/env python3
"""Checks that `rgrad convert` output loads in the Python ecosystem.

For a GPT-2 model directory (default: the shared gpt2-tiny fixture) this script runs
`rgrad convert` into a temporary directory (hf layout f32, hf layout bf16, f16, plain
layout, plain -> hf, and a single-file bf16 conversion), then for each result:

  * `safetensors.safe_open` reads every tensor; names, shapes and dtypes are printed
    and checked against the conversion asked for;
  * `transformers.GPT2LMHeadModel.from_pretrained(dir)` loads the directory with no
    missing, unexpected or misshapen weights;
  * greedy ids from `model.generate(do_sample=False)` (weights upcast to f32, as rgrad
    computes) equal `rgrad generate --temperature 0 --format json` on the same dir, and
    the Hugging Face tokenizer's prompt ids equal rgrad's.

Needs: pip install torch transformers safetensors numpy. Exits non-zero on a failure.

usage: python scripts/check_hf_compat.py --rgrad target/debug/rgrad [--model DIR]
           [--prompt TEXT] [--max-new-tokens N]
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile

import torch
from safetensors import safe_open
from safetensors.torch import save_file
from transformers import AutoTokenizer, GPT2LMHeadModel
from transformers.utils import logging as hf_logging

hf_logging.disable_progress_bar()

HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_MODEL = os.path.join(
    os.environ.get("RG_SHARED_DIR", os.path.join(HERE, "..", "..", "shared")),
    "fixtures",
    "gpt2-tiny",
    "model",
)
TORCH_DTYPES = {"F32": torch.float32, "BF16": torch.bfloat16, "F16": torch.float16}

failures = []


def check(ok, what):
    print(("  ok   " if ok else "  FAIL ") + what)
    if not ok:
        failures.append(what)


def rgrad(binary, *args):
    out = subprocess.run([binary, *args], capture_output=True, text=True)
    if out.returncode != 0:
        sys.exit(f"rgrad {' '.join(args)} failed: {out.stderr.strip()}")
    return out.stdout


def check_safetensors(path, dtype, prefixed):
    with safe_open(path, framework="pt") as f:
        names = list(f.keys())
        tensors = {n: f.get_tensor(n) for n in names}
        metadata = f.metadata()
    dtypes = sorted({str(t.dtype) for t in tensors.values()})
    wte = next(n for n in names if n.endswith("wte.weight"))
    print(
        f"  safetensors: {len(names)} tensors, dtypes {dtypes}, metadata {metadata}, "
        f"{wte} {list(tensors[wte].shape)}"
    )
    check(
        all(t.dtype == TORCH_DTYPES[dtype] for t in tensors.values()),
        f"every tensor is {dtype}",
    )
    if prefixed is not None:
        check(
            all(n.startswith("transformer.") == prefixed for n in names),
            "names " + ("all carry" if prefixed else "carry no") + " 'transformer.' prefix",
        )
    check(not any(n.endswith((".attn.bias", ".attn.masked_bias")) for n in names),
          "no attention-mask buffers")
    return tensors


def check_transformers(binary, model_dir, prompt, max_new_tokens):
    # Load as stored (the config's torch_dtype), then again in f32 for the comparison:
    # rgrad widens bf16/f16 weights to f32 and computes in f32; widening is exact.
    native, info = GPT2LMHeadModel.from_pretrained(model_dir, output_loading_info=True)
    loading = {k: sorted(map(str, v)) for k, v in info.items() if v}
    print(f"  transformers: loaded, parameters {next(native.parameters()).dtype}, "
          f"loading issues {loading or 'none'}")
    check(not info.get("missing_keys") and not info.get("unexpected_keys")
          and not info.get("mismatched_keys"),
          "from_pretrained: no missing, unexpected or mismatched weights")
    model = GPT2LMHeadModel.from_pretrained(model_dir, dtype=torch.float32).eval()

    ours = json.loads(rgrad(binary, "generate", "--model", model_dir, "--prompt", prompt,
                            "--temperature", "0", "--max-new-tokens", str(max_new_tokens),
                            "--format", "json"))
    tok = AutoTokenizer.from_pretrained(model_dir)
    hf_prompt = tok(prompt)["input_ids"]
    check(hf_prompt == ours["prompt_ids"], f"prompt ids equal: {ours['prompt_ids']}")
    ids = torch.tensor([ours["prompt_ids"]])
    with torch.no_grad():
        out = model.generate(ids, attention_mask=torch.ones_like(ids), do_sample=False,
                             max_new_tokens=max_new_tokens,
                             eos_token_id=model.config.eos_token_id,
                             pad_token_id=model.config.eos_token_id)
    hf_ids = out[0, ids.shape[1]:].tolist()
    print(f"  rgrad greedy ids:        {ours['generated_ids']}")
    print(f"  transformers greedy ids: {hf_ids}")
    check(hf_ids == ours["generated_ids"], "greedy ids equal")


def old_style_copy(model_dir, out_dir):
    """`model_dir` as older GPT-2 checkpoints store it: `attn.bias` / `attn.masked_bias`
    buffers and an explicit (tied) `lm_head.weight` next to the weights."""
    os.makedirs(out_dir)
    with safe_open(os.path.join(model_dir, "model.safetensors"), framework="pt") as f:
        tensors = {n: f.get_tensor(n) for n in f.keys()}
    config = json.load(open(os.path.join(model_dir, "config.json")))
    n = config["n_positions"]
    for i in range(config["n_layer"]):
        tensors[f"transformer.h.{i}.attn.bias"] = torch.tril(torch.ones(n, n)).view(1, 1, n, n)
        tensors[f"transformer.h.{i}.attn.masked_bias"] = torch.tensor(-1e4)
    tensors["lm_head.weight"] = tensors["transformer.wte.weight"].clone()
    save_file(tensors, os.path.join(out_dir, "model.safetensors"), metadata={"format": "pt"})
    for name in os.listdir(model_dir):
        if name != "model.safetensors":
            with open(os.path.join(model_dir, name), "rb") as src:
                with open(os.path.join(out_dir, name), "wb") as dst:
                    dst.write(src.read())


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rgrad", required=True, help="path to the rgrad binary")
    ap.add_argument("--model", default=DEFAULT_MODEL, help="GPT-2 model directory")
    ap.add_argument("--prompt", default="The quick brown fox")
    ap.add_argument("--max-new-tokens", type=int, default=20)
    args = ap.parse_args()
    binary = os.path.abspath(args.rgrad)
    print(f"torch {torch.__version__}, transformers "
          f"{__import__('transformers').__version__}, safetensors "
          f"{__import__('safetensors').__version__}; model {args.model}")

    with tempfile.TemporaryDirectory() as tmp:
        d = lambda name: os.path.join(tmp, name)  # noqa: E731
        old_style_copy(args.model, d("old-style"))
        runs = [
            ("old-style->hf", ["--input", d("old-style"), "--output", d("old-hf")], "F32", True),
            ("hf-f32", ["--input", args.model, "--output", d("hf-f32"), "--dtype", "f32"], "F32", True),
            ("hf-bf16", ["--input", args.model, "--output", d("hf-bf16"), "--dtype", "bf16"], "BF16", True),
            ("hf-f16", ["--input", args.model, "--output", d("hf-f16"), "--dtype", "f16"], "F16", True),
            ("plain-f32", ["--input", args.model, "--output", d("plain-f32"), "--layout", "plain"], "F32", False),
            ("plain->hf", ["--input", d("plain-f32"), "--output", d("plain-hf"), "--layout", "hf"], "F32", True),
            ("bf16-f32", ["--input", d("hf-bf16"), "--output", d("bf16-f32"), "--dtype", "f32"], "F32", True),
        ]
        dirs = {}
        for name, conv, dtype, prefixed in runs:
            out_dir = conv[conv.index("--output") + 1]
            print(f"\n[{name}] rgrad convert {' '.join(conv[2:])}")
            print("  " + rgrad(binary, "convert", *conv).strip())
            tensors = check_safetensors(os.path.join(out_dir, "model.safetensors"), dtype, prefixed)
            dirs[name] = (out_dir, tensors)
            check_transformers(binary, out_dir, args.prompt, args.max_new_tokens)

        print("\n[values] bf16 round trip against the original f32")
        orig = dirs["hf-f32"][1]
        back = dirs["bf16-f32"][1]
        bf16 = dirs["hf-bf16"][1]
        worst = max(((orig[n] - back[n]).abs() / orig[n].abs().clamp_min(1e-30)).max().item()
                    for n in orig)
        check(all(torch.equal(bf16[n].float(), back[n]) for n in orig),
              "bf16 -> f32 widening is exact")
        check(all(torch.equal(orig[n].bfloat16(), bf16[n]) for n in orig),
              "f32 -> bf16 equals torch's round-to-nearest-even .bfloat16()")
        check(worst <= 2.0 ** -8, f"largest relative error {worst:.3g} <= 2^-8")
        f16 = dirs["hf-f16"][1]
        check(all(torch.equal(orig[n].half(), f16[n]) for n in orig),
              "f32 -> f16 equals torch's .half()")

        print("\n[file] single-file bf16 conversion")
        src = os.path.join(args.model, "model.safetensors")
        print("  " + rgrad(binary, "convert", "--input", src, "--output", d("one.safetensors"),
                           "--dtype", "bf16").strip())
        tensors = check_safetensors(d("one.safetensors"), "BF16", None)
        check(sorted(tensors) == sorted(orig), "same names as the input file")

    print(f"\n{'FAILED: ' + str(len(failures)) if failures else 'all checks passed'}")
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
