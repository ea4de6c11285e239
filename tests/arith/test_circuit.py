"""Checks the verifier circuit of tools/arith/prm_circuit.py on a random body
of the shipped policy's shape: that each part computes what its docstring
says, position by position, against the body's own logits; and, when
build/flashtts exists, that flashtts scores the built PRM as transformers does.

Run: .venv-ref/bin/python tests/arith/test_circuit.py [--flashtts build/flashtts]
(exit 77 = skipped: no torch/transformers)"""
import argparse
import json
import os
import random
import subprocess
import sys
import tempfile

ROOT = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
sys.path.insert(0, os.path.join(ROOT, "tools", "arith"))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--flashtts", default=os.path.join(ROOT, "build", "flashtts"))
    a = ap.parse_args()
    try:
        import torch
        from transformers import AutoTokenizer, Qwen2Config, Qwen2ForCausalLM
    except ImportError:
        print("skipped: needs torch and transformers (the reference venv)")
        return 77
    import data
    import prm_circuit as C
    import tokenizer as arith_tok
    from train_prm import prm_text, score_one
    torch.manual_seed(0)
    torch.set_num_threads(1)
    tok = AutoTokenizer.from_pretrained(os.path.join(ROOT, "models", "policy"))
    body = Qwen2ForCausalLM(Qwen2Config(vocab_size=len(tok), hidden_size=128, intermediate_size=256,
                                        num_hidden_layers=1, num_attention_heads=4, num_key_value_heads=2,
                                        max_position_embeddings=512, tie_word_embeddings=True)).eval()
    with torch.no_grad():  # logits of a useful size, so that the relu's of step 4 see gaps of several units
        body.model.embed_tokens.weight.mul_(8.0)
    prm, lay = C.build(torch, body, tok)
    n = body.config.num_hidden_layers
    m = prm.net.model
    p = data.sample_problem(random.Random(7), 4, 4)
    steps = data.solution_steps(p)
    steps[1] = data.corrupt_step(random.Random(8), steps[1])
    ids = tok.encode(prm_text(p.text, steps), add_special_tokens=False)
    cap = {}
    hook = m.layers[n].post_attention_layernorm.register_forward_hook(lambda mod, i, o: cap.update(x=i[0][0]))
    with torch.no_grad():
        hs = m(input_ids=torch.tensor([ids]), output_hidden_states=True).hidden_states
    hook.remove()
    top, after_a = hs[n][0], hs[n + 1][0]
    # What the body predicts at j-1, for the checked tokens and their rivals:
    # the PRM's (reserved) body top through the body's own folded LM head.
    proj = torch.eye(128) - lay.all.T @ lay.all
    head = (body.model.embed_tokens.weight * body.model.norm.weight @ proj)[lay.checked]
    logits = (top / top.pow(2).mean(-1, keepdim=True).add(1e-6).sqrt()) @ head.T
    # 3: head 0 wrote exactly those logits at j (the reserved directions hold nothing else).
    err = ((after_a @ lay.logits_at.T)[1:] - logits[:-1]).abs().max().item()
    assert err < 1e-4 * (1 + logits.abs().max().item()), f"previous-token head off by {err}"
    # 3: the answer flag is 0 before the marker and 1 from it on (in units of the ground).
    start = ids.index(lay.marker)
    flag = after_a @ lay.answer_at / lay.rho
    assert flag[:start].abs().max() < 1e-3 and (flag[start:] - 1).abs().max() < 1e-3, flag
    # 3: the previous-digit flag is about 1 after a digit and 0 after any other token.
    flag = after_a @ lay.prev_at
    after_digit = torch.tensor([False] + [t in lay.checked[:C.DIGITS] for t in ids[:-1]])
    assert flag[after_digit].min() > 0.5 and flag[after_digit].max() < 2, flag[after_digit]
    assert flag[~after_digit].abs().max() < 0.01, flag[~after_digit].abs().max()
    # 4: where a checked token d is written in the answer, s = -sum_e SiLU(c gap_e) c rho / 4
    # with gap_e = logit_e - logit_d and c = rho / (the MLP input's RMS, about rho); 0 elsewhere.
    # Where a token t of ENDS follows a digit d in the answer, s = -sum_e SiLU(c gap_e) c u rho / 4
    # over the digits e, gap_e = logit_e - logit of the rival t stands for, u = (d's code over the
    # RMS at j-1) / lay.prev_level, about 1.
    c = lay.rho / cap["x"].pow(2).mean(-1).add(1e-6).sqrt()
    s = after_a @ lay.s_at
    checked, digits = lay.checked[:lay.k], lay.checked[:C.DIGITS]
    worst, fired, ended = 0.0, 0, 0
    for j in range(1, len(ids)):
        want = 0.0
        if j >= start and ids[j] in checked:
            d = checked.index(ids[j])
            gaps = torch.cat([logits[j - 1, :d], logits[j - 1, d + 1:]]) - logits[j - 1, d]
            want = -torch.nn.functional.silu(c[j] * gaps).sum().item() * c[j].item() * lay.rho / 4
            fired += want < -lay.rho
        elif j >= start and ids[j] in lay.ends and ids[j - 1] in digits:
            t, d = lay.ends.index(ids[j]), digits.index(ids[j - 1])
            gaps = logits[j - 1, :C.DIGITS] - logits[j - 1, lay.checked.index(lay.end_rivals[t])]
            u = (top[j - 1] @ lay.code_at[d] / top[j - 1].pow(2).mean().sqrt()).item() / lay.prev_level
            assert 0.5 < u < 2, u
            want = -torch.nn.functional.silu(c[j] * gaps).sum().item() * c[j].item() * u * lay.rho / 4
            ended += want < -lay.rho
        worst = max(worst, abs(s[j].item() - want) / (lay.rho + abs(want)))
    # (Not exact: the other tokens' units leak SiLU(gap - 40), up to a few hundredths at this body's gaps.)
    assert worst < 0.02 and fired > 0 and ended > 0, (worst, fired, ended)
    s = s / after_a.pow(2).mean(-1).sqrt()  # as layer B reads it
    # 5: v at the last position is a soft minimum of s over the answer.
    v = (hs[n + 2][0] @ lay.v_at)[-1].item()
    lo = s[start:].min().item()
    assert lo - 0.5 <= v <= lo * 0.5 + 1e-3, (v, lo)
    tag_id = tok.convert_tokens_to_ids("<extra_0>")
    tags = [i for i, t in enumerate(ids) if t == tag_id]
    # 5 with --window W (shipped: 12): at each step tag, v is a soft minimum of s over the last
    # W + 1 positions only, and those W + 4 or more back do not count (the body, codes and
    # layer A are the same).
    W = 12
    wprm, wlay = C.build(torch, body, tok, window=W)
    with torch.no_grad():
        wv = wprm.net.model(input_ids=torch.tensor([ids])).last_hidden_state[0] @ wlay.v_at
    assert wlay.window_spread < 10, wlay.window_spread
    excluded = 0
    for t in tags:
        lo_w = s[t - W:t + 1].min().item()
        assert lo_w - 0.5 <= wv[t].item() <= lo_w * 0.5 + 1e-3, (t, wv[t].item(), lo_w)
        excluded += s[start:t - W - 3].min().item() < lo_w - 1  # an earlier, larger surprise left out
    assert excluded > 0, "no tag where the window leaves out a larger surprise: the check would be vacuous"
    # 6 + flashtts: fit the head on a few synthetic solutions, save, and score.
    rows = [C.synthetic_example(random.Random(9 + i)) for i in range(12)]

    def ids_of(problem, st):
        return tok.encode(prm_text(problem, st), add_special_tokens=False)
    cal, _, _ = C.fit_head(torch, prm, lay, rows, ids_of, tag_id)
    # the head computes the fitted calibration of v, which never falls as v rises
    assert min(cal.slopes) >= 0, cal.slopes
    with torch.no_grad():
        got_p = torch.softmax(score_one(torch, prm.net, ids), -1)[:, 1]
    v_all = C.verdicts(torch, prm, lay, ids).double()
    want_p = torch.sigmoid(cal.logit(torch, v_all))
    gap = max(abs(got_p[t].item() - want_p[t].item()) for t in tags)
    assert gap < 1e-4, f"score head off its calibration by {gap}"
    if os.path.exists(a.flashtts):
        with tempfile.TemporaryDirectory() as d:
            prm.save(d, "float32")
            arith_tok.copy_files(os.path.join(ROOT, "models", "policy"), d)
            with torch.no_grad():
                lg = score_one(torch, prm.net, ids)
            want = [torch.softmax(lg[i], -1)[1].item() for i, t in enumerate(ids) if t == tag_id]
            out = subprocess.run([a.flashtts, "score", "--prm", d, "--problem", p.text, "--solution",
                                  "\n\n".join(steps), "--json", "--threads", "1"],
                                 capture_output=True, text=True, check=True).stdout
            got = json.loads(out)["step_scores"]
            assert len(got) == len(want) and max(abs(x - y) for x, y in zip(got, want)) < 5e-3, (got, want)
    shipped = shipped_parity(torch, a.flashtts) if os.path.exists(a.flashtts) else "no flashtts binary"
    print(f"circuit ok: head copy error {err:.2e}, s error {worst:.3f} ({fired} surprises), "
          f"{ended} number ends, v {v:.3f} vs min s {lo:.3f}; shipped PRM: {shipped}")
    return 0


