"""Trains the tiny arith PRM in the Qwen2.5-Math-PRM layout flashtts loads
("Qwen2ForProcessRewardModel": Qwen2 body `model.*`, head `score.0` (h,h) ->
ReLU -> `score.2` (2,h), class 1 = good step, read at each `<extra_0>`).

Input (flashtts's `qwen_chat` format, checked id for id against
build/flashtts-prm-input): ChatML system + user problem + assistant =
steps joined by <extra_0> and ended by <extra_0>, then <|im_end|>\n.

Data: the policy's own sampled solutions (temperature --temperature),
labelled step by step with data.label_steps (1 up to the first wrong step, 0
from there), plus reference solutions with one step corrupted
(data.corrupt_step), plus clean reference solutions.

Run: .venv-ref/bin/python tools/arith/train_prm.py --policy models/policy --out models/prm \
         [--samples 4000] [--steps 1500]
"""
from __future__ import annotations

import argparse
import copy
import json
import os
import random
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import data  # noqa: E402
import tokenizer as arith_tok  # noqa: E402
from train_policy import make_optimizer, seed_all  # noqa: E402

TAG = "<extra_0>"


def prm_text(problem: str, steps) -> str:
    return arith_tok.chat_prompt(problem) + TAG.join(steps) + TAG + "<|im_end|>\n"


class PRM:
    """Qwen2Model + the score head; state-dict names as in Qwen2.5-Math-PRM."""

    def __init__(self, cfg):
        import torch
        from transformers import Qwen2Model

        class Net(torch.nn.Module):
            def __init__(self):
                super().__init__()
                self.model = Qwen2Model(cfg)
                h = cfg.hidden_size
                self.score = torch.nn.Sequential(torch.nn.Linear(h, h), torch.nn.ReLU(), torch.nn.Linear(h, 2))

            def forward(self, input_ids, attention_mask, hidden_at=None):
                out = self.model(input_ids=input_ids, attention_mask=attention_mask,
                                 output_hidden_states=hidden_at is not None)
                scores = self.score(out.last_hidden_state)
                return scores if hidden_at is None else (scores, out.hidden_states[hidden_at])

        self.net = Net()
        self.cfg = cfg

    def load_weights(self, folder: str) -> None:
        """The weights of a PRM folder saved by save(), as f32."""
        from safetensors.torch import load_file
        sd = load_file(os.path.join(folder, "model.safetensors"))
        self.net.load_state_dict({k: v.float() for k, v in sd.items()})

    def save(self, out: str, dtype: str) -> None:
        import torch
        from safetensors.torch import save_file
        dt = torch.bfloat16 if dtype == "bfloat16" else torch.float32
        sd = {k: v.detach().to(dt).contiguous() for k, v in self.net.state_dict().items()}
        save_file(sd, os.path.join(out, "model.safetensors"), metadata={"format": "pt"})
        c = self.cfg.to_dict()
        c["architectures"] = ["Qwen2ForProcessRewardModel"]
        c["torch_dtype"] = dtype
        c["tie_word_embeddings"] = False
        c.pop("num_labels", None)
        with open(os.path.join(out, "config.json"), "w") as f:
            json.dump(c, f, indent=2)


def sample_policy(policy_dir: str, problems, temperature: float, batch: int, max_new: int):
    """The policy's own solutions (transformers sampling)."""
    import torch
    from transformers import AutoTokenizer, Qwen2ForCausalLM
    tok = AutoTokenizer.from_pretrained(policy_dir)
    tok.padding_side = "left"
    model = Qwen2ForCausalLM.from_pretrained(policy_dir, torch_dtype=torch.float32).eval()
    eos = tok.convert_tokens_to_ids("<|im_end|>")
    out = []
    with torch.no_grad():
        for s in range(0, len(problems), batch):
            chunk = problems[s:s + batch]
            enc = tok([arith_tok.chat_prompt(p.text) for p in chunk], return_tensors="pt", padding=True,
                      add_special_tokens=False)
            gen = model.generate(**enc, max_new_tokens=max_new, do_sample=True, temperature=temperature,
                                 top_p=1.0, top_k=0, eos_token_id=eos, pad_token_id=tok.pad_token_id)
            for p, row in zip(chunk, gen[:, enc["input_ids"].shape[1]:]):
                out.append((p, tok.decode(row, skip_special_tokens=True)))
    return out


