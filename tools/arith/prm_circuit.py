"""Builds the arith PRM as a verifier over a stronger body (issue 5).

A step is right when every token it writes is the one a good arithmetician
would write next. The PRM's body is such an arithmetician: a causal LM of the
policy's architecture trained longer than the policy and then to compute
results (lm-run8 in docs/arith.md: 95.3% of steps' results right against
the policy's 69.4%), whose likelihood ranks a right step above the
policy's own wrong sibling most of the time.
Learning to read that likelihood from one bit per step did not work in CPU
budgets (docs/arith.md), because at the body's top the written token is
gone: a linear probe recovers a digit at 99.9% after layer 1 but 72% after
layer 4. So this script builds the reading instead of learning it, in the
layout flashtts loads (Qwen2ForProcessRewardModel: body + 2 layers + score
head), all f32 weights of the usual shapes:

1. Reserve: the 34 residual directions the body's outputs use least are
   projected out of every read and write of the body (its norm weights
   folded into the reads), so what is put there passes the body untouched.
   The body's pair ranking stays at 95%.
2. Codes: each checked token (CHECKED: digits and the signs before numbers)
   gets a one-hot code in reserved directions, small beside its embedding,
   so the written token is known exactly at the top; the tokens that end a
   number (ENDS: the step tag and "}.") get minus a sign's code; the "as" of
   "<|im_start|>assistant" gets a code that dwarfs the body's residual there.
3. Layer A, attention: head 0 copies the body's logits for the checked
   tokens and their RIVALS (ending the number) at j-1, what it predicted
   for token j, into reserved directions at j (a previous-token head: a
   constant rotary query and key peaking at distance 1), and a flag that
   token j-1 is a digit; head 2 writes a
   constant ground 100 times the body's residual, so every RMS norm above
   divides by the same number at every position; head 3 reads 1 at and
   after the marker, 0 before it: "this is the answer, not the problem".
4. Layer A, MLP: units (d, e) compute SiLU(logit_e - logit_d) where token d
   is written in the answer (else 0); their negated sum s is 0 where the
   body's own choice was written and about minus the logit gap where not.
   Units (t, e) do the same where a token t of ENDS follows a digit, against
   the body's wish to write another digit e instead: a result cut short.
5. Layer B: head 0 attends with a constant query to low s, a soft minimum
   over everything written so far, into v: the least expected token yet.
   With --window W (shipped: 12) a positional score on its other rotary
   pairs limits that to the last W + 1 positions: the step being scored,
   so each step's score is about that step alone (aggregation "prod").
6. Head: score.0 / score.2 compute sigmoid(f(v)), f nondecreasing and
   piecewise linear (a Calibration: ReLU units at fixed knots of v),
   fitted by maximum likelihood on the policy's labelled samples, read at
   each tag (with --window, on the tags up to each solution's first wrong
   step).

The circuit needs f32 activations (the codes sit 1e-5 below the ground):
the CPU backend runs it; a bf16 GPU backend would lose the codes.

Run: .venv-ref/bin/python tools/arith/prm_circuit.py --body build-arith/lm-run8 --out models/prm \
         --samples-file build-arith/m1500-samples.jsonl --window 12 [--policy models/policy]
"""
from __future__ import annotations

import argparse
import json
import os
import random
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import data  # noqa: E402
import tokenizer as arith_tok  # noqa: E402
from train_prm import PRM, TAG, labelled_samples, policy_samples, prm_text, score_one, synthetic_example  # noqa: E402

# The tokens whose every occurrence in an answer is checked: the digits and the signs before them
# (' ' before a positive number, ' -' and ' (-' before a negative one), where the policy slips.
CHECKED = [str(d) for d in range(10)] + [" ", " -", " (-"]
# What else the body may want instead of a checked token: to end the number (the step delimiter
# it was trained with, or the close of \boxed{}). Compared against, never checked themselves.
RIVALS = ["\n\n", "}."]
# The tokens that end a number, each with the rival it stands for: written right after a digit,
# each is checked against the body's wish to write another digit instead (a result cut short,
# "-81 + (-81) = -16"). The PRM's step tag stands where the body was trained on the delimiter.
ENDS = {TAG: "\n\n", "}.": "}."}
DIGITS = 10  # CHECKED[:DIGITS] are the digits


