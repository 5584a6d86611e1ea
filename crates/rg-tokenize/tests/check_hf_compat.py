#!/usr/bin/env python3
"""Check that tokenizer.json files written by rg-tokenize load in Hugging Face
`tokenizers` and encode to the same ids as our engine.

    cargo run --release -p rg-tokenize --example export_for_hf_check -- /tmp/rg-hf
    python3 crates/rg-tokenize/tests/check_hf_compat.py /tmp/rg-hf

The `gpt2` case re-saves GPT-2's vocabulary, which marks <|endoftext|> as an added
(special) token: HF's encode then splits it out, as our encode_with_special does.
"""
import json
import os
import sys

from tokenizers import Tokenizer

out = sys.argv[1]
failures = 0
for case in json.load(open(os.path.join(out, "ids.json"), encoding="utf-8")):
    tok = Tokenizer.from_file(case["tokenizer"])
    for t in case["texts"]:
        got = tok.encode(t["text"], add_special_tokens=False).ids
        same = got == t["ids"]
        back = tok.decode(got, skip_special_tokens=False) == t["text"]
        failures += (not same) + (not back)
        print(f"{case['tokenizer']}: {len(t['text'])} chars -> {len(got)} ids: same ids {same}, decodes back {back}")
print("1 passed, 0 failed" if failures == 0 else f"0 passed, 1 failed ({failures} mismatches)")
sys.exit(1 if failures else 0)
