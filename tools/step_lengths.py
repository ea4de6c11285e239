#!/usr/bin/env python3
"""Writes bench/data/math500_step_lengths.tsv: the length of every reference
solution step of MATH-500, the step-length table of the math-trace benchmark
workload (issue 20, docs/pipeline.md "math-trace").

A step is a piece of a `solution` split at "\\n\\n" (the step delimiter of
the search strategies), with empty pieces dropped (as split_steps drops them).
Its token length is its Qwen2 BPE token count without special tokens; its
character length counts Unicode code points.

Tokenizer: Hugging Face transformers' Qwen2TokenizerFast over testdata
tokenizers/qwen2 (vocab.json + merges.txt) when transformers imports (e.g.
.venv-ref/bin/python), else our
own `flashtts-tokenize-batch` over tokenizers/qwen2 (checked id for id against
HF, docs/tokenizer.md).

  .venv-ref/bin/python tools/step_lengths.py [--testdata ../shared/testdata]
      [--tokenize-batch build/flashtts-tokenize-batch] [--out bench/data/math500_step_lengths.tsv]
"""
import argparse
import datetime
import hashlib
import json
import os
import statistics
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)


def percentile(sorted_values, p):
    """Nearest-rank percentile: the smallest value with at least p% at or below it."""
    k = max(1, -(-len(sorted_values) * p // 100))  # ceil
    return sorted_values[int(k) - 1]


def describe(values):
    s = sorted(values)
    mean = statistics.fmean(s)
    cv = statistics.pstdev(s) / mean
    return "mean %.1f, CV %.2f, p10 %d, p50 %d, p90 %d, min %d, max %d" % (
        mean, cv, percentile(s, 10), percentile(s, 50), percentile(s, 90), s[0], s[-1])


def hf_counter(testdata):
    from transformers import AutoTokenizer  # noqa: import here: optional
    import transformers
    tok = AutoTokenizer.from_pretrained(os.path.join(testdata, "tokenizers/qwen2"))
    name = "HF transformers %s %s over testdata tokenizers/qwen2 (vocab.json + merges.txt)" % (
        transformers.__version__, type(tok).__name__)
    return name, lambda texts: [len(ids) for ids in tok(texts, add_special_tokens=False).input_ids]


def batch_counter(testdata, binary):
    model = os.path.join(testdata, "tokenizers/qwen2")

    def count(texts):
        # Special-token text in a solution is plain text here, as in HF with
        # add_special_tokens=False (MATH-500 holds none).
        inp = "".join(json.dumps({"text": t}) + "\n" for t in texts)
        out = subprocess.run([binary, "--tokenizer", model], input=inp, capture_output=True, text=True, check=True)
        return [len(json.loads(line)["ids"]) for line in out.stdout.splitlines() if line.strip()]

    return "flashtts-tokenize-batch over testdata tokenizers/qwen2 (Qwen2 BPE)", count


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--testdata", default=os.path.join(ROOT, "..", "shared", "testdata"))
    ap.add_argument("--tokenize-batch", default=os.path.join(ROOT, "build", "flashtts-tokenize-batch"))
    ap.add_argument("--out", default=os.path.join(ROOT, "bench", "data", "math500_step_lengths.tsv"))
    ap.add_argument("--date", default=datetime.date.today().isoformat(), help="date written in the header")
    a = ap.parse_args()

    src = os.path.join(a.testdata, "datasets/math500/test.jsonl")
    with open(src, "rb") as f:
        raw = f.read()
    sha = hashlib.sha256(raw).hexdigest()
    rows = [json.loads(line) for line in raw.decode("utf-8").splitlines() if line.strip()]

    steps, owners = [], []
    for row in rows:
        for piece in row["solution"].split("\n\n"):
            if piece:
                steps.append(piece)
                owners.append(row["unique_id"])

    try:
        tok_name, count = hf_counter(a.testdata)
    except ImportError:
        tok_name, count = batch_counter(a.testdata, a.tokenize_batch)
    tokens = count(steps)
    assert len(tokens) == len(steps), "the tokenizer returned %d counts for %d steps" % (len(tokens), len(steps))
    chars = [len(s) for s in steps]
    per_solution = [sum(1 for _ in r["solution"].split("\n\n") if _) for r in rows]

    header = [
        "math-trace step-length table (issue 20): one line per reference solution step of MATH-500.",
        "Written by tools/step_lengths.py; do not edit by hand.",
        "source: testdata datasets/math500/test.jsonl (see testdata PROVENANCE.md), %d rows, sha256 %s"
        % (len(rows), sha),
        "split: each 'solution' at \"\\n\\n\", empty pieces dropped; chars = Unicode code points",
        "tokenizer: %s, no special tokens" % tok_name,
        "date: %s" % a.date,
        "steps: %d (per solution: mean %.2f, max %d)" % (len(steps), statistics.fmean(per_solution), max(per_solution)),
        "chars:  " + describe(chars),
        "tokens: " + describe(tokens),
        "percentiles are nearest-rank; CV = population standard deviation / mean",
        "columns: tokens, chars, unique_id of the problem",
    ]
    os.makedirs(os.path.dirname(a.out), exist_ok=True)
    with open(a.out, "w", encoding="utf-8") as f:
        for h in header:
            f.write("# " + h + "\n")
        f.write("tokens\tchars\tunique_id\n")
        for t, c, u in zip(tokens, chars, owners):
            f.write("%d\t%d\t%s\n" % (t, c, u))
    for h in header[6:9]:
        print(h)
    return 0


if __name__ == "__main__":
    sys.exit(main())
