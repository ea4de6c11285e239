"""How well saved PRM folders judge the policy's own steps (issue 5).

Scores the policy's held-out sampled solutions (prm_circuit.policy_rows
after the first --skip, which prm_circuit fits its head on), each cut after
its first wrong step (a step's own label, what a windowed PRM scores), with
each PRM folder as transformers runs it in float32, and reports at the step
tags: log loss, accuracy, and how many right and wrong steps score below
0.5. One JSON line per PRM.

Run: .venv-ref/bin/python tools/arith/prm_heldout.py --samples-file build-arith/m1500-samples.jsonl \
         models/prm [more PRM folders]
"""
from __future__ import annotations

import argparse
import json
import math
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from prm_circuit import policy_rows, up_to_first_wrong  # noqa: E402
from train_prm import PRM, TAG, prm_text, score_one  # noqa: E402


def judge(torch, prm, tok, rows):
    """{log_loss, accuracy, tags, right_rejected, right, wrong_rejected,
    wrong} of `prm` at the step tags of `rows`; solutions whose tags do not
    match their steps (a step that writes the tag) are left out."""
    tag = tok.convert_tokens_to_ids(TAG)
    loss, hits, right, wrong, right_no, wrong_no = 0.0, 0, 0, 0, 0, 0
    for p, steps, labels in rows:
        ids = tok.encode(prm_text(p.text, steps), add_special_tokens=False)
        tags = [i for i, t in enumerate(ids) if t == tag]
        if len(tags) != len(labels):
            continue
        with torch.no_grad():
            ok = torch.softmax(score_one(torch, prm.net, ids).double(), -1)[:, 1]
        for i, y in zip(tags, labels):
            q = min(max(ok[i].item(), 1e-12), 1 - 1e-12)
            loss -= math.log(q if y else 1 - q)
            hits += (q > 0.5) == bool(y)
            right, wrong = right + bool(y), wrong + (not y)
            right_no += bool(y) and q < 0.5
            wrong_no += (not y) and q < 0.5
    n = right + wrong
    return {"log_loss": round(loss / max(1, n), 4), "accuracy": round(hits / max(1, n), 4), "tags": n,
            "right_rejected": right_no, "right": right, "wrong_rejected": wrong_no, "wrong": wrong}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("prm", nargs="+", help="PRM folders (Qwen2ForProcessRewardModel, arith tokenizer)")
    ap.add_argument("--samples-file", required=True, help="the policy's sampled solutions, as prm_circuit.py takes")
    ap.add_argument("--policy", default="", help="policy folder, to sample --samples-file when it does not exist")
    ap.add_argument("--samples", type=int, default=3000, help="as prm_circuit.py --samples")
    ap.add_argument("--skip", type=int, default=2000, help="solutions to skip (prm_circuit.py --fit)")
    ap.add_argument("--rows", type=int, default=800, help="held-out solutions to score")
    ap.add_argument("--seed", type=int, default=0, help="as prm_circuit.py --seed")
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()

    import torch
    from transformers import AutoTokenizer, Qwen2Config
    torch.set_num_threads(a.threads)
    rows = up_to_first_wrong(policy_rows(a.policy, a.samples_file, a.samples, a.seed)[a.skip:a.skip + a.rows])
    if not rows:
        raise SystemExit(f"no solutions after the first {a.skip} in {a.samples_file}")
    for d in a.prm:
        prm = PRM(Qwen2Config.from_pretrained(d))
        prm.load_weights(d)
        prm.net.eval()
        print(json.dumps({"prm": d, "solutions": len(rows),
                          **judge(torch, prm, AutoTokenizer.from_pretrained(d), rows)}), flush=True)


if __name__ == "__main__":
    main()