def policy_samples(policy_dir, probs, temperature, sample_batch, max_new, cache):
    """The policy's solutions to `probs`, read from `cache` (JSONL) when it
    exists, else sampled and written there (sampling is the slow part)."""
    if cache and os.path.exists(cache):
        with open(cache) as f:
            rows = [json.loads(line) for line in f]
        return [(data.parse_problem(r["problem"]), r["text"]) for r in rows]
    out = sample_policy(policy_dir, probs, temperature, sample_batch, max_new)
    if cache:
        with open(cache, "w") as f:
            for p, text in out:
                f.write(json.dumps({"problem": p.text, "text": text}) + "\n")
    return out


def token_labels(tok, p, steps, step_labels, tag_id):
    """The PRM input of (p, steps) with its supervised positions: every step
    tag, labelled with its step's label (what the PRM is read at), and every
    token of the steps, labelled 1 while the text so far is still the prefix
    of a right step after right steps (dense supervision: the model learns
    where a step goes wrong, not only that it did). Returns (ids, positions,
    labels, is_tag) or None when the pieces do not tokenize as the whole."""
    refs = data.solution_steps(p)
    ids = tok.encode(arith_tok.chat_prompt(p.text), add_special_tokens=False)
    pos, lab, is_tag = [], [], []
    ok = True
    for step, label in zip(steps, step_labels):
        sids = tok.encode(step, add_special_tokens=False)
        for j in range(len(sids)):
            pre = tok.decode(sids[:j + 1]).lstrip()
            pos.append(len(ids) + j)
            lab.append(int(ok and any(r.startswith(pre) for r in refs)))
            is_tag.append(False)
        ids += sids
        pos.append(len(ids))
        lab.append(label)
        is_tag.append(True)
        ids.append(tag_id)
        ok = ok and bool(label)
    ids += tok.encode("<|im_end|>\n", add_special_tokens=False)
    if ids != tok.encode(prm_text(p.text, steps), add_special_tokens=False):
        return None
    return ids, pos, lab, is_tag


def synthetic_example(rng, errors=None, corrupt=0.6, slip=0.8):
    """A reference solution of a fresh training problem, with probability
    `corrupt` one step made wrong (with probability `slip` the way the policy
    slips, from `errors`; else data.corrupt_step) and, half the time, the
    steps after it dropped. Returns (problem, steps, labels)."""
    p = data.sample_problem(rng, 1, 6)
    steps = data.solution_steps(p)
    if rng.random() < corrupt:  # later steps stay as they were (labels 0 from there)
        i = rng.randrange(len(steps))
        steps[i] = data.slip_step(rng, steps[i], errors) if errors and rng.random() < slip \
            else data.corrupt_step(rng, steps[i])
        if rng.random() < 0.5:
            steps = steps[:i + 1]
    return p, steps, data.label_steps(p, steps)


def sibling_pair(rng, errors, slips, slip_frac):
    """Two candidates for the same next step after the same right steps, as
    beam search sees them: the right step and a wrong one. With probability
    `slip_frac` the wrong one is a step the policy really wrote (`slips`:
    (problem, steps up to its first wrong step)); else a fresh problem's step
    slipped like the policy (data.slip_step) or corrupted (data.corrupt_step).
    Returns (problem, right steps, wrong steps)."""
    if slips and rng.random() < slip_frac:
        p, steps = rng.choice(slips)
        ref = data.solution_steps(p)
        k = len(steps) - 1
        if k < len(ref):
            return p, ref[:k + 1], ref[:k] + [steps[k]]
    p = data.sample_problem(rng, 1, 6)
    ref = data.solution_steps(p)
    k = rng.randrange(len(ref))
    bad = data.slip_step(rng, ref[k], errors) if rng.random() < 0.8 else data.corrupt_step(rng, ref[k])
    return p, ref[:k + 1], ref[:k] + [bad]


def local_example(rng, errors, n):
    """`n` computation steps of unrelated fresh problems, each slipped or
    corrupted with probability 1/2, labelled by their own arithmetic only
    (is the result the written operands' result?). Packed with a step tag
    after each, without a prompt, they teach the one check that catches the
    policy's errors, at a label per step instead of a label per solution."""
    steps, labels = [], []
    while len(steps) < n:
        p = data.sample_problem(rng, 1, 6)
        s = rng.choice(data.solution_steps(p)[:-1])
        if rng.random() < 0.5:
            s = data.slip_step(rng, s, errors) if rng.random() < 0.8 else data.corrupt_step(rng, s)
        ok = data.arithmetic_ok(s)
        if ok is not None:
            steps.append(s)
            labels.append(int(ok))
    return steps, labels


