#!/usr/bin/env python3
"""Print the reference ids our tests compare against, from Hugging Face `tokenizers`.

    pip install tokenizers tiktoken
    python3 crates/rg-tokenize/tests/gen_reference.py [SHARED_DIR]

For Tiny Shakespeare it prints the length, an FNV-1a 64 hash of the ids (each id as 4
little-endian bytes) and the first/last 64 ids; for tests/data/stress.txt all the ids.
tiktoken (built from the same vocab.json/merges.txt, see benches/peers.py) is checked
to agree, since both stand for "GPT-2's ids".
"""
import os
import sys

from tokenizers import Tokenizer

HERE = os.path.dirname(os.path.abspath(__file__))
shared = sys.argv[1] if len(sys.argv) > 1 else os.environ.get("RG_SHARED_DIR", os.path.join(HERE, "../../../../shared"))
gpt2_dir = os.path.join(shared, "data/gpt2-tokenizer")
hf = Tokenizer.from_file(os.path.join(gpt2_dir, "tokenizer.json"))


def fnv1a64(ids):
    h = 0xCBF29CE484222325
    for i in ids:
        for b in i.to_bytes(4, "little"):
            h ^= b
            h = (h * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return h


def ids_of(text):
    return hf.encode(text, add_special_tokens=False).ids


try:
    sys.path.insert(0, os.path.join(HERE, "../benches"))
    from peers import gpt2_tiktoken

    tt = gpt2_tiktoken(gpt2_dir)
except ImportError:
    tt = None

shakespeare = open(os.path.join(shared, "data/tinyshakespeare.txt"), encoding="utf-8").read()
stress = open(os.path.join(HERE, "data/stress.txt"), encoding="utf-8", newline="").read()
for name, text in [("SHAKESPEARE", shakespeare), ("STRESS", stress)]:
    ids = ids_of(text)
    if tt is not None:
        same = tt.encode_ordinary(text) == ids
        print(f"// tiktoken agrees on {name}: {same}")
    print(f"const {name}_LEN: usize = {len(ids)};")
    print(f"const {name}_FNV: u64 = 0x{fnv1a64(ids):016x};")
    if name == "STRESS":
        print(f"const {name}_IDS: [u32; {len(ids)}] = {ids};")
    else:
        print(f"const {name}_HEAD: [u32; 64] = {ids[:64]};")
        print(f"const {name}_TAIL: [u32; 64] = {ids[-64:]};")
