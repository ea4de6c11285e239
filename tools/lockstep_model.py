#!/usr/bin/env python3
"""The straggler chain of a beam search, with and without speculation: a model
of the lockstep alone (docs/performance.md, "With the PRM scoring what the
policy wrote"), to tell what speculation can give on the math-trace workload.

An iteration lasts as long as its longest remaining step (decode passes; the
verifier and every overhead are left out). Step lengths are drawn from the
trace table (capped at the workload's 512 tokens per step); survivors are the
top N / width of scores drawn afresh (as math-trace ranks). A member whose step
ends early speculates until the longest ends (times its score bin with the
paper's bins); copy 0 of a survivor keeps all of it, copies 1.. a prefix of
ratio r ~ N(0.85, 0.1) (DuplicateThenTruncate), or, in "branch", a
speculation of their own as long as copy 0's. In "multi" a member goes on
speculating past its next step (into the steps after it) until the longest
ends, and copy 0 keeps it all; the copies, which diverge inside the next
step, keep no more than in "flat".

  tools/lockstep_model.py [--searches 200] [--iterations 7] [--n 16,64,256]

Prints per N and mode the mean of (baseline chain / chain) over the searches.
Standard library only.
"""
import argparse
import pathlib
import random
import statistics

TABLE = pathlib.Path(__file__).resolve().parent.parent / "bench" / "data" / "math500_step_lengths.tsv"


def step_lengths(cap):
    lengths = []
    for line in TABLE.read_text().splitlines():
        if line and line[0].isdigit():
            lengths.append(min(int(line.split("\t")[0]), cap))
    return lengths


def chain(lengths, n, mode, seed, iterations, width):
    draw = random.Random(seed)  # the same steps and scores in every mode
    truncate = random.Random(seed + 999)
    carried = [0] * n
    prior = [0.5] * n
    total = 0
    for _ in range(iterations):
        steps = [draw.choice(lengths) for _ in range(n)]
        left = [max(0, steps[i] - carried[i]) for i in range(n)]
        # "multi": what copy 0 carried past this step is a head start on the next.
        excess = [max(0, carried[i] - steps[i]) if mode == "multi" else 0 for i in range(n)]
        longest = max(left)
        total += longest
        scores = [draw.random() for _ in range(n)]
        survivors = sorted(range(n), key=lambda i: -scores[i])[: n // width]
        by_prior = sorted(range(n), key=lambda i: -prior[i])
        quarter = [0] * n
        for rank, i in enumerate(by_prior):
            quarter[i] = 4 * rank // n
        spec = []
        for i in range(n):
            t = 0 if mode == "none" else longest - left[i] + excess[i]
            if mode in ("bins", "bins+branch"):
                t = t * (4 - quarter[i]) // 4
            spec.append(t)
        carried, prior = [], []
        for s in survivors:
            for c in range(width):
                k = spec[s]
                if c > 0 and mode == "multi":
                    k -= excess[s]  # the copies diverge inside the next step
                if c == 0 or mode in ("branch", "bins+branch"):
                    kept = k
                elif k >= 2:
                    r = min(1.0, max(0.0, truncate.gauss(0.85, 0.1)))
                    kept = max(1, min(k - 1, int(r * k)))
                else:
                    kept = 0
                carried.append(kept)
                prior.append(scores[s])
    return total


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--searches", type=int, default=200)
    ap.add_argument("--iterations", type=int, default=7)
    ap.add_argument("--width", type=int, default=4)
    ap.add_argument("--cap", type=int, default=512)
    ap.add_argument("--n", default="16,64,256")
    a = ap.parse_args()
    lengths = step_lengths(a.cap)
    for n in (int(x) for x in a.n.split(",")):
        base = [chain(lengths, n, "none", s, a.iterations, a.width) for s in range(a.searches)]
        for mode in ("bins", "bins+branch", "flat", "branch", "multi"):
            ratio = [b / chain(lengths, n, mode, s, a.iterations, a.width) for s, b in enumerate(base)]
            print(f"N = {n:4d}  {mode:12s} {statistics.mean(ratio):.3f}x")


if __name__ == "__main__":
    main()
