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


def step_logprobs(torch, model, tok, p: data.Problem, temperatures):
    """Per temperature, the list of (log q_s, all-argmax) for each step of p's
    reference solution; the last step also covers the closing <|im_end|>."""
    prompt = tok.encode(arith_tok.chat_prompt(p.text), add_special_tokens=False)
    steps = data.solution_steps(p)
    pieces = [s + data.STEP_DELIMITER for s in steps[:-1]] + [steps[-1] + "<|im_end|>"]
    # Ids as training saw them (train_policy.encode_example): the prompt and the
    # solution tokenised apart. Step bounds come from tokenising the solution so
    # far, not each piece alone, in case BPE merges across a boundary.
    ids, bounds = list(prompt), []
    for i in range(len(pieces)):
        full = prompt + tok.encode("".join(pieces[:i + 1]), add_special_tokens=False)
        bounds.append((len(ids), len(full)))
        ids = full
    with torch.no_grad():
        logits = model(input_ids=torch.tensor([ids])).logits[0].double()
    target = torch.tensor(ids[1:])
    out = {}
    for t in temperatures:
        lp = torch.log_softmax(logits[:-1] / t, dim=-1).gather(1, target[:, None])[:, 0]
        arg = logits[:-1].argmax(-1) == target
        out[t] = [(lp[a - 1:b - 1].sum().item(), bool(arg[a - 1:b - 1].all())) for a, b in bounds]
    return out


def result_bounds(tok, prompt, p: data.Problem):
    """Per step of p's reference solution: its operator ("answer" for the
    final step) and the token span of its result, from data.result_start
    through the step delimiter (or the closing <|im_end|>), in the ids
    prompt + solution."""
    steps = data.solution_steps(p)
    ops = [o.op for o in p.ops] + ["answer"]
    done, out = "", []
    for i, st in enumerate(steps):
        end = data.STEP_DELIMITER if i + 1 < len(steps) else "<|im_end|>"
        a = len(prompt) + len(tok.encode(done + st[:data.result_start(st)], add_special_tokens=False))
        done += st + end
        out.append((ops[i], a, len(prompt) + len(tok.encode(done, add_special_tokens=False))))
    return out


def result_hits(torch, model, tok, p: data.Problem):
    """(operator, result all argmax, the rest of the step all argmax) for each
    step of p's reference solution."""
    prompt = tok.encode(arith_tok.chat_prompt(p.text), add_special_tokens=False)
    bounds = result_bounds(tok, prompt, p)
    ids = prompt + tok.encode(data.solution(p) + "<|im_end|>", add_special_tokens=False)
    with torch.no_grad():
        arg = model(input_ids=torch.tensor([ids])).logits[0, :-1].argmax(-1) == torch.tensor(ids[1:])
    starts = [len(prompt)] + [b for _, _, b in bounds[:-1]]
    return [(op, bool(arg[a - 1:b - 1].all()), bool(arg[s - 1:a - 1].all())) for (op, a, b), s in zip(bounds, starts)]


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


def load(torch, policy: str, threads: int):
    from transformers import AutoTokenizer, Qwen2ForCausalLM
    torch.set_num_threads(threads)
    return (AutoTokenizer.from_pretrained(policy),
            Qwen2ForCausalLM.from_pretrained(policy, torch_dtype=torch.float32).eval())


def result_accuracy(policy: str, problems, threads: int = 2) -> dict:
    """Share of reference steps whose result the model computes (all argmax),
    per operator and over all ("all"); and whose other tokens, the restated
    definition and values, it copies ("copied")."""
    import torch
    tok, model = load(torch, policy, threads)
    hits = [h for p in problems for h in result_hits(torch, model, tok, p)]
    res = {op: sum(ok for o, ok, _ in hits if o == op) / max(1, sum(o == op for o, _, _ in hits))
           for op in ("+", "-", "*", "answer")}
    res["all"] = sum(ok for _, ok, _ in hits) / len(hits)
    res["copied"] = sum(ok for _, _, ok in hits) / len(hits)
    return res


def coverage(policy: str, problems, temperatures, ks, threads: int = 2):
    import torch
    tok, model = load(torch, policy, threads)
    full = {t: [] for t in temperatures}
    answer = {t: [] for t in temperatures}
    for p in problems:
        keep = relevant_steps(p)
        for t, steps in step_logprobs(torch, model, tok, p, temperatures).items():
            full[t].append(steps)
            answer[t].append([s for s, k in zip(steps, keep) if k])
    return {t: (summarise(full[t], ks), summarise(answer[t], ks)) for t in temperatures}


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
        for t, both in coverage(policy, problems, a.temperature, a.k, a.threads).items():
            for what, res in zip(("solution", "answer"), both):
                cells = " ".join(f"{k} {v * 100:.1f}" for k, v in res.items())
                print(f"{policy} T={t} {what}: {cells}", flush=True)
        if a.results:
            cells = " ".join(f"{k} {v * 100:.1f}" for k, v in result_accuracy(policy, problems, a.threads).items())
            print(f"{policy} results: {cells}", flush=True)


if __name__ == "__main__":
    main()
