"""PRM numerics: step probabilities of the CPU engine against transformers.

For each PRM family the reference takes transformers' final-normed hidden
states (Qwen2Model.last_hidden_state, float64) or LM logits, applies the head
here from the stored tensors, and compares:
  classifier (Qwen2.5-Math-PRM):  score.0 -> ReLU -> score.2, softmax[1]
  value_head (Skywork-o1 PRM):    v_head.summary, sigmoid
  lm_logits  (Math-Shepherd):     softmax over the [good, bad] LM logits, [0]
with the engine's "score" rows at the step tags (probe, also scoring a
solution in two parts as the verifier does, reusing the first part's KV), its
"hidden" rows, and `flashtts score --raw` on text holding the step tag.
Folders come from flashtts-mkmodel and from save_pretrained of torch modules
shaped like the families' own (remote-code) classes.

Run: ctest -R reference.test_parity_prm --output-on-failure (see docs/testing.md).
"""
import json

import numpy as np
import torch
from torch import nn

from parity_common import (PROB_TOL, Report, check_close, hf_base_from_folder, hf_causal_from_folder, hf_hidden,
                           hf_logits, mkmodel, perturb_, probe, program, rows, run, scratch)

STD = 0.15


def softmax(x, axis=-1):
    e = np.exp(x - np.max(x, axis=axis, keepdims=True))
    return e / np.sum(e, axis=axis, keepdims=True)


def head_probs(family, t, hidden):
    """Step probability at every row of hidden (T, h), float64, from the
    stored head tensors t."""
    g = lambda n: t[n].numpy()  # noqa: E731
    if family == "classifier":
        a = np.maximum(hidden @ g("score.0.weight").T + g("score.0.bias"), 0.0)
        return softmax(a @ g("score.2.weight").T + g("score.2.bias"))[:, 1]
    if family == "value_head":
        v = hidden @ g("v_head.summary.weight").T + g("v_head.summary.bias")
        return 1.0 / (1.0 + np.exp(-v[:, 0]))
    raise ValueError(family)


def with_tags(rng, n_regular, tag, n, tag_every=(9, 11, 13, 8)):
    """n random regular ids with the step tag at varying intervals."""
    ids, k = [], 0
    while len(ids) < n:
        ids += rng.integers(0, n_regular, size=tag_every[k % len(tag_every)]).tolist() + [tag]
        k += 1
    return ids[:n - 1] + [tag]


class Reference:
    """Per-position hidden states and step probabilities of one PRM folder."""

    def __init__(self, folder, family, good=None, bad=None):
        self.family, self.good, self.bad = family, good, bad
        if family == "lm_logits":
            self.lm = hf_causal_from_folder(folder)
            self.base = self.lm.model
        else:
            self.base, self.tensors = hf_base_from_folder(folder)

    def hidden(self, ids):
        return hf_hidden(self.base, ids)

    def probs(self, ids):
        if self.family == "lm_logits":
            lg = hf_logits(self.lm, ids)
            return softmax(lg[:, [self.good, self.bad]])[:, 0]
        return head_probs(self.family, self.tensors, self.hidden(ids))