def labelled_samples(samples):
    """(problem, steps, labels) of the policy's own solutions."""
    out = []
    for p, text in samples:
        steps = [s.replace(TAG, "") for s in data.split_steps(text)][:12]
        if steps:
            out.append((p, steps, data.label_steps(p, steps)))
    return out


def build_examples(rng, policy_dir, n_samples, temperature, n_synth, sample_batch, max_new, cache=""):
    """(problem, steps, labels) triples: the policy's samples, then synthetic ones."""
    ex = []
    probs = [data.sample_problem(rng, 1, 6) for _ in range(n_samples)]
    if policy_dir and n_samples:
        ex = labelled_samples(policy_samples(policy_dir, probs, temperature, sample_batch, max_new, cache))
    return ex + [synthetic_example(rng, corrupt=0.6, slip=0.0) for _ in range(n_synth)]


def score_one(torch, net, ids):
    """The score head's two logits at every position of one sequence."""
    return net(torch.tensor([ids]), torch.ones(1, len(ids), dtype=torch.long))[0]


def step_accuracy(torch, net, val_sets) -> dict:
    """Per validation set: the share of step tags classified right, and of the
    first wrong steps (the ones search must catch) classified wrong."""
    net.eval()
    out = {}
    with torch.no_grad():
        for name, rows in val_sets.items():
            right = total = caught = first = 0
            for ids, pos, labels, is_tag in rows:
                tag_pos = [q for q, t in zip(pos, is_tag) if t]
                tag_lab = [v for v, t in zip(labels, is_tag) if t]
                pred = score_one(torch, net, ids)[tag_pos].argmax(-1).tolist()
                right += sum(int(p == l) for p, l in zip(pred, tag_lab))
                total += len(tag_lab)
                if 0 in tag_lab:
                    k = tag_lab.index(0)
                    first += 1
                    caught += int(pred[k] == 0)
            out[name] = {"steps": round(right / max(1, total), 4), "first_wrong_caught": round(caught / max(1, first), 4)}
    return out


