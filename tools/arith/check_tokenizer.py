"""Checks that flashtts and HF transformers give the same ids for a model
folder's tokenizer on n generated problem/solution/chat texts.
Run: .venv-ref/bin/python tools/arith/check_tokenizer.py --model DIR [--n 200] [--flashtts build/flashtts]"""
import argparse
import json
import os
import random
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import data  # noqa: E402
from tokenizer import chat_prompt  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True)
    ap.add_argument("--n", type=int, default=200)
    ap.add_argument("--flashtts", default="build/flashtts")
    a = ap.parse_args()
    from transformers import AutoTokenizer
    hf = AutoTokenizer.from_pretrained(a.model)
    rng = random.Random(123)
    bad = 0
    for i in range(a.n):
        p = data.sample_problem(rng)
        kind = i % 4
        text = [p.text, data.solution(p), chat_prompt(p.text) + data.solution(p) + "<|im_end|>",
                "x  y\n\n\n Z 1234 -(5) \\boxed{} é<extra_0>"][kind]
        want = hf.encode(text, add_special_tokens=False)
        out = subprocess.run([a.flashtts, "tokenize", "--model", a.model, "--text", text, "--json"],
                             capture_output=True, text=True, check=True).stdout
        got = json.loads(out)["ids"]
        if got != want:
            bad += 1
            if bad <= 3:
                print("MISMATCH", repr(text), want, got)
    print(f"{a.n - bad}/{a.n} texts give the same ids")
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