def basis(torch, body, seqs):
    """Right singular vectors of the body's top residuals, least used last,
    and the residuals' mean RMS."""
    with torch.no_grad():
        x = torch.cat([body.model(input_ids=torch.tensor([s]), output_hidden_states=True)
                       .hidden_states[body.config.num_hidden_layers][0] for s in seqs])
    return torch.linalg.svd(x - x.mean(0), full_matrices=True).Vh, x.pow(2).mean(-1).sqrt().mean().item()


def reserve(torch, prm, body, res):
    """Loads `body` into prm.net.model with the rows of `res` (orthonormal)
    projected out of the embedding, every read (norm weights folded in) and
    every write of every body layer. Returns the folded, projected LM head."""
    m, proj = prm.net.model, torch.eye(res.shape[1]) - res.T @ res
    n = body.config.num_hidden_layers
    with torch.no_grad():
        m.embed_tokens.weight.copy_(body.model.embed_tokens.weight @ proj)
        for mine, theirs in zip(m.layers[:n], body.model.layers):
            mine.load_state_dict(theirs.state_dict())
            for norm, reads in ((mine.input_layernorm, (mine.self_attn.q_proj, mine.self_attn.k_proj,
                                                        mine.self_attn.v_proj)),
                                (mine.post_attention_layernorm, (mine.mlp.gate_proj, mine.mlp.up_proj))):
                for r in reads:
                    r.weight.copy_(r.weight * norm.weight @ proj)
                norm.weight.fill_(1.0)
            for w in (mine.self_attn.o_proj, mine.mlp.down_proj):
                w.weight.copy_(proj @ w.weight)
        return body.model.embed_tokens.weight * body.model.norm.weight @ proj


def code_tokens(torch, prm, ids, code, scale):
    """Adds scale x code row i to the embedding of token ids[i]."""
    with torch.no_grad():
        prm.net.model.embed_tokens.weight[ids] += scale * code


def clear(layer, hd):
    """Zeroes head 0 (and its kv head) of `layer`'s attention and all of its MLP."""
    att = layer.self_attn
    for p in (att.q_proj, att.k_proj, att.v_proj):
        p.weight[:hd].zero_()
        p.bias[:hd].zero_()
    att.o_proj.weight.zero_()
    for p in (layer.mlp.gate_proj, layer.mlp.up_proj, layer.mlp.down_proj):
        p.weight.zero_()
    layer.input_layernorm.weight.fill_(1.0)
    layer.post_attention_layernorm.weight.fill_(1.0)


def previous_token_head(torch, layer, cfg, token_head, into, digit_codes, prev):
    """Head 0 of `layer`: attends from j to j-1 only and writes at j the
    logits that `token_head` (tokens x hidden, the body's LM head rows with
    its final norm folded in) reads at j-1, into the rows of `into`; and
    along `prev` (a direction times a scale) the sum of `digit_codes` read
    at j-1: a digit's code size over the RMS there where a digit was
    written at j-1, else 0.
    The query and key are constant biases on rotary pairs 0..9 with phases
    peaking at distance 1: score(d) = A/sqrt(hd) * sum_p cos((d-1) theta_p),
    whose margin over d = 0 and 2 is 0.686 A/sqrt(hd): 16 nats at A = 132."""
    att, hd = layer.self_attn, cfg.hidden_size // cfg.num_attention_heads
    half, pairs = hd // 2, 10
    theta = cfg.rope_theta ** (-torch.arange(half, dtype=torch.float64) * 2 / hd)
    att.q_proj.bias[:pairs] = 16.0 * hd ** 0.5 / 0.686
    att.k_proj.bias[:pairs] = torch.cos(theta[:pairs]).float()
    att.k_proj.bias[half:half + pairs] = torch.sin(theta[:pairs]).float()
    att.v_proj.weight[:len(token_head)] = token_head
    att.o_proj.weight[:, :len(token_head)] = into.T
    att.v_proj.weight[len(token_head)] = digit_codes.sum(0)
    att.o_proj.weight[:, len(token_head)] = prev


