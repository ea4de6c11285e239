"""The test-time-scaling effect of the shipped models (issue 5), in the suite.

Runs `flashtts eval` on the first N held-out arith problems (tools/arith/data.py
test_set, seed 20260500) with the shipped policy and PRM (configs/default.toml):
greedy decoding, then beam search N=16, M=4, and asserts that search beats
greedy by at least --min-gap points (the full 500-problem figures, with the
margin this test keeps, are in docs/arith.md). Standard library only; runs
with any python3.

Run: python3 tests/arith/gap_test.py --flashtts build/flashtts [--problems 100]
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "tools", "arith"))
import data  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--flashtts", required=True)
    ap.add_argument("--config", default=os.path.join(ROOT, "configs", "default.toml"))
    ap.add_argument("--problems", type=int, default=100)
    ap.add_argument("--n", type=int, default=16)
    ap.add_argument("--beam-width", type=int, default=4)
    ap.add_argument("--min-gap", type=float, default=7.0, help="points beam search must gain over greedy")
    ap.add_argument("--greedy-range", default="15,75", help="greedy accuracy must lie in this range (percent)")
    a = ap.parse_args()

    for m in ("policy", "prm"):
        if not os.path.isfile(os.path.join(ROOT, "models", m, "config.json")):
            print(f"FAIL: models/{m} is missing: the shipped models are part of the repository")
            return 1
    with tempfile.TemporaryDirectory(prefix="flashtts-gap-") as tmp:
        ds = os.path.join(tmp, "arith.jsonl")
        data.write_jsonl(ds, data.test_set(a.problems))
        out = os.path.join(tmp, "r.jsonl")
        cmd = [a.flashtts, "eval", "--config", a.config, "--dataset", ds, "--greedy", "--strategy", "beam_search",
               "--n", str(a.n), "--beam-width", str(a.beam_width), "--concurrency", "2", "--quiet", "--out", out]
        print("$ " + " ".join(cmd), flush=True)
        t0 = time.time()
        r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        print(r.stdout)
        if r.returncode != 0:
            print(f"FAIL: flashtts eval exited with {r.returncode}")
            return 1
        rows = [json.loads(line) for line in open(out)]
    acc = {}
    for label in ("greedy", "beam_search"):
        mine = [x for x in rows if x.get("strategy") == label]
        if len(mine) != a.problems or any(x["failed"] for x in mine):
            print(f"FAIL: {label}: {len(mine)} results, {sum(x['failed'] for x in mine)} failed")
            return 1
        acc[label] = 100.0 * sum(x["weighted_correct"] for x in mine) / a.problems
    gap = acc["beam_search"] - acc["greedy"]
    lo, hi = (float(v) for v in a.greedy_range.split(","))
    print(f"{a.problems} problems in {time.time() - t0:.0f} s: greedy {acc['greedy']:.1f}%, "
          f"beam search N={a.n} M={a.beam_width} {acc['beam_search']:.1f}%, gap {gap:+.1f} points "
          f"(required: greedy in [{lo:g}, {hi:g}]%, gap >= {a.min_gap:g})")
    ok = lo <= acc["greedy"] <= hi and gap >= a.min_gap
    print("PASS" if ok else "FAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
