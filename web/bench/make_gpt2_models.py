"""GPT-2 124M with random weights, for the browser speed comparison (nothing is
downloaded): one directory holding

  config.json, model.safetensors, tokenizer.json, vocab.json, merges.txt
      what `rgrad generate` and the demo page load;
  onnx/model.onnx, tokenizer_config.json, generation_config.json
      the same weights exported with PyTorch in the layout transformers.js reads
      (inputs input_ids, attention_mask, position_ids, past_key_values.N.key/value;
      outputs logits, present.N.key/value), for its onnxruntime-web WASM backend.

The ONNX graph is traced from a plain PyTorch GPT-2 forward with an explicit KV cache
(below), loaded with the Hugging Face model's weights and checked against it, so both
engines run the same weights and the same arithmetic.

usage: python make_gpt2_models.py OUT_DIR TOKENIZER_DIR [--seed 0]
"""

import argparse
import json
import math
import shutil
from pathlib import Path

import torch
from torch import nn
from transformers import GPT2Config, GPT2LMHeadModel


class Gpt2WithCache(nn.Module):
    """GPT-2's forward with past keys and values as plain tensors."""

    def __init__(self, hf: GPT2LMHeadModel):
        super().__init__()
        self.t = hf.transformer
        self.cfg = hf.config

    def forward(self, input_ids, attention_mask, position_ids, *past):
        cfg = self.cfg
        h, d = cfg.n_head, cfg.n_embd // cfg.n_head
        x = self.t.wte(input_ids) + self.t.wpe(position_ids)
        b, t, _ = x.shape
        past_len = past[0].shape[2]
        s = past_len + t
        # Causal over the whole window, plus the padding mask transformers.js passes.
        q_pos = torch.arange(t).unsqueeze(1) + past_len
        k_pos = torch.arange(s).unsqueeze(0)
        causal = (k_pos <= q_pos).to(x.dtype)
        bias = (1.0 - causal) * -1e9
        bias = bias + (1.0 - attention_mask.to(x.dtype))[:, None, None, :] * -1e9
        presents = []
        for i, block in enumerate(self.t.h):
            a = block.ln_1(x)
            qkv = block.attn.c_attn(a)
            q, k, v = qkv.split(cfg.n_embd, dim=2)
            q = q.view(b, t, h, d).transpose(1, 2)
            k = torch.cat([past[2 * i], k.view(b, t, h, d).transpose(1, 2)], dim=2)
            v = torch.cat([past[2 * i + 1], v.view(b, t, h, d).transpose(1, 2)], dim=2)
            presents += [k, v]
            scores = q @ k.transpose(2, 3) / math.sqrt(d) + bias
            y = torch.softmax(scores, dim=-1) @ v
            y = y.transpose(1, 2).reshape(b, t, cfg.n_embd)
            x = x + block.attn.c_proj(y)
            x = x + block.mlp(block.ln_2(x))
        x = self.t.ln_f(x)
        logits = x @ self.t.wte.weight.t()
        return (logits, *presents)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("out", type=Path)
    p.add_argument("tokenizer_dir", type=Path)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    torch.manual_seed(args.seed)
    config = GPT2Config()  # 124M: 12 layers, 12 heads, 768 wide, context 1024
    hf = GPT2LMHeadModel(config).eval()
    args.out.mkdir(parents=True, exist_ok=True)
    hf.save_pretrained(args.out, safe_serialization=True)
    for name in ["tokenizer.json", "vocab.json", "merges.txt"]:
        shutil.copyfile(args.tokenizer_dir / name, args.out / name)
    (args.out / "tokenizer_config.json").write_text(json.dumps({
        "tokenizer_class": "GPT2Tokenizer", "model_max_length": 1024,
        "bos_token": "<|endoftext|>", "eos_token": "<|endoftext|>", "unk_token": "<|endoftext|>",
        "add_prefix_space": False,
    }))

    model = Gpt2WithCache(hf).eval()
    n_layer, h, d = config.n_layer, config.n_head, config.n_embd // config.n_head
    ids = torch.tensor([[464, 2068, 7586, 21831]])
    with torch.no_grad():
        empty = [torch.zeros(1, h, 0, d) for _ in range(2 * n_layer)]
        ours = model(ids, torch.ones_like(ids), torch.arange(4)[None], *empty)[0]
        theirs = hf(ids).logits
        err = (ours - theirs).abs().max().item()
    assert err < 1e-3, f"the cache forward differs from transformers by {err}"

    past_names = [f"past_key_values.{i}.{kv}" for i in range(n_layer) for kv in ("key", "value")]
    present_names = [f"present.{i}.{kv}" for i in range(n_layer) for kv in ("key", "value")]
    dynamic = {"input_ids": {0: "batch", 1: "seq"}, "attention_mask": {0: "batch", 1: "total"},
               "position_ids": {0: "batch", 1: "seq"}, "logits": {0: "batch", 1: "seq"}}
    for n in past_names:
        dynamic[n] = {0: "batch", 2: "past"}
    for n in present_names:
        dynamic[n] = {0: "batch", 2: "total"}
    past = [torch.zeros(1, h, 3, d) for _ in range(2 * n_layer)]
    example = (torch.tensor([[464]]), torch.ones(1, 4, dtype=torch.long), torch.tensor([[3]]), *past)
    (args.out / "onnx").mkdir(exist_ok=True)
    torch.onnx.export(
        model, example, str(args.out / "onnx" / "model.onnx"),
        input_names=["input_ids", "attention_mask", "position_ids", *past_names],
        output_names=["logits", *present_names],
        dynamic_axes=dynamic, opset_version=17, do_constant_folding=True, dynamo=False,
    )
    (args.out / "generation_config.json").write_text(json.dumps({
        "bos_token_id": 50256, "eos_token_id": 50256, "do_sample": False,
    }))
    print(f"wrote {args.out} (max |logit difference| vs transformers {err:.2e})")


if __name__ == "__main__":
    main()
