"""How much can search recover from a policy? Teacher-forced step coverage.

For each problem, one forward over the prompt and the reference solution gives,
for every step s, q_s = the probability that the policy sampled at temperature
T writes exactly the right step (its tokens and the step delimiter) after the
right steps before it. From those, with no generation:
  greedy    every token of the solution is the argmax: the greedy accuracy
  sample    prod q_s: one sample at T is right (beam search / best-of-N N=1)
  step@k    prod (1 - (1 - q_s)^k): a right step is among k samples at every
            step, the ceiling of beam search whose k candidates per step all
            extend right prefixes and whose verifier is perfect
  pass@k    1 - (1 - prod q_s)^k: a right solution among k independent samples
            (the ceiling of best-of-k)
Each is given for the whole solution and for the answer (the steps the answer
depends on only). These compare policies in seconds; `flashtts eval` measures the real thing.

With --results it also says how well a model computes: the share of steps
whose result (from the sign after the last "=" to the step's end, or the boxed
answer) is all argmax after the right steps before it, per operator, and the
share whose other tokens (the definition and values it restates) are. That is
what a verifier's body must get right where the policy slips.

Run: .venv-ref/bin/python tools/arith/coverage.py --policy models/policy \
         [--dataset build-arith/val100.jsonl | --n 100] [--temperature 0.8] [--k 16] [--results]
"""
from __future__ import annotations

import argparse
import json
import math
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import data  # noqa: E402
import tokenizer as arith_tok  # noqa: E402


def step_spans(tok, p: data.Problem):
    """The ids of p's prompt and reference solution, and per step its token
    span (start, result start, end): the result from data.result_start, the
    end after the step delimiter (the last step's: after the closing
    <|im_end|>)."""
    prompt = tok.encode(arith_tok.chat_prompt(p.text), add_special_tokens=False)
    steps = data.solution_steps(p)
    pieces = [s + data.STEP_DELIMITER for s in steps[:-1]] + [steps[-1] + "<|im_end|>"]
    # Ids as training saw them (train_policy.encode_example): the prompt and the
    # solution tokenised apart. Step bounds come from tokenising the solution so
    # far, not each piece alone, in case BPE merges across a boundary.
    ids, spans = list(prompt), []
    for i, st in enumerate(steps):
        done = "".join(pieces[:i])
        result = len(prompt) + len(tok.encode(done + st[:data.result_start(st)], add_special_tokens=False))
        full = prompt + tok.encode(done + pieces[i], add_special_tokens=False)
        spans.append((len(ids), result, len(full)))
        ids = full
    return ids, spans


def step_logprobs(torch, logits, ids, spans, temperatures):
    """Per temperature, the list of (log q_s, all-argmax) for each step of
    step_spans' spans, from the model's logits over ids."""
    target = torch.tensor(ids[1:])
    out = {}
    for t in temperatures:
        lp = torch.log_softmax(logits[:-1] / t, dim=-1).gather(1, target[:, None])[:, 0]
        arg = logits[:-1].argmax(-1) == target
        out[t] = [(lp[a - 1:b - 1].sum().item(), bool(arg[a - 1:b - 1].all())) for a, _, b in spans]
    return out


def result_hits(torch, logits, ids, spans, p: data.Problem):
    """(operator, result all argmax, the rest of the step all argmax) for each
    step of step_spans' spans; the operator of the final step is "answer"."""
    arg = logits[:-1].argmax(-1) == torch.tensor(ids[1:])
    ops = [o.op for o in p.ops] + ["answer"]
    return [(op, bool(arg[r - 1:b - 1].all()), bool(arg[a - 1:r - 1].all())) for op, (a, r, b) in zip(ops, spans)]


def relevant_steps(p: data.Problem) -> list:
    """Per step of p's solution: does the answer depend on it? (The final
    step always counts.) A wrong irrelevant step leaves the answer right."""
    need = {p.last}
    for o in reversed(p.ops):
        if o.x in need:
            need |= {o.y} | ({o.z} if isinstance(o.z, str) else set())
    return [o.x in need for o in p.ops] + [True]