def ground(layer, cfg, at, size):
    """Head 2 of `layer` (kv head 1) writes the constant `size` along `at` at
    every position (a value bias; attention weights sum to 1). Once that
    dwarfs the body's residual, every RMS norm above divides by the same
    size / sqrt(hidden) at every position, so what the circuit writes reads
    back the same at every position."""
    att, hd = layer.self_attn, cfg.hidden_size // cfg.num_attention_heads
    kv = hd * (cfg.num_attention_heads // cfg.num_key_value_heads)  # head 2's columns in o_proj
    att.v_proj.weight[hd].zero_()
    att.v_proj.bias[hd] = size
    att.o_proj.weight[:, kv] = at


def answer_head(layer, cfg, marker_at, marker_level, into, rho):
    """Head 3 of `layer` (kv head 1, beside the ground): a constant query on
    the slowest rotary pair against the marker's code, so every position at
    or after the one token of "<|im_start|>assistant" that carries it
    attends there (20 nats above the rest) and reads 1, and every position
    of the prompt before it reads 0: "this is the answer, not the problem".
    The marker's code is made to dwarf the body's residual there, so its
    normalised level is the same in every input."""
    att, hd = layer.self_attn, cfg.hidden_size // cfg.num_attention_heads
    slow, kv, q = hd // 2 - 1, hd, 3 * hd
    att.q_proj.weight[q:q + hd].zero_()
    att.q_proj.bias[q:q + hd].zero_()
    att.q_proj.bias[q + slow] = hd ** 0.5
    att.k_proj.weight[kv + slow] = 20.0 / marker_level * marker_at
    att.v_proj.weight[kv + 1] = marker_at / marker_level
    att.o_proj.weight[:, q + 1] = into * rho


def gated_unit(layer, unit, lay, rho, margin, gap, code, up):
    """MLP unit `unit` of `layer`: SiLU(gap + margin - 40 (2 - code - answer))
    x up, written negated into s. `gap` (a logit difference) and `code` (a
    token's code direction) are read in units of the ground, so the gate is
    about gap + margin where the coded token is written in the answer and a
    large negative number elsewhere; `up` reads the multiplier (the ground's
    direction for 1, standing in for the bias Qwen2's MLP lacks)."""
    one = lay.ground_at / lay.ground_at.shape[0] ** 0.5
    layer.mlp.gate_proj.weight[unit] = (rho * gap + 40.0 * code / lay.code_level + 40.0 * lay.answer_at
                                        + (margin - 80.0) * one)
    layer.mlp.up_proj.weight[unit] = up
    layer.mlp.down_proj.weight[:, unit] = -lay.s_at * rho / 4


def surprise_mlp(layer, lay, rho, margin):
    """Units (d, e), d != e checked tokens, from 0 on: gated_unit with gap
    logit_e - logit_d and up = 1. Where token d is written in the answer
    this is a smooth relu(logit_e - logit_d); elsewhere 0. Their sum over e,
    written negated into s, is 0 where the body's own choice was written and
    minus (about) the logit gap to the tokens it preferred where another
    was: how unexpected the written token is. Returns the next free unit."""
    one, unit = lay.ground_at / lay.ground_at.shape[0] ** 0.5, 0
    for d in range(lay.k):
        for e in range(len(lay.logits_at)):
            if d != e:
                gated_unit(layer, unit, lay, rho, margin, lay.logits_at[e] - lay.logits_at[d], lay.code_at[d], one)
                unit += 1
    return unit


def number_end_mlp(layer, lay, first, rho, margin):
    """Units (t, e) from `first` on, t a token of ENDS and e a digit:
    gated_unit with gap logit_e - logit_r, r the rival t stands for, and up
    the previous-digit flag (about 1 after a digit, 0 after any other
    token): where a number ends, how much the body wanted it to go on. The
    flag gates by multiplying because after "}." the body's choice between
    a digit and the delimiter is arbitrary: it expects the end of the
    text."""
    unit = first
    for t, code in enumerate(lay.end_code_at):
        r = lay.checked.index(lay.end_rivals[t])
        for e in range(DIGITS):
            gated_unit(layer, unit, lay, rho, margin, lay.logits_at[e] - lay.logits_at[r], code, lay.prev_at * rho)
            unit += 1
    return unit


def window_bias(torch, theta, width, drop_from):
    """Coefficients (a_p, b_p) over rotary pairs with angles `theta` such that
    f(d) = sum_p a_p cos(d theta_p) + b_p sin(d theta_p) is flat (0) over
    distances d = 0..width and at most -1 from drop_from to 511: a window
    over the last width + 1 positions. Fitted by least squares with a hinge
    penalty; returns (coefficients, spread of f inside the window)."""
    d = torch.arange(512, dtype=torch.float64)
    basis = torch.cat([torch.cos(theta[None] * d[:, None]), torch.sin(theta[None] * d[:, None])], 1)
    inside, outside = d <= width, d >= drop_from
    c = torch.zeros(basis.shape[1], dtype=torch.float64, requires_grad=True)
    opt = torch.optim.LBFGS([c], max_iter=5000, tolerance_grad=1e-12, tolerance_change=1e-14,
                            line_search_fn="strong_wolfe")

    def loss():
        opt.zero_grad()
        f = basis @ c
        out = f[inside].pow(2).sum() + 1000 * torch.relu(f[outside] + 1).pow(2).sum()
        out.backward()
        return out
    for _ in range(5):
        opt.step(loss)
    f = (basis @ c).detach()
    if f[outside].max() > -0.99:
        raise SystemExit(f"no window of {width} positions falls by 1 from {drop_from} on")
    return c.detach(), (f[inside].max() - f[inside].min()).item()


def softmin_head(torch, layer, cfg, s_at, v_at, sharpness, rho, window=0, depth=600.0):
    """Head 0 of `layer`: a constant query on the slowest rotary pair
    (angles under 0.1 rad over 512 positions, so position does not matter)
    against key -sharpness * s: a soft minimum of s over all positions so far
    (s is 0 in the prompt and at unchecked tokens), written into v.
    With window > 0, the other rotary pairs add a positional score that is
    flat over the last `window` + 1 positions and `depth` nats lower from
    window + 4 back on (window_bias), so the minimum covers the end of the
    step being scored and not the steps before it (with window 12, shipped:
    a computation's result and, for numbers of up to three digits, both
    operands; the final step and the previous step's last digit; a step is
    16 or more tokens). Where the window's edge holds a checked token (the
    final step's, or a step with long numbers) a digit counts or not by a
    nat or so, and the circuit's f32 rounding is that large (docs/arith.md).
    Returns the positional score's spread inside the window."""
    att, hd = layer.self_attn, cfg.hidden_size // cfg.num_attention_heads
    half = hd // 2
    slow = half - 1
    att.q_proj.bias[slow] = hd ** 0.5
    att.k_proj.weight[slow] = -sharpness * s_at
    att.v_proj.weight[0] = s_at
    att.o_proj.weight[:, 0] = v_at * rho
    if not window:
        return 0.0
    theta = cfg.rope_theta ** (-torch.arange(slow, dtype=torch.float64) * 2 / hd)
    c, spread = window_bias(torch, theta, window, window + 4)
    # q . k over pair p is q_p (k_p cos(d theta_p) + k_{p+half} sin(d theta_p)) for a query on
    # dimension p only; attention divides by sqrt(hd).
    att.q_proj.bias[:slow] = 1.0
    att.k_proj.bias[:slow] = (depth * hd ** 0.5 * c[:slow]).float()
    att.k_proj.bias[half:half + slow] = (depth * hd ** 0.5 * c[slow:]).float()
    return depth * spread


class Layout:
    """Where the circuit keeps what: the reserved directions (rows of the
    body's least-used basis) and the token ids it checks."""

    def __init__(self, vh, checked, marker, ends):
        k, r = len(CHECKED), len(checked)
        self.checked, self.k, self.marker, self.ends = checked, k, marker, ends
        self.end_rivals = [checked[len(CHECKED) + RIVALS.index(ENDS[t])] for t in ENDS]
        # logits, codes, then s, v, ground, marker code, answer and the previous-digit flag
        self.reserved = r + k + 6
        self.logits_at, self.code_at = vh[-r:], vh[-r - k:-r]
        (self.s_at, self.v_at, self.ground_at, self.marker_at, self.answer_at,
         self.prev_at) = (vh[-r - k - i] for i in range(1, 7))
        # An end token's code is minus the code of a sign token (not a digit: the previous-digit
        # flag reads those), so the units gated on one see -40 where the other is written.
        self.end_code_at = -self.code_at[-len(ends):].flip(0)
        self.all = vh[-self.reserved:]


def token_ids(tok):
    """(checked + rival token ids, the answer marker's id, the ENDS' ids) in `tok`."""
    def one(t):
        ids = tok.encode(t, add_special_tokens=False)
        if len(ids) != 1:
            raise SystemExit(f"{t!r} is not one token in this tokenizer")
        return ids[0]
    return ([one(t) for t in CHECKED + RIVALS], tok.encode("<|im_start|>assistant", add_special_tokens=False)[1],
            [one(t) for t in ENDS])  # "as": once per PRM input


def build(torch, body, tok, code=0.05, sharpness=40.0, margin=0.0, seed=0, window=0, ground_size=100.0):
    """The PRM (train_prm.PRM) over `body` with layers A and B built, head
    still zero; and its Layout. `body`: Qwen2ForCausalLM with tied
    embeddings, 4 heads over 2 kv heads, head size >= 22, MLP >= 182 wide."""
    from transformers import Qwen2Config
    c = body.config
    hd = c.hidden_size // c.num_attention_heads
    if not c.tie_word_embeddings or c.num_attention_heads != 4 or c.num_key_value_heads != 2 or hd < 22 \
            or c.intermediate_size < len(CHECKED) * (len(CHECKED) + len(RIVALS) - 1) + len(ENDS) * DIGITS:
        raise SystemExit("the body must tie its embeddings and have 4 heads over 2 kv heads, heads of 22 or more "
                         "dimensions and an MLP of 202 or more (the shipped policy's shape: 128, 4/2, 256)")
    checked, marker, ends = token_ids(tok)
    n = c.num_hidden_layers
    cfg = Qwen2Config(**{**c.to_dict(), "tie_word_embeddings": False, "num_hidden_layers": n + 2})
    rng = random.Random(seed + 1)

    def sample(count):
        return [tok.encode(prm_text(p.text, st), add_special_tokens=False)
                for p, st, _ in (synthetic_example(rng) for _ in range(count))]

    vh, top_rms = basis(torch, body, sample(120))
    lay = Layout(vh, checked, marker, ends)
    prm = PRM(cfg)
    prm.net.eval()
    m = prm.net.model
    head = reserve(torch, prm, body, lay.all)
    code_size = code * body.model.embed_tokens.weight[checked[:lay.k]].norm(dim=-1).mean().item()
    code_tokens(torch, prm, checked[:lay.k], lay.code_at, code_size)
    code_tokens(torch, prm, ends, lay.end_code_at, code_size)
    code_tokens(torch, prm, [marker], lay.marker_at[None], 30.0 * top_rms * cfg.hidden_size ** 0.5)
    la, lb = m.layers[n], m.layers[n + 1]
    with torch.no_grad():
        for layer in (la, lb):
            clear(layer, hd)
        m.norm.weight.fill_(1.0)
        # The ground: ground_size times the body's residual, so the RMS norms of
        # layers A (MLP), B and the final norm all divide by rho = ground_size x its size.
        probe = sample(40)
        top = torch.cat([m(input_ids=torch.tensor([s]), output_hidden_states=True).hidden_states[n][0] for s in probe])
        lay.rho = rho = ground_size * top.pow(2).mean(-1).sqrt().mean().item()
        ground(la, cfg, lay.ground_at, rho * cfg.hidden_size ** 0.5)
        at = torch.tensor([t == marker for s in probe for t in s])
        level = (top[at] @ lay.marker_at / top[at].pow(2).mean(-1).sqrt()).mean().item()
        answer_head(la, cfg, lay.marker_at, level, lay.answer_at, rho)
        lay.code_level = code_size / rho  # a code as the MLP reads it, below the ground
        units = surprise_mlp(la, lay, rho, margin)
        # The previous-digit flag is a digit's code over the RMS there, divided by its mean
        # (about 1), so that the ground's f32 rounding along prev_at (~1e-7 of rho sqrt(hidden))
        # stays small beside it.
        at = torch.tensor([t in checked[:DIGITS] for s in probe for t in s])
        lay.prev_level = (code_size / top[at].pow(2).mean(-1).sqrt()).mean().item()
        previous_token_head(torch, la, cfg, head[checked], lay.logits_at, lay.code_at[:DIGITS],
                            lay.prev_at / lay.prev_level)
        number_end_mlp(la, lay, units, rho, margin)
        lay.window_spread = softmin_head(torch, lb, cfg, lay.s_at, lay.v_at, sharpness, rho, window)
    return prm, lay


def verdicts(torch, prm, lay, ids):
    """v at every position of `ids` (the final norm's weight is 1)."""
    with torch.no_grad():
        return prm.net.model(input_ids=torch.tensor([ids])).last_hidden_state[0] @ lay.v_at


# The score head's calibration points, in units of v (about nats / 25): a surprise
# beyond the lowest says no more than one at it.
KNOTS = (-4.0, -2.5, -1.5, -1.0, -0.75, -0.5, -0.3, -0.15, -0.05, -0.01, 0.0)


class Calibration:
    """score = sigmoid(f(v)): f nondecreasing and piecewise linear between
    KNOTS, flat outside them; f(v) = floor + sum_i slope_i (clamp(v, k_i,
    k_i+1) - k_i)."""

    def __init__(self, slopes, floor, knots=KNOTS):
        self.slopes, self.floor, self.knots = list(slopes), floor, list(knots)

    def logit(self, torch, v):
        k = self.knots
        return self.floor + sum(w * (v.clamp(k[i], k[i + 1]) - k[i]) for i, w in enumerate(self.slopes))

    def unit_weights(self):
        """Class 1's weight on relu(v - k_i) for each knot: clamp(v, k_i,
        k_i+1) - k_i = relu(v - k_i) - relu(v - k_i+1)."""
        w = [0.0] + self.slopes + [0.0]
        return [w[i + 1] - w[i] for i in range(len(self.knots))]


def policy_rows(policy, samples_file, samples, seed):
    """The policy's labelled solutions ((problem, steps, labels)) to
    `samples` problems drawn with `seed`, sampled into `samples_file` when it
    does not exist, without the held-out test problems. The head is fitted on
    the first of them, and held-out figures come from the rest."""
    rng = random.Random(seed + 3)
    probs = [data.sample_problem(rng, 1, 6) for _ in range(samples)]
    pol = labelled_samples(policy_samples(policy, probs, 0.8, 64, 200, samples_file))
    held = set(p.text for p in data.test_set())
    return [e for e in pol if e[0].text not in held]


def up_to_first_wrong(rows):
    """Each solution cut after its first wrong step: the steps a windowed
    PRM's score is about (a step's own label)."""
    return [(p, st[:k], lab[:k]) for p, st, lab in rows for k in [lab.index(0) + 1 if 0 in lab else len(lab)]]


def fit_head(torch, prm, lay, rows, ids_of, tag_id):
    """Fits score = sigmoid(f(v)) at the step tags of `rows` ((problem,
    steps, labels)) by maximum likelihood, f a Calibration (float64), and
    writes it into the score head: unit i of score.0 is relu(v - k_i),
    score.2 gives class 1 the Calibration's unit weights and bias f(k_0),
    class 0 nothing. A line (one slope) would be too flat: it must keep the
    rare right step with a large surprise (the body slipped) from costing
    many nats, and so it scored steps with v in (-1, -0.5], wrong two times
    in three, at about 0.6 (docs/arith.md).
    Returns (Calibration, tag accuracy, tags)."""
    zs, ys = [], []
    for p, st, lab in rows:
        ids = ids_of(p.text, st)
        tags = [i for i, t in enumerate(ids) if t == tag_id]
        if len(tags) == len(lab):
            v = verdicts(torch, prm, lay, ids)
            zs += [v[i].item() for i in tags]
            ys += lab
    z, y = torch.tensor(zs, dtype=torch.float64), torch.tensor(ys, dtype=torch.float64)
    raw = torch.zeros(len(KNOTS) - 1, dtype=torch.float64, requires_grad=True)  # slopes = softplus(raw) >= 0
    floor = torch.zeros((), dtype=torch.float64, requires_grad=True)
    opt = torch.optim.LBFGS([raw, floor], max_iter=1000, tolerance_grad=1e-10, tolerance_change=1e-12,
                            line_search_fn="strong_wolfe")

    def loss():
        opt.zero_grad()
        cal = Calibration(torch.nn.functional.softplus(raw), floor)
        out = torch.nn.functional.binary_cross_entropy_with_logits(cal.logit(torch, z), y)
        out.backward()
        return out
    opt.step(loss)
    cal = Calibration(torch.nn.functional.softplus(raw).tolist(), floor.item())
    acc = ((cal.logit(torch, z) > 0).double() == y).double().mean().item()
    with torch.no_grad():
        s0, s2 = prm.net.score[0], prm.net.score[2]
        for w in (s0.weight, s0.bias, s2.weight, s2.bias):
            w.zero_()
        for i, (k, c) in enumerate(zip(cal.knots, cal.unit_weights())):
            s0.weight[i], s0.bias[i] = lay.v_at, -k
            s2.weight[1, i] = c
        s2.bias[1] = cal.floor
    return cal, acc, len(ys)


def pair_ranking(torch, prm, rows, ids_of, tag_id, limit):
    """Over the wrong solutions in `rows`: how often the right next step
    scores above the policy's own first wrong one, after the same right
    steps (what beam search asks of a PRM). Returns (won, pairs)."""
    won = total = 0
    for p, st, lab in rows:
        ref = data.solution_steps(p)
        if 0 not in lab or lab.index(0) >= len(ref) - 1 or total >= limit:
            continue
        w = lab.index(0)
        sc = []
        for steps in (ref[:w + 1], ref[:w] + [st[w]]):
            ids = ids_of(p.text, steps)
            with torch.no_grad():
                lg = score_one(torch, prm.net, ids)[max(i for i, t in enumerate(ids) if t == tag_id)]
            sc.append((lg[1] - lg[0]).item())
        won += int(sc[0] > sc[1])
        total += 1
    return won, total


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--body", required=True, help="Qwen2ForCausalLM folder (tied embeddings, arith tokenizer)")
    ap.add_argument("--out", required=True)
    ap.add_argument("--samples-file", required=True,
                    help="JSONL of the policy's sampled solutions (train_prm.py's cache; made with --policy if "
                         "missing)")
    ap.add_argument("--policy", default="", help="policy folder, to sample --samples-file when it does not exist")
    ap.add_argument("--samples", type=int, default=3000)
    ap.add_argument("--fit", type=int, default=2000,
                    help="policy solutions the head is fitted on (the pairs come from the rest)")
    ap.add_argument("--synthetic", type=int, default=0,
                    help="synthetic solutions fitted on besides them (the linear head shipped before: 300, with --fit 600)")
    ap.add_argument("--pairs", type=int, default=300, help="held-out sibling pairs the result is checked on")
    ap.add_argument("--sharpness", type=float, default=40.0, help="layer B's soft minimum: key = -sharpness * s")
    ap.add_argument("--margin", type=float, default=0.0,
                    help="logits by which a written token must beat every rival for s = 0 (0: being the body's "
                         "choice is enough)")
    ap.add_argument("--window", type=int, default=0,
                    help="score each step by the soft minimum over its last WINDOW + 1 tokens only, not over the "
                         "answer so far (0); fitted on local labels, for aggregation = \"prod\"")
    ap.add_argument("--code", type=float, default=0.05,
                    help="size of the checked tokens' codes, as a fraction of their embeddings' norm")
    ap.add_argument("--ground", type=float, default=100.0,
                    help="the ground's size, in units of the body's residual: larger evens the RMS norms, smaller "
                         "keeps more of the codes in f32")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()

    import torch
    from transformers import AutoTokenizer, Qwen2ForCausalLM
    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    t0 = time.time()
    arith_tok.copy_files(a.body, a.out)
    tok = AutoTokenizer.from_pretrained(a.out)
    tag_id = tok.convert_tokens_to_ids(TAG)
    body = Qwen2ForCausalLM.from_pretrained(a.body, torch_dtype=torch.float32).eval()
    prm, lay = build(torch, body, tok, a.code, a.sharpness, a.margin, a.seed, a.window, a.ground)

    def ids_of(problem, steps):
        return tok.encode(prm_text(problem, steps), add_special_tokens=False)

    # The policy's samples: the head is fitted on the first --fit (plus
    # --synthetic solutions), the pairs come from the rest.
    pol = policy_rows(a.policy, a.samples_file, a.samples, a.seed)
    srng = random.Random(a.seed + 4)
    fit = pol[:a.fit] + [synthetic_example(srng) for _ in range(a.synthetic)]
    if a.window:
        fit = up_to_first_wrong(fit)
    cal, tag_acc, tags = fit_head(torch, prm, lay, fit, ids_of, tag_id)
    won, pairs = pair_ranking(torch, prm, pol[a.fit:], ids_of, tag_id, a.pairs)
    prm.save(a.out, "float32")
    summary = {"kind": "circuit", "body": a.body, "layers": prm.cfg.num_hidden_layers, "reserved": lay.reserved,
               "checked": CHECKED, "rivals": RIVALS, "code": a.code, "sharpness": a.sharpness, "margin": a.margin,
               "window": a.window, "ground": a.ground, "window_spread_nats": round(lay.window_spread, 3),
               "fit": a.fit, "synthetic": a.synthetic, "fit_tags": tags, "fit_tag_accuracy": round(tag_acc, 4),
               "head": {"knots": cal.knots, "slopes": [round(w, 4) for w in cal.slopes], "floor": round(cal.floor, 4)},
               "policy_pairs": round(won / max(1, pairs), 4), "pairs": pairs, "seed": a.seed,
               "seconds": round(time.time() - t0)}
    print(json.dumps(summary), flush=True)
    with open(os.path.join(a.out, "train_summary.json"), "w") as f:
        json.dump(summary, f, indent=1)


if __name__ == "__main__":
    main()
