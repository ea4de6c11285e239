"""The problems of `flashtts demo` (runtime/demo_problems.h) are the arith
generator's (tools/arith/data.py): the picked one is held-out problem #12 and
the dozen fresh ones are `data.py --n 12 --seed 20261205`, none of them the
picked one. Standard library only (CTest arith.demo_set).
"""
from __future__ import annotations

import os
import re
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "tools", "arith"))
import data  # noqa: E402


def main() -> int:
    src = open(os.path.join(ROOT, "runtime", "demo_problems.h")).read()
    src = re.sub(r'"\s*\n\s*"', "", src)  # adjacent string literals joined
    problems = re.findall(r'\{"(Let [^"]*)",\s*"(-?\d+)"\}', src)
    seed = int(re.search(r"kFreshSeed = (\d+);", src).group(1))
    held = int(re.search(r"held-out arith problem #(\d+)", src).group(1))
    picked, fresh = problems[0], problems[1:]

    p = data.test_set(held + 1)[held]
    want_picked = (p.text, str(p.answer))
    want_fresh = [(q.text, str(q.answer)) for q in data.test_set(12, seed)]
    ok = True
    if picked != want_picked:
        print(f"FAIL: the picked problem is {picked}, held-out #{held} is {want_picked}")
        ok = False
    if fresh != want_fresh:
        print(f"FAIL: the fresh problems differ from data.py --n 12 --seed {seed}:")
        for got, want in zip(fresh, want_fresh):
            if got != want:
                print(f"  {got} != {want}")
        if len(fresh) != len(want_fresh):
            print(f"  {len(fresh)} problems, not {len(want_fresh)}")
        ok = False
    if picked in fresh:
        print("FAIL: the picked problem is among the fresh ones")
        ok = False
    for text, answer in problems:
        if str(data.solve(text)) != answer:
            print(f"FAIL: {text} has answer {data.solve(text)}, not {answer}")
            ok = False
    print("PASS" if ok else "FAIL", f"({len(fresh)} fresh problems, seed {seed}; picked: held-out #{held})")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
