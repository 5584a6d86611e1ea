#!/usr/bin/env python3
"""Peer measurements for PERF.md: tiktoken and Hugging Face `tokenizers` on the same
text, and `tokenizers`' BPE trainer on the same corpus and size as ours.

    python3 -m venv /tmp/peers && /tmp/peers/bin/pip install tiktoken tokenizers
    /tmp/peers/bin/python crates/rg-tokenize/benches/peers.py [SHARED_DIR [SAVE_TRAINED_JSON]]

tiktoken cannot download its GPT-2 files offline, so its `Encoding` is built here from
the shared vocab.json: mergeable ranks are the vocab's byte strings (mapped back
through GPT-2's byte-to-unicode table) ranked by id.
"""
import json
import os
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
GPT2_PATTERN = r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""


def bytes_to_unicode():
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, map(chr, cs)))


def gpt2_tiktoken(gpt2_dir):
    import tiktoken

    decode = {c: b for b, c in bytes_to_unicode().items()}
    vocab = json.load(open(os.path.join(gpt2_dir, "vocab.json"), encoding="utf-8"))
    ranks = {bytes(decode[c] for c in tok): i for tok, i in vocab.items() if tok != "<|endoftext|>"}
    return tiktoken.Encoding(
        name="gpt2-local",
        pat_str=GPT2_PATTERN,
        mergeable_ranks=ranks,
        special_tokens={"<|endoftext|>": 50256},
    )


def best_of(f, repeat):
    """Best wall time of `repeat` runs (after one warm-up), and the last result."""
    out = f()
    best = float("inf")
    for _ in range(repeat):
        t = time.perf_counter()
        out = f()
        best = min(best, time.perf_counter() - t)
    return best, out


def hf_lines_rate(hf, lines, mb):
    t, _ = best_of(lambda: hf.encode_batch(lines, add_special_tokens=False), 3)
    return f"tokenizers encode_batch of the {len(lines)} lines, {{threads}}: {mb / t:.1f} MB/s"


def main():
    shared = sys.argv[1] if len(sys.argv) > 1 else os.environ.get("RG_SHARED_DIR", os.path.join(HERE, "../../../../shared"))
    if sys.argv[2:3] == ["--hf-lines"]:
        from tokenizers import Tokenizer

        hf = Tokenizer.from_file(os.path.join(shared, "data/gpt2-tokenizer/tokenizer.json"))
        text = open(os.path.join(shared, "data/tinyshakespeare.txt"), encoding="utf-8").read()
        print(hf_lines_rate(hf, text.splitlines(keepends=True), len(text.encode()) / 1e6))
        return
    gpt2_dir = os.path.join(shared, "data/gpt2-tokenizer")
    path = os.path.join(shared, "data/tinyshakespeare.txt")
    text = open(path, encoding="utf-8").read()
    mb = len(text.encode()) / 1e6
    cores = os.cpu_count()
    # Lines are the unit of the all-core runs (both libraries' batch APIs take lists).
    lines = text.splitlines(keepends=True)
    chunk = max(1, len(lines) // (8 * cores))
    batches = ["".join(lines[i : i + chunk]) for i in range(0, len(lines), chunk)]

    import tiktoken
    from tokenizers import Tokenizer, pre_tokenizers, trainers
    from tokenizers.models import BPE

    print(f"text: {path} ({mb:.3f} MB), {cores} cores, tiktoken {tiktoken.__version__}")
    tt = gpt2_tiktoken(gpt2_dir)
    t, ids = best_of(lambda: tt.encode_ordinary(text), 5)
    print(f"tiktoken encode_ordinary 1 thread: {mb / t:.1f} MB/s ({len(ids)} tokens)")
    t, _ = best_of(lambda: tt.encode_ordinary_batch(batches, num_threads=cores), 5)
    print(f"tiktoken encode_ordinary_batch {cores} threads: {mb / t:.1f} MB/s")

    import tokenizers

    hf = Tokenizer.from_file(os.path.join(gpt2_dir, "tokenizer.json"))
    t, enc = best_of(lambda: hf.encode(text, add_special_tokens=False), 2)
    assert enc.ids == ids, "tokenizers and tiktoken disagree"
    print(f"tokenizers {tokenizers.__version__} encode (whole text as one input): {mb / t:.1f} MB/s")
    # Its usual use: many short inputs. TOKENIZERS_PARALLELISM is read once per process,
    # so the single-thread figure comes from a child process.
    child = subprocess.run(
        [sys.executable, os.path.abspath(__file__), shared, "--hf-lines"],
        env=dict(os.environ, TOKENIZERS_PARALLELISM="false"),
        capture_output=True,
        text=True,
        check=True,
    )
    print(child.stdout.strip().replace("{threads}", "1 thread"))
    print(hf_lines_rate(hf, lines, mb).replace("{threads}", f"{cores} threads"))

    def train():
        tok = Tokenizer(BPE())
        tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        trainer = trainers.BpeTrainer(
            vocab_size=4096,
            special_tokens=["<|endoftext|>"],
            initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
            show_progress=False,
        )
        tok.train_from_iterator([text], trainer)
        return tok

    t, tok = best_of(train, 3)
    print(f"tokenizers BpeTrainer 4096 on the whole text: {t * 1e3:.0f} ms")
    if len(sys.argv) > 2:
        # The trained tokenizer, for comparing with ours (tests/train.rs has its hash).
        tok.save(sys.argv[2])
        print(f"saved the trained tokenizer to {sys.argv[2]}")


if __name__ == "__main__":
    main()