def check_prm(folder, family, tag, n_regular, seed, good=None, bad=None, raw_text=None):
    ref = Reference(folder, family, good, bad)
    extra = ["--step-tag-id", tag] + (["--good-id", good, "--bad-id", bad] if family == "lm_logits" else [])
    rng = np.random.default_rng(seed)
    ids = with_tags(rng, n_regular, tag, 45)
    cut = ids.index(tag, 20) + 1  # the first part ends with a step tag
    ops = [
        # Whole solution (3 KV blocks), scores at the step tags.
        {"op": "run", "kind": "score", "items": [{"seq": 1, "tokens": ids, "rows": "step_tags"}]},
        # The verifier's way: score a prefix, then only the new steps, the
        # prefix's KV reused; a second sequence scored in the same batch.
        {"op": "run", "kind": "score", "items": [{"seq": 2, "tokens": ids[:cut], "rows": "step_tags",
                                                  "reuse_prefix": False}]},
        {"op": "run", "kind": "score", "items": [{"seq": 2, "tokens": ids[cut:], "rows": "step_tags"},
                                                 {"seq": 3, "tokens": ids[:30], "rows": "step_tags",
                                                  "reuse_prefix": False}]},
        # Final-normed hidden states at every position.
        {"op": "run", "kind": "hidden", "items": [{"seq": 4, "tokens": ids, "rows": "all", "reuse_prefix": False}]},
    ]
    out = probe(folder, ops, extra=extra)
    res = out["results"]
    p_ref = ref.probs(ids)
    tags = [i for i, t in enumerate(ids) if t == tag]
    worst = 0.0
    for what, item in (("whole", res[0]["items"][0]), ("prefix", res[1]["items"][0]),
                       ("continued", res[2]["items"][0]), ("batched", res[2]["items"][1])):
        got = rows(item)[:, 0] if item["values"] else np.zeros(0)
        want_pos = {"whole": tags, "prefix": [p for p in tags if p < cut], "continued": [p for p in tags if p >= cut],
                    "batched": [p for p in tags if p < 30]}[what]
        if item["positions"] != want_pos:
            raise AssertionError(f"{what}: scores at positions {item['positions']}, step tags at {want_pos}")
        err = np.abs(got - p_ref[want_pos])
        if err.size and not (err.max() <= PROB_TOL):
            k = int(np.argmax(err))
            raise AssertionError(f"{what}: step probability at position {want_pos[k]} is {got[k]:.7f}, "
                                 f"reference {p_ref[want_pos[k]]:.7f} (abs err {err[k]:.3g} > {PROB_TOL:g})")
        worst = max(worst, float(err.max()) if err.size else 0.0)
    hid = res[3]["items"][0]
    r_hid = check_close("hidden", rows(hid), ref.hidden(ids)[hid["positions"]], hid["positions"])
    summary = f"{len(tags)} step probs max abs err {worst:.1e} (range {p_ref[tags].min():.3f}..{p_ref[tags].max():.3f}), " \
              f"hidden rel {r_hid:.1e}"
    if raw_text is not None:
        summary += "; " + check_score_cli(folder, ref, raw_text)
    return summary


def check_score_cli(folder, ref, text):
    """flashtts score --raw: the folder's tokenizer finds the step tags."""
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(folder / "tokenizer.json"))
    cfg_tag = {"classifier": "<extra_0>", "value_head": "\n"}.get(ref.family)
    if cfg_tag is None:
        cfg_tag = json.loads((folder / "flashtts_prm.json").read_text())["step_tag"]
    direct = tok.token_to_id(cfg_tag)
    tag = direct if direct is not None else tok.encode(cfg_tag).ids[-1]
    ids = tok.encode(text).ids
    positions = [i for i, t in enumerate(ids) if t == tag]
    got = np.asarray(json.loads(run([program("flashtts"), "score", "--prm", folder, "--raw", text, "--json",
                                     "--threads", 2]))["step_scores"])
    want = ref.probs(ids)[positions]
    if got.shape != want.shape:
        raise AssertionError(f"score --raw gave {len(got)} scores, the text has {len(positions)} step tags")
    err = float(np.max(np.abs(got - want)))
    if not (err <= PROB_TOL):
        raise AssertionError(f"score --raw: step probabilities {got.tolist()}, reference {want.tolist()}")
    return f"score --raw {len(positions)} steps max abs err {err:.1e}"


# ---------------------------------------------------------------------------
# Folders written by transformers: modules shaped like the families' own
# classes, so save_pretrained writes the tensor names the real checkpoints use.

def hf_prm_folder(family, cfg_kw, seed, dtype=torch.float32):
    from transformers import Qwen2Config, Qwen2Model, Qwen2PreTrainedModel

    class ValueHead(nn.Module):
        def __init__(self, h):
            super().__init__()
            self.summary = nn.Linear(h, 1)

    class Prm(Qwen2PreTrainedModel):
        def __init__(self, config):
            super().__init__(config)
            self.model = Qwen2Model(config)
            h = config.hidden_size
            if family == "classifier":  # Qwen2ForProcessRewardModel
                self.score = nn.Sequential(nn.Linear(h, h), nn.ReLU(), nn.Linear(h, 2))
            else:  # Skywork's Qwen2ForPrmModel
                self.v_head = ValueHead(h)
            self.post_init()

    arch = "Qwen2ForProcessRewardModel" if family == "classifier" else "Qwen2ForPrmModel"
    Prm.__name__ = arch  # save_pretrained writes the class name as "architectures"
    cfg = Qwen2Config(initializer_range=STD, max_position_embeddings=256, architectures=[arch], **cfg_kw)
    torch.manual_seed(seed)
    m = Prm(cfg)
    perturb_(m, seed)
    folder = scratch("hfprm") / "m"
    m.to(dtype).save_pretrained(folder, safe_serialization=True)
    cfg_json = json.loads((folder / "config.json").read_text())
    if cfg_json["architectures"] != [arch]:
        raise AssertionError(f"save_pretrained wrote architectures {cfg_json['architectures']}")
    return folder, cfg.vocab_size