def pair_accuracy(torch, net, val_pairs) -> dict:
    """Per set of sibling pairs: how often the right step scores above the wrong one."""
    net.eval()
    out = {}
    with torch.no_grad():
        for name, pairs in val_pairs.items():
            won = 0
            for pr in pairs:
                sc = []
                for ids, pos, _, _ in pr:
                    lg = score_one(torch, net, ids)[pos[-1]]
                    sc.append((lg[1] - lg[0]).item())
                won += int(sc[0] > sc[1])
            out[name + "_pairs"] = round(won / max(1, len(pairs)), 4)
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--policy", default="", help="policy folder (tokenizer + solutions to label); '' = synthetic only")
    ap.add_argument("--tokenizer", default="", help="tokenizer folder (default: --policy)")
    ap.add_argument("--out", required=True)
    ap.add_argument("--samples", type=int, default=4000, help="policy solutions sampled and labelled")
    ap.add_argument("--synthetic", type=int, default=4000, help="reference solutions, most with a corrupted step")
    ap.add_argument("--temperature", type=float, default=0.8)
    ap.add_argument("--sample-batch", type=int, default=64)
    ap.add_argument("--max-new", type=int, default=200)
    ap.add_argument("--steps", type=int, default=1500)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--hidden", type=int, default=128)
    ap.add_argument("--layers", type=int, default=4)
    ap.add_argument("--heads", type=int, default=4)
    ap.add_argument("--kv-heads", type=int, default=2)
    ap.add_argument("--inter", type=int, default=256)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--dtype", choices=["float32", "bfloat16"], default="float32")
    ap.add_argument("--samples-file", default="", help="JSONL cache of the policy's samples (read if it exists)")
    ap.add_argument("--token-labels", type=int, default=1,
                    help="1: also supervise every step token with 'still right so far' (0: step tags only)")
    ap.add_argument("--init", default="", help="continue from this PRM folder (its weights)")
    ap.add_argument("--stream", action="store_true",
                    help="fresh synthetic solutions every batch, slipped like the policy (see data.slip_step), "
                         "mixed with the policy's samples (--sample-frac); default: a fixed set of examples")
    ap.add_argument("--sample-frac", type=float, default=0.25, help="--stream: share of the policy's own solutions")
    ap.add_argument("--local", type=int, default=0,
                    help="--stream: train on K packed steps of unrelated problems, no prompt, each labelled by "
                         "its own arithmetic (a curriculum before --pairs)")
    ap.add_argument("--pairs", action="store_true",
                    help="--stream: train on sibling pairs (right vs wrong next step after the same right steps) "
                         "with a ranking loss, plus --bce-weight times the step-label loss")
    ap.add_argument("--bce-weight", type=float, default=0.5)
    ap.add_argument("--extra-layers", type=int, default=0,
                    help="layers added on top of the policy's body (identity at start) for the PRM to compare in")
    ap.add_argument("--lm-weight", type=float, default=0.0,
                    help="--pairs: weight of a next-token loss on the right siblings, at the top of the policy's layers")
    ap.add_argument("--save-every", type=int, default=0, help="save (and report) every K steps, not only at the end")
    ap.add_argument("--body", default="",
                    help="causal LM folder whose layers become the PRM's body (default: --policy); a stronger "
                         "arithmetician than the policy, as Qwen2.5-Math-PRM-7B starts from a larger model than its policy")
    ap.add_argument("--fresh", action="store_true",
                    help="random PRM body (default: start from the policy's body, which already reads the task)")
    a = ap.parse_args()

    import torch
    from transformers import AutoTokenizer, Qwen2Config
    torch.set_num_threads(a.threads)
    seed_all(a.seed)
    t0 = time.time()
    arith_tok.copy_files(a.tokenizer or a.policy, a.out)
    tok = AutoTokenizer.from_pretrained(a.out)
    tag_id = tok.convert_tokens_to_ids(TAG)
    pad_id = tok.convert_tokens_to_ids("<|endoftext|>")
    rng = random.Random(a.seed + 3)

    def encode(e):
        p, steps, labels = e
        r = token_labels(tok, p, steps, labels, tag_id)
        if r is None or a.token_labels:
            return r
        ids, pos, lab, is_tag = r
        return ids, [q for q, t in zip(pos, is_tag) if t], [v for v, t in zip(lab, is_tag) if t], [True] * sum(is_tag)

    held = set(p.text for p in data.test_set())
    if a.stream:
        # Fresh synthetic solutions every batch (no epochs to overfit), slipped
        # the way the policy slips, plus the policy's own labelled solutions.
        probs = [data.sample_problem(rng, 1, 6) for _ in range(a.samples)]
        pol = labelled_samples(policy_samples(a.policy, probs, a.temperature, a.sample_batch, a.max_new,
                                              a.samples_file))
        pol = [e for e in pol if e[0].text not in held]
        split = max(1, len(pol) // 20)
        pol_val, pol_train = pol[:split], pol[split:]
        errors = data.result_errors([(p, data.STEP_DELIMITER.join(st)) for p, st, _ in pol_train])
        print(f"{len(pol_train)} policy solutions to train on, {len(pol_val)} held out; slips "
              f"{ {k: len(v) for k, v in errors.items()} }", flush=True)
        vrng = random.Random(a.seed + 7)
        synth_val = [e for e in (synthetic_example(vrng, errors) for _ in range(400)) if e[0].text not in held]
        val_sets = {"policy": [encode(e) for e in pol_val], "synthetic": [encode(e) for e in synth_val]}

        def slips_of(rows):  # (problem, steps up to the first wrong one) of the policy's wrong solutions
            return [(p, st[:lab.index(0) + 1]) for p, st, lab in rows if 0 in lab]

        slips = slips_of(pol_train)

        def encode_pair(pr):
            p, good, bad = pr
            return [encode((p, st, data.label_steps(p, st))) for st in (good, bad)]

        val_pairs = {"policy": [encode_pair(sibling_pair(vrng, errors, slips_of(pol_val), 1.0)) for _ in range(300)],
                     "synthetic": [encode_pair(sibling_pair(vrng, errors, [], 0.0)) for _ in range(300)]}
        val_pairs = {k: [pr for pr in v if None not in pr] for k, v in val_pairs.items()}

        def encode_local(steps, labels):
            ids, pos = [], []
            for st in steps:
                ids += tok.encode(st, add_special_tokens=False)
                pos.append(len(ids))
                ids.append(tag_id)
            return ids, pos, labels, [True] * len(pos)

        def draw_pair():
            while True:
                pr = sibling_pair(rng, errors, slips, a.sample_frac)
                if pr[0].text not in held and None not in (e := encode_pair(pr)):
                    return e

        def draw_stream():
            while True:
                e = rng.choice(pol_train) if rng.random() < a.sample_frac else synthetic_example(rng, errors)
                if e[0].text not in held and (r := encode(e)) is not None:
                    return r

        def draw_local():
            return encode_local(*local_example(rng, errors, a.local))

        draw = draw_local if a.local else draw_stream
        if a.local:
            lrng = random.Random(a.seed + 9)
            val_sets["local"] = [encode_local(*local_example(lrng, errors, a.local)) for _ in range(100)]
        n_ex, n_pos, n_lab = len(pol), sum(sum(l) for _, _, l in pol), sum(len(l) for _, _, l in pol)
    else:
        ex = build_examples(rng, a.policy, a.samples, a.temperature, a.synthetic, a.sample_batch, a.max_new,
                            a.samples_file)
        ex = [e for e in ex if e[0].text not in held]
        n_ex, n_pos, n_lab = len(ex), sum(sum(l) for _, _, l in ex), sum(len(l) for _, _, l in ex)
        print(f"{n_ex} solutions, {n_lab} steps, {n_pos / max(1, n_lab):.2f} good; {time.time() - t0:.0f}s",
              flush=True)
        enc = [r for r in map(encode, ex) if r is not None]
        print(f"{len(enc)} encoded, {sum(len(e[1]) for e in enc)} supervised positions", flush=True)
        order = list(range(len(enc)))
        rng.shuffle(order)
        split = max(1, len(enc) // 20)  # 5% held out for the step accuracy
        val_sets = {"held-out": [enc[j] for j in order[:split]]}
        train = order[split:]

        def draw():
            return enc[rng.choice(train)]
        val_pairs = {}
    cfg = Qwen2Config(vocab_size=len(tok), hidden_size=a.hidden, intermediate_size=a.inter,
                      num_hidden_layers=a.layers, num_attention_heads=a.heads, num_key_value_heads=a.kv_heads,
                      max_position_embeddings=512, rope_theta=10000.0, rms_norm_eps=1e-6,
                      tie_word_embeddings=False, use_sliding_window=False, bos_token_id=pad_id,
                      eos_token_id=tok.convert_tokens_to_ids("<|im_end|>"), pad_token_id=pad_id)
    if a.policy and not a.fresh:
        from transformers import Qwen2ForCausalLM
        pol = Qwen2ForCausalLM.from_pretrained(a.body or a.policy, torch_dtype=torch.float32)
        body_layers = pol.config.num_hidden_layers
        cfg = Qwen2Config(**{**pol.config.to_dict(), "tie_word_embeddings": False,
                             "num_hidden_layers": body_layers + a.extra_layers})
        prm = PRM(cfg)
        prm.net.model.load_state_dict(pol.model.state_dict(), strict=a.extra_layers == 0)
        for layer in prm.net.model.layers[body_layers:]:
            # New layers start as the identity (their residual branches output 0),
            # so the PRM starts out reading exactly the policy's final states.
            torch.nn.init.zeros_(layer.self_attn.o_proj.weight)
            torch.nn.init.zeros_(layer.mlp.down_proj.weight)
        if a.lm_weight:
            # Keep the policy's layers an ever better arithmetician: next-token
            # loss on right solutions at their top, through a copy of the
            # policy's final norm and its (tied) embedding; neither is saved.
            lm_norm = copy.deepcopy(pol.model.norm)
        print(f"PRM body from {a.body or a.policy}" + (f" + {a.extra_layers} new layers" if a.extra_layers else ""),
              flush=True)
        del pol
    else:
        prm = PRM(cfg)
    if a.lm_weight and not (a.policy and not a.fresh and a.pairs):
        raise SystemExit("--lm-weight needs --pairs and the policy's body")
    if (a.pairs or a.local) and not a.stream or a.pairs and a.local:
        raise SystemExit("--pairs and --local are --stream modes, one at a time")
    if a.init:
        prm.load_weights(a.init)
        print(f"PRM weights from {a.init}", flush=True)
    net = prm.net
    params = list(net.parameters()) + (list(lm_norm.parameters()) if a.lm_weight else [])
    opt, sched = make_optimizer(params, a.lr, a.steps)
    header = len(tok.encode("<|im_start|>assistant\n", add_special_tokens=False))
    tail = len(tok.encode("<|im_end|>\n", add_special_tokens=False))
    start_id = tok.convert_tokens_to_ids("<|im_start|>")
    net.train()
    for step in range(1, a.steps + 1):
        b = [e for _ in range(a.batch // 2) for e in draw_pair()] if a.pairs else [draw() for _ in range(a.batch)]
        n = max(len(ids) for ids, _, _, _ in b)
        x = torch.full((len(b), n), pad_id, dtype=torch.long)
        m = torch.zeros((len(b), n), dtype=torch.long)
        rows, cols, ys, tags = [], [], [], []
        for i, (ids, pos, labels, is_tag) in enumerate(b):
            x[i, :len(ids)] = torch.tensor(ids)
            m[i, :len(ids)] = 1
            rows += [i] * len(pos)
            cols += pos
            ys += labels
            tags += is_tag
        if a.lm_weight:
            logits, body = net(x, m, hidden_at=body_layers)
        else:
            logits = net(x, m)
        ce = torch.nn.functional.cross_entropy(logits[rows, cols], torch.tensor(ys), reduction="none")
        tag = torch.tensor(tags)
        # The step tags (what inference reads) and the step tokens weigh alike.
        loss = ce[tag].mean() + (ce[~tag].mean() if (~tag).any() else 0.0)
        if a.pairs:  # rank the right sibling above the wrong one at their last step tag
            last = logits[torch.arange(len(b)), torch.tensor([e[1][-1] for e in b])]
            margin = last[:, 1] - last[:, 0]
            loss = a.bce_weight * loss + torch.nn.functional.softplus(margin[1::2] - margin[0::2]).mean()
        if a.lm_weight:  # the right siblings (even rows) are right solutions: next-token loss on their steps
            lr_, lc, lt = [], [], []
            for i in range(0, len(b), 2):
                ids = b[i][0]
                first = max(j for j, t in enumerate(ids) if t == start_id) + header
                for t in range(first - 1, len(ids) - tail - 1):
                    if ids[t + 1] != tag_id:
                        lr_.append(i)
                        lc.append(t)
                        lt.append(ids[t + 1])
            lm_logits = torch.nn.functional.linear(lm_norm(body[lr_, lc]), net.model.embed_tokens.weight)
            loss = loss + a.lm_weight * torch.nn.functional.cross_entropy(lm_logits, torch.tensor(lt))
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        sched.step()
        if step % 50 == 0 or step == 1:
            print(f"step {step} loss {loss.item():.4f} {time.time() - t0:.0f}s", flush=True)
        if a.save_every and step % a.save_every == 0 and step < a.steps:
            figures = {**step_accuracy(torch, net, val_sets), **pair_accuracy(torch, net, val_pairs)}
            net.train()
            prm.save(a.out, a.dtype)
            print(f"step {step} saved to {a.out}: {json.dumps(figures)}", flush=True)
    figures = {**step_accuracy(torch, net, val_sets), **pair_accuracy(torch, net, val_pairs)}
    prm.save(a.out, a.dtype)
    summary = {"solutions": n_ex, "steps_labelled": n_lab, "good_fraction": round(n_pos / max(1, n_lab), 3),
               "train_steps": a.steps, "batch": a.batch, "lr": a.lr, "stream": a.stream,
               "mode": "pairs" if a.pairs else "local" if a.local else "stream" if a.stream else "fixed", "init": a.init,
               "token_labels": a.token_labels, "body": "random" if a.fresh or not a.policy else a.body or "policy",
               "extra_layers": a.extra_layers,
               "val_step_accuracy": figures, "seed": a.seed, "seconds": round(time.time() - t0)}
    print(json.dumps(summary), flush=True)
    with open(os.path.join(a.out, "train_summary.json"), "w") as f:
        json.dump(summary, f, indent=1)


if __name__ == "__main__":
    main()