def shipped_parity(torch, flashtts, n=16, jitters=3):
    """flashtts's step scores of the shipped PRM against transformers in float64 (the exact
    value), on reference solutions with one step corrupted or not. The circuit's codes sit
    1e-5 below its ground and its calibrated head is steep near v = 0, so any f32 run carries
    rounding of a few hundredths there, and how much depends on the order of its sums (the
    CPU's BLAS kernels): transformers' own f32 run, and `jitters` more with every weight moved
    by about one f32 rounding step, show how far f32 alone goes. flashtts must be no further
    from the exact scores than the furthest of them, plus 0.01."""
    from transformers import AutoTokenizer, Qwen2Config
    import data
    from train_prm import PRM, TAG, prm_text, score_one
    d = os.path.join(ROOT, "models", "prm")
    prm = PRM(Qwen2Config.from_pretrained(d))
    prm.load_weights(d)
    prm.net.eval()
    tok = AutoTokenizer.from_pretrained(d)
    tag = tok.convert_tokens_to_ids(TAG)
    rng = random.Random(11)
    cases = []
    for i in range(n):
        p = data.sample_problem(rng, 2, 6)
        steps = data.solution_steps(p)
        if i % 2:
            k = rng.randrange(len(steps) - 1)
            steps[k] = data.corrupt_step(rng, steps[k])
        cases.append((p.text, steps, tok.encode(prm_text(p.text, steps), add_special_tokens=False)))

    def scores():
        out = []
        for _, _, ids in cases:
            with torch.no_grad():
                lg = score_one(torch, prm.net, ids)
            out.append([torch.softmax(lg[j].double(), -1)[1].item() for j, t in enumerate(ids) if t == tag])
        return out

    def off(got):  # the largest gap to `exact`, set below
        return max(abs(x - y) for g, e in zip(got, exact) for x, y in zip(g, e))
    weights = {k: w.clone() for k, w in prm.net.state_dict().items()}
    prm.net.to(torch.float64)
    exact = scores()
    prm.net.to(torch.float32)
    off32 = [off(scores())]
    gen = torch.Generator().manual_seed(0)
    for _ in range(jitters):
        prm.net.load_state_dict({k: w * (1 + 6e-8 * torch.randn(w.shape, generator=gen)) for k, w in weights.items()})
        off32.append(off(scores()))
    got = []
    for problem, steps, _ in cases:
        out = subprocess.run([flashtts, "score", "--prm", d, "--problem", problem, "--solution", "\n\n".join(steps),
                              "--json", "--threads", "1"], capture_output=True, text=True, check=True).stdout
        got.append(json.loads(out)["step_scores"])
        assert len(got[-1]) == len(exact[len(got) - 1]), (got[-1], exact[len(got) - 1])
    off_flash = off(got)
    assert off_flash <= max(off32) + 0.01, (off_flash, off32)
    return (f"flashtts within {off_flash:.4f} of the float64 scores (transformers f32: {off32[0]:.4f}, "
            f"jittered: {', '.join(f'{x:.4f}' for x in off32[1:])})")


if __name__ == "__main__":
    sys.exit(main())