def main():
    rep = Report("test_parity_prm")
    base = dict(hidden=64, layers=2, heads=4, kv_heads=2, intermediate=128, vocab=512, std=STD, max_position=256)

    def mk(arch, seed, **kw):
        return mkmodel(scratch("mkprm") / "m", arch=arch, seed=seed, **{**base, **kw})

    def vocab_id(folder, sym):
        return json.loads((folder / "tokenizer.json").read_text())["model"]["vocab"][sym]

    def mk_classifier(seed, **kw):
        f = mk("qwen2-prm", seed, **kw)
        v = json.loads((f / "config.json").read_text())["vocab_size"]
        return check_prm(f, "classifier", v - 1, v - 4, seed,  # <extra_0> is the last of 4 specials
                         raw_text="step one: compute the total.<extra_0>step two: subtract the remainder and "
                                  "divide by the common factor.<extra_0>so the answer is ten.<extra_0>")

    def mk_value_head(seed, **kw):
        f = mk("skywork-prm", seed, **kw)
        v = json.loads((f / "config.json").read_text())["vocab_size"]
        return check_prm(f, "value_head", vocab_id(f, "Ċ"), v - 3, seed,
                         raw_text="the sum of the digits\nstep one: compute the total.\nthus the answer is 7.\n")

    def mk_lm_logits(seed, **kw):
        f = mk("lm-prm", seed, **kw)
        v = json.loads((f / "config.json").read_text())["vocab_size"]
        tag = vocab_id(f, "Ġthe")  # any token can be the tag for the probe
        return check_prm(f, "lm_logits", tag, v - 3, seed, good=vocab_id(f, "+"), bad=vocab_id(f, "-"),
                         raw_text="we have x = 2. ки\nthen x + 1 = 3. ки\nthe answer is 3. ки\n")

    def hf_case(family, seed, dtype=torch.float32, **kw):
        f, v = hf_prm_folder(family, dict(vocab_size=500, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                                          num_attention_heads=4, **kw), seed, dtype)
        return check_prm(f, family, 77, v, seed)

    rep.case("mk qwen2-prm classifier GQA untied f32", mk_classifier, 31, no_tie=True, dtype="f32")
    rep.case("mk qwen2-prm classifier MHA tied bf16 theta1e6", mk_classifier, 32, kv_heads=4, tie=True, dtype="bf16",
             rope_theta=1e6)
    rep.case("mk skywork-prm value_head GQA tied f32 theta1e6", mk_value_head, 33, tie=True, dtype="f32",
             rope_theta=1e6)
    rep.case("mk skywork-prm value_head MHA untied bf16", mk_value_head, 34, kv_heads=4, no_tie=True, dtype="bf16")
    rep.case("mk lm-prm (mistral) lm_logits GQA untied f32", mk_lm_logits, 35, no_tie=True, dtype="f32")
    rep.case("mk lm-prm (mistral) lm_logits MHA tied bf16 theta1e6", mk_lm_logits, 36, kv_heads=4, tie=True,
             dtype="bf16", rope_theta=1e6)
    rep.case("hf qwen2-prm classifier GQA f32 theta1e6", hf_case, "classifier", 37, num_key_value_heads=2,
             rope_theta=1e6)
    rep.case("hf skywork-prm value_head MHA bf16 tied", hf_case, "value_head", 38, torch.bfloat16,
             num_key_value_heads=4, tie_word_embeddings=True)
    rep.finish()


if __name__ == "__main__":
    main()