def summarise(per_problem, ks):
    n = len(per_problem)
    res = {"greedy": sum(all(g for _, g in steps) for steps in per_problem) / n,
           "sample": sum(math.exp(sum(lq for lq, _ in steps)) for steps in per_problem) / n}
    for k in ks:
        res[f"step@{k}"] = sum(math.prod(1 - (1 - math.exp(lq)) ** k for lq, _ in steps)
                               for steps in per_problem) / n
        res[f"pass@{k}"] = sum(1 - (1 - math.exp(sum(lq for lq, _ in steps))) ** k for steps in per_problem) / n
    # Steps the policy almost never gets right after right steps: search cannot recover them.
    qs = [math.exp(lq) for steps in per_problem for lq, _ in steps]
    res["steps_q<1/16"] = sum(q < 1 / 16 for q in qs) / len(qs)
    return res


def result_accuracy(hits) -> dict:
    """Over result_hits' triples: the share of steps whose result the model
    computes (all argmax), per operator and over all ("all"); and whose
    other tokens, the restated definition and values, it copies ("copied")."""
    res = {op: sum(ok for o, ok, _ in hits if o == op) / max(1, sum(o == op for o, _, _ in hits))
           for op in ("+", "-", "*", "answer")}
    res["all"] = sum(ok for _, ok, _ in hits) / len(hits)
    res["copied"] = sum(ok for _, _, ok in hits) / len(hits)
    return res


def coverage(policy: str, problems, temperatures, ks, threads: int = 2, results: bool = False):
    """Per temperature, summarise() over whole solutions and over the answer's
    steps; and result_accuracy() when `results` (else None). One forward per
    problem serves both."""
    import torch
    from transformers import AutoTokenizer, Qwen2ForCausalLM
    torch.set_num_threads(threads)
    tok = AutoTokenizer.from_pretrained(policy)
    model = Qwen2ForCausalLM.from_pretrained(policy, torch_dtype=torch.float32).eval()
    full = {t: [] for t in temperatures}
    answer = {t: [] for t in temperatures}
    hits = []
    for p in problems:
        ids, spans = step_spans(tok, p)
        with torch.no_grad():
            logits = model(input_ids=torch.tensor([ids])).logits[0].double()
        keep = relevant_steps(p)
        for t, steps in step_logprobs(torch, logits, ids, spans, temperatures).items():
            full[t].append(steps)
            answer[t].append([s for s, k in zip(steps, keep) if k])
        if results:
            hits += result_hits(torch, logits, ids, spans, p)
    return ({t: (summarise(full[t], ks), summarise(answer[t], ks)) for t in temperatures},
            result_accuracy(hits) if results else None)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--policy", required=True, nargs="+", help="policy folders to compare")
    ap.add_argument("--dataset", default="", help="JSONL of {problem, answer} (default: the first --n held-out)")
    ap.add_argument("--n", type=int, default=100)
    ap.add_argument("--temperature", type=float, nargs="+", default=[0.8])
    ap.add_argument("--k", type=int, nargs="+", default=[4, 16, 64])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--results", action="store_true", help="also the teacher-forced result accuracy per operator")
    a = ap.parse_args()
    if a.dataset:
        with open(a.dataset) as f:
            problems = [data.parse_problem(json.loads(line)["problem"]) for line in f if line.strip()][:a.n]
    else:
        problems = data.test_set()[:a.n]
    for policy in a.policy:
        per_t, results = coverage(policy, problems, a.temperature, a.k, a.threads, a.results)
        for t, both in per_t.items():
            for what, res in zip(("solution", "answer"), both):
                cells = " ".join(f"{k} {v * 100:.1f}" for k, v in res.items())
                print(f"{policy} T={t} {what}: {cells}", flush=True)
        if results:
            cells = " ".join(f"{k} {v * 100:.1f}" for k, v in results.items())
            print(f"{policy} results: {cells}", flush=True)


if __name__ == "__main__":
    main()
