"""Trains the tiny arith policy: a Qwen2ForCausalLM on ChatML problem ->
solution pairs (tools/arith/data.py), CPU, seeded. Saves a Hugging Face folder
(config.json, generation_config.json, model.safetensors, tokenizer files).

Run: .venv-ref/bin/python tools/arith/train_policy.py --out models/policy \
         [--steps 1500] [--hidden 128] [--layers 4] [--eval 500]
The loss covers the solution and the closing <|im_end|> only.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import random
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import data  # noqa: E402
import tokenizer as arith_tok  # noqa: E402


def seed_all(seed: int) -> None:
    import numpy as np
    import torch
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def make_optimizer(params, lr: float, steps: int):
    """AdamW with a linear warm-up (a tenth of the steps, at most 100) and a
    cosine decay to zero at `steps`: what both arith trainers use."""
    import torch
    opt = torch.optim.AdamW(params, lr=lr, betas=(0.9, 0.98), weight_decay=0.01)
    warm = min(100, steps // 10 + 1)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min(1.0, (s + 1) / warm) * 0.5 * (1 + math.cos(math.pi * min(1.0, s / steps))))
    return opt, sched


def make_model(vocab: int, hidden: int, layers: int, heads: int, kv_heads: int, inter: int, ids: dict):
    from transformers import Qwen2Config, Qwen2ForCausalLM
    cfg = Qwen2Config(vocab_size=vocab, hidden_size=hidden, intermediate_size=inter, num_hidden_layers=layers,
                      num_attention_heads=heads, num_key_value_heads=kv_heads, max_position_embeddings=512,
                      rope_theta=10000.0, rms_norm_eps=1e-6, tie_word_embeddings=True, use_sliding_window=False,
                      bos_token_id=ids["<|endoftext|>"], eos_token_id=ids["<|im_end|>"],
                      pad_token_id=ids["<|endoftext|>"], torch_dtype="float32")
    return Qwen2ForCausalLM(cfg)


def result_spans(solution: str) -> list:
    """(start, end) character spans of each step's result in a reference
    solution (data.result_start to the step's end)."""
    spans, at = [], 0
    for step in solution.split(data.STEP_DELIMITER):
        spans.append((at + data.result_start(step), at + len(step)))
        at += len(step) + len(data.STEP_DELIMITER)
    return spans


def encode_example(tok, p: data.Problem, result_weight: float = 1.0):
    """(prompt ids, target ids, target weights): each target token weighs 1,
    the tokens of a step's result `result_weight` (the digits a verifier's
    body must get right)."""
    prompt = tok.encode(arith_tok.chat_prompt(p.text), add_special_tokens=False)
    sol = data.solution(p)
    enc = tok(sol + "<|im_end|>", add_special_tokens=False, return_offsets_mapping=True)
    spans = result_spans(sol)
    weights = [result_weight if any(a <= s < b for a, b in spans) else 1.0 for s, _ in enc["offset_mapping"]]
    return prompt, enc["input_ids"], weights


def batch_tensors(examples, pad_id):
    """Right-padded ids, labels (-100 off the target), attention mask and
    per-position loss weights (0 off the target) of encode_example's triples."""
    import torch
    n = max(len(a) + len(b) for a, b, _ in examples)
    ids = torch.full((len(examples), n), pad_id, dtype=torch.long)
    labels = torch.full((len(examples), n), -100, dtype=torch.long)
    mask = torch.zeros((len(examples), n), dtype=torch.long)
    weights = torch.zeros((len(examples), n))
    for i, (a, b, w) in enumerate(examples):
        seq = a + b
        ids[i, :len(seq)] = torch.tensor(seq)
        labels[i, len(a):len(seq)] = torch.tensor(b)
        weights[i, len(a):len(seq)] = torch.tensor(w)
        mask[i, :len(seq)] = 1
    return ids, labels, mask, weights


def weighted_loss(logits, labels, weights):
    """Next-token cross-entropy, each target position weighted, over the sum of the weights."""
    import torch
    ce = torch.nn.functional.cross_entropy(logits[:, :-1].flatten(0, 1), labels[:, 1:].flatten(),
                                           ignore_index=-100, reduction="none")
    w = weights[:, 1:].flatten()
    return (ce * w).sum() / w.sum()


def greedy_accuracy(model, tok, problems, batch: int = 100, max_new: int = 200, want_texts: bool = False):
    """Greedy decoding with transformers (left padding, KV cache)."""
    import torch
    tok.padding_side = "left"
    correct, texts = 0, []
    model.eval()
    eos = tok.convert_tokens_to_ids("<|im_end|>")
    with torch.no_grad():
        for s in range(0, len(problems), batch):
            chunk = problems[s:s + batch]
            enc = tok([arith_tok.chat_prompt(p.text) for p in chunk], return_tensors="pt", padding=True,
                      add_special_tokens=False)
            out = model.generate(**enc, max_new_tokens=max_new, do_sample=False, eos_token_id=eos,
                                 pad_token_id=tok.pad_token_id)
            for p, row in zip(chunk, out[:, enc["input_ids"].shape[1]:]):
                text = tok.decode(row, skip_special_tokens=True)
                texts.append(text)
                correct += data.extract_answer(text) == p.answer
    model.train()
    return (correct / len(problems), texts) if want_texts else correct / len(problems)


def save_policy(model, tok_dir: str, out: str) -> None:
    """A Hugging Face folder: the weights, generation config and the tokenizer files of tok_dir."""
    model.save_pretrained(out, safe_serialization=True)
    model.generation_config.save_pretrained(out)
    if os.path.abspath(tok_dir) != os.path.abspath(out):
        arith_tok.copy_files(tok_dir, out)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    ap.add_argument("--steps", type=int, default=1500)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--hidden", type=int, default=128)
    ap.add_argument("--layers", type=int, default=4)
    ap.add_argument("--heads", type=int, default=4)
    ap.add_argument("--kv-heads", type=int, default=2)
    ap.add_argument("--inter", type=int, default=384)
    ap.add_argument("--vocab", type=int, default=512, help="BPE vocab size asked of the tokenizer trainer")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--eval", type=int, default=500, help="held-out problems for the final greedy accuracy (0 = none)")
    ap.add_argument("--eval-every", type=int, default=0, help="greedy accuracy on 100 held-out problems every K steps")
    ap.add_argument("--max-minutes", type=float, default=0, help="stop training after this long (0 = no limit)")
    ap.add_argument("--stop-at", type=int, default=0,
                    help="stop after this step of the --steps schedule (0 = run it all): remakes a run that "
                         "--max-minutes cut short, on any machine")
    ap.add_argument("--save-at", type=int, nargs="*", default=[],
                    help="also save the policy as it is after these steps, into OUT/step-K")
    ap.add_argument("--dtype", choices=["float32", "bfloat16"], default="float32")
    ap.add_argument("--init", default="", help="continue from this policy folder (its weights and tokenizer)")
    ap.add_argument("--min-ops", type=int, default=1,
                    help="fewest further variables of a training problem (the benchmark has 2..6; more steps "
                         "per problem means more arithmetic per sequence)")
    ap.add_argument("--op-weights", type=float, nargs=3, default=None, metavar=("PLUS", "MINUS", "TIMES"),
                    help="relative weights of the operators in training problems (default: uniform, the benchmark)")
    ap.add_argument("--result-weight", type=float, default=1.0,
                    help="loss weight of each step's result tokens against 1 for the rest: >1 trains a "
                         "verifier's body to compute rather than to copy")
    a = ap.parse_args()

    import torch
    torch.set_num_threads(a.threads)
    seed_all(a.seed)
    t0 = time.time()
    from transformers import AutoTokenizer
    if a.init:
        from transformers import Qwen2ForCausalLM
        arith_tok.copy_files(a.init, a.out)
        model = Qwen2ForCausalLM.from_pretrained(a.init, torch_dtype=torch.float32)
    else:
        arith_tok.train(a.out, a.vocab, seed=a.seed + 1)
    tok = AutoTokenizer.from_pretrained(a.out)
    ids = {s: tok.convert_tokens_to_ids(s) for s in arith_tok.SPECIALS}
    if not a.init:
        model = make_model(len(tok), a.hidden, a.layers, a.heads, a.kv_heads, a.inter, ids)
    nparams = sum(p.numel() for p in model.parameters())
    print(f"params {nparams} vocab {len(tok)}", flush=True)
    opt, sched = make_optimizer(model.parameters(), a.lr, a.steps)
    rng = random.Random(a.seed + 2)  # training problems; the held-out set uses data.test_set's own seed
    held = set(p.text for p in data.test_set())
    eval_small = data.test_set()[:100]
    model.train()
    summary_steps = a.steps
    for step in range(1, a.steps + 1):
        ex = []
        while len(ex) < a.batch:
            p = data.sample_problem(rng, a.min_ops, 6, a.op_weights)
            if p.text not in held:
                ex.append(encode_example(tok, p, a.result_weight))
        x, y, m, w = batch_tensors(ex, ids["<|endoftext|>"])
        loss = weighted_loss(model(input_ids=x, attention_mask=m).logits, y, w)
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        if step % 50 == 0 or step == 1:
            print(f"step {step} loss {loss.item():.4f} lr {sched.get_last_lr()[0]:.2e} {time.time() - t0:.0f}s",
                  flush=True)
        if a.max_minutes and time.time() - t0 > 60 * a.max_minutes or step == a.stop_at:
            print(f"stopped at step {step}", flush=True)
            summary_steps = step
            break
        if step in a.save_at:
            save_policy(model, a.out, os.path.join(a.out, f"step-{step}"))
        if a.eval_every and step % a.eval_every == 0:
            print(f"step {step} greedy@100 {greedy_accuracy(model, tok, eval_small):.3f}", flush=True)
    train_s = time.time() - t0
    if a.dtype == "bfloat16":
        model = model.to(torch.bfloat16)
    model.config.torch_dtype = a.dtype
    save_policy(model, a.out, a.out)
    summary = {"params": nparams, "init": a.init, "lr": a.lr, "steps": summary_steps, "batch": a.batch, "seed": a.seed, "train_seconds": round(train_s)}
    if a.eval:
        model = model.float()
        acc = greedy_accuracy(model, tok, data.test_set(a.eval))
        summary["greedy_accuracy"] = acc
        summary["eval_problems"] = a.eval
    summary["total_seconds"] = round(time.time() - t0)
    print(json.dumps(summary), flush=True)
    with open(os.path.join(a.out, "train_summary.json"), "w") as f:
        json.dump(summary, f, indent=1)


if __name__ == "__main__":
    main()
