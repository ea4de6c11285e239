#!/usr/bin/python3
"""Solve one problem on a running flashtts server, streaming its progress.

    /usr/bin/python3 tools/python/solve_example.py --endpoint ipc:///tmp/flashtts.sock \\
        "Let a = 5. Let b = a * 3. What is b?"

Progress goes to stderr as it arrives; the answer and the chosen solution's
steps (with their PRM scores) go to stdout. Exit status: 0 solved, 1 the
server answered with an error, 2 no answer in time, 3 no server answers at
the endpoint (no reply to a ping within --connect-timeout seconds).
"""

import argparse
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from flashtts_client import DEFAULT_CONNECT_TIMEOUT, DEFAULT_ENDPOINT, Client, FlashttsError, NoServerError  # noqa: E402


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("problem", help="the problem text")
    p.add_argument("--endpoint", default=DEFAULT_ENDPOINT, help=f"server endpoint (default {DEFAULT_ENDPOINT})")
    p.add_argument("--timeout", type=float, default=600.0, help="seconds to wait for the answer (default 600)")
    p.add_argument("--connect-timeout", type=float, default=DEFAULT_CONNECT_TIMEOUT,
                   help=f"seconds to wait for the server's answer to a first ping (default {DEFAULT_CONNECT_TIMEOUT:g})")
    # Left unset, each takes the server's default ([search] in its config).
    p.add_argument("--n", type=int, help="completions to sample")
    p.add_argument("--strategy", help="search strategy (best_of_n)")
    p.add_argument("--max-steps", type=int, help="most reasoning steps per completion")
    p.add_argument("--max-tokens-per-step", type=int, help="most tokens per step")
    p.add_argument("--temperature", type=float, help="sampling temperature (0 = greedy)")
    p.add_argument("--seed", type=int, help="sampler seed")
    p.add_argument("--aggregation", help="last | min | prod | mean")
    p.add_argument("--selection", help="naive | weighted | majority")
    p.add_argument("--all", action="store_true", help="also print every completion")
    p.add_argument("--json", action="store_true", help="print the result map as JSON")
    return p.parse_args(argv)


def show_progress(event):
    kind = event.get("kind")
    if kind == "generated":
        print(f"  beam {event['beam']}: generated {event['tokens']} tokens ({event['finish']})", file=sys.stderr)
    elif kind == "completed":
        scores = ", ".join(f"{s:.3f}" for s in event.get("step_scores", []))
        print(f"  beam {event['beam']}: scored [{scores}]  ({event['done']}/{event['total']} done)", file=sys.stderr)
    else:
        print(f"  {event}", file=sys.stderr)


def main(argv):
    a = parse_args(argv)
    params = {
        "n": a.n, "strategy": a.strategy, "max_steps": a.max_steps, "max_tokens_per_step": a.max_tokens_per_step,
        "temperature": a.temperature, "seed": a.seed, "aggregation": a.aggregation, "selection": a.selection,
        "return_completions": True if a.all else None,
    }
    print(f"solving on {a.endpoint} ...", file=sys.stderr)
    with Client(a.endpoint, timeout=a.timeout, connect_timeout=a.connect_timeout) as client:
        try:
            r = client.solve(a.problem, on_progress=show_progress, **params)
        except NoServerError as e:
            print(f"error: {e}", file=sys.stderr)
            return 3
        except FlashttsError as e:
            print(f"error from the server: {e.code}: {e.message}", file=sys.stderr)
            return 1
        except TimeoutError as e:
            print(f"error: {e}", file=sys.stderr)
            return 2
    if a.json:
        print(json.dumps(r, indent=2, ensure_ascii=False))
        return 0
    print(f"answer: {r['answer']!r}   (score {r['score']:.4f}; {r['strategy']}, n = {r['n']}, "
          f"{r['aggregation']} / {r['selection']})")
    for i, step in enumerate(r["steps"], 1):
        print(f"step {i} [{step['score']:.4f}]: {step['text']!r}")
    for c in r.get("completions", []):
        print(f"completion {c['beam']} [{c['score']:.4f}, {c['finish']}, {c['tokens']} tokens]: "
              f"answer {c['answer']!r}")
    st = r["stats"]
    print(f"time {st['latency_ms']:.1f} ms, {st['policy_tokens']} policy tokens, "
          f"{st['prm_tokens']} PRM tokens ({st['prm_tokens_computed']} computed)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
