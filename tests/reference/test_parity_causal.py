"""Causal LM numerics: the CPU engine against Hugging Face transformers (float64).

Two directions, on small random-weight models:
  * folders written by flashtts-mkmodel, loaded by transformers.from_pretrained;
  * folders written by transformers' save_pretrained, loaded by the engine.
Each model: full logit vectors of a 40-token prefill (block size 16, so three
KV blocks) and of single-token decodes, and a greedy continuation. The engine
paths (mixed prefill/decode batch, chunked prefill, fork, truncate, prefix
cache reuse) are checked on two of the models.

Run: ctest -R reference.test_parity_causal --output-on-failure (see docs/testing.md).
"""
import json
import os
from pathlib import Path

import numpy as np
import torch

from parity_common import (REL_TOL, Report, check_close, check_greedy, generate_cli, hf_causal_from_folder,
                           hf_logits, mkmodel, perturb_, probe, program, rel_err, rows, run, run_script, scratch)

PROMPT_TEXT = "the answer is the number of ways to choose the first term"


def token_ids(rng, n, n_regular):
    """n random ids from the regular (non-special) part of the vocabulary."""
    return rng.integers(0, n_regular, size=n).tolist()


def check_model(folder, model, n_regular, seed, tokenizer=False, stop_ids=()):
    """Prefill 40 tokens + 3 decodes (logits), and greedy 24 tokens."""
    rng = np.random.default_rng(seed)
    toks = token_ids(rng, 43, n_regular)
    ops = [{"op": "run", "kind": "logits", "items": [{"seq": 1, "tokens": toks[:40], "rows": "all"}]}]
    ops += [{"op": "run", "kind": "logits", "items": [{"seq": 1, "tokens": [t], "rows": "last"}]} for t in toks[40:]]
    prompt = toks[:12]
    ops.append({"op": "generate", "prompt": prompt, "max_tokens": 24, "temperature": 0})
    out = probe(folder, ops)
    ref = hf_logits(model, toks)
    pre = out["results"][0]["items"][0]
    r_pre = check_close("prefill", rows(pre), ref[pre["positions"]], pre["positions"])
    dec_pos = [r["items"][0]["positions"][0] for r in out["results"][1:4]]
    dec = np.concatenate([rows(r["items"][0]) for r in out["results"][1:4]])
    if dec_pos != [40, 41, 42]:
        raise AssertionError(f"decode rows came back at positions {dec_pos}, expected [40, 41, 42]")
    r_dec = check_close("decode", dec, ref[dec_pos], dec_pos)
    gen = out["results"][4]["tokens"]
    if len(gen) != 24:
        raise AssertionError(f"probe generate gave {len(gen)} tokens, asked for 24 with no stop ids")
    g = check_greedy("greedy(ids)", model, prompt, gen)
    summary = f"prefill rel {r_pre:.1e}, decode rel {r_dec:.1e}, {g}"
    if tokenizer:
        from tokenizers import Tokenizer

        res = generate_cli(folder, PROMPT_TEXT, 32)
        want_ids = Tokenizer.from_file(str(folder / "tokenizer.json")).encode(PROMPT_TEXT).ids
        if res["prompt_ids"] != want_ids:
            raise AssertionError(f"flashtts generate encoded the prompt as {res['prompt_ids']}, "
                                 f"HF tokenizers as {want_ids}")
        summary += "; " + check_greedy("greedy(cli)", model, res["prompt_ids"], res["token_ids"], stop_ids)
    return summary


# ---------------------------------------------------------------------------
# Engine paths: one script mixing prefill, decode, chunked prefill, fork,
# truncate, release and prefix-cache reuse; every row checked against HF.

def engine_paths_ops(rng, n_regular):
    t1, t2, t3, f, g, h, k = (token_ids(rng, n, n_regular) for n in (23, 41, 50, 5, 3, 6, 9))
    run = lambda *items: {"op": "run", "kind": "logits", "items": list(items)}  # noqa: E731
    return [
        run({"seq": 1, "tokens": t1[:20], "rows": "all"}),
        # Mixed batch: a new 40-token prefill (3 blocks), a 1-token decode of a
        # 20-token sequence, and the first 16-token chunk of a 50-token prefill.
        run({"seq": 2, "tokens": t2[:40], "rows": "all"},
            {"seq": 1, "tokens": t1[20:21], "rows": "last"},
            {"seq": 3, "tokens": t3, "rows": "all", "max_tokens": 16}),
        run({"seq": 3, "tokens": [], "rows": "all", "max_tokens": 16},
            {"seq": 1, "tokens": t1[21:22], "rows": "last"},
            {"seq": 2, "tokens": t2[40:41], "rows": "last"}),
        run({"seq": 1, "tokens": t1[22:23], "rows": "last"},
            {"seq": 3, "tokens": [], "rows": [33, 40, 47], "max_tokens": 16}),
        run({"seq": 3, "tokens": [], "rows": "all"}),
        # Fork a 41-token sequence (2 full blocks + a partial one), then grow
        # parent and child apart: the partial block must be copied, not shared.
        {"op": "fork", "parent": 2, "child": 4},
        run({"seq": 4, "tokens": f, "rows": "all"}, {"seq": 2, "tokens": g, "rows": "all"}),
        # Truncate into the middle of block 2, then recompute from there.
        {"op": "truncate", "seq": 2, "keep": 35},
        run({"seq": 2, "tokens": h, "rows": "all"}),
        # Release seq 1: its full block stays cached for seq 7 below.
        {"op": "release", "seq": 1},
        # Prefix cache: seq 5 shares seq 2's first 2 full blocks (32 tokens).
        run({"seq": 5, "tokens": t2[:33] + k, "rows": "all"}),
        run({"seq": 6, "tokens": t2[:33] + k, "rows": "all", "reuse_prefix": False}),
        run({"seq": 7, "tokens": t1[:16] + k, "rows": "all"}),
    ]


def check_engine_paths(folder, model, n_regular, seed):
    rng = np.random.default_rng(seed)
    ops = engine_paths_ops(rng, n_regular)
    worst, out = run_script(folder, ops, lambda toks: hf_logits(model, toks))
    res = out["results"]
    # Prefix reuse must really have happened, and equal the computation without it.
    reused, fresh, reused1 = res[-3]["items"][0], res[-2]["items"][0], res[-1]["items"][0]
    if reused["cached"] != 32 or fresh["cached"] != 0 or reused1["cached"] != 16:
        raise AssertionError(f"prefix cache gave cached = {reused['cached']} (want 32), {fresh['cached']} "
                             f"(reuse off, want 0), {reused1['cached']} (released seq's block, want 16)")
    common = [fresh["positions"].index(p) for p in reused["positions"]]
    _, r_reuse = check_close_pair(rows(reused), rows(fresh)[common])
    chunks = [len(res[1]["items"][2]["positions"]), len(res[2]["items"][0]["positions"]),
              len(res[3]["items"][1]["positions"])]
    if chunks != [16, 16, 3]:
        raise AssertionError(f"chunked prefill rows per call {chunks}, expected [16, 16, 3]")
    return f"mixed batch/chunks/fork/truncate/prefix-cache rows max rel {worst:.1e}; reuse vs no reuse rel {r_reuse:.1e}"


def check_close_pair(a, b):
    a_, r = rel_err(a, b)
    if not (r <= REL_TOL):
        raise AssertionError(f"prefix-reuse logits differ from the no-reuse ones: rel {r:.3g}")
    return a_, r


# ---------------------------------------------------------------------------
# Models

# name, mkmodel flags. Sizes: hidden 64-128, 2-3 layers, vocab 512-1000.
# The weight std is large enough that attention is far from uniform and the
# logits spread out (default 0.02 would hide RoPE / mask bugs).
MKMODEL_CASES = [
    ("mk qwen2 GQA bias untied theta1e4 f32",
     dict(arch="qwen2", hidden=64, layers=2, heads=4, kv_heads=2, intermediate=128, vocab=512, rope_theta=1e4,
          no_tie=True, dtype="f32")),
    ("mk qwen2 MHA bias tied theta1e6 bf16",
     dict(arch="qwen2", hidden=64, layers=3, heads=4, kv_heads=4, intermediate=160, vocab=600, rope_theta=1e6,
          tie=True, dtype="bf16")),
    ("mk llama GQA nobias untied theta1e4 f32 3 shards",
     dict(arch="llama", hidden=128, layers=2, heads=8, kv_heads=2, intermediate=256, vocab=1000, rope_theta=1e4,
          no_tie=True, no_qkv_bias=True, dtype="f32", shards=3)),
    ("mk llama MHA qkvo-bias tied theta1e6 bf16",
     dict(arch="llama", hidden=64, layers=2, heads=4, kv_heads=4, intermediate=128, vocab=512, rope_theta=1e6,
          tie=True, qkv_bias=True, dtype="bf16")),
    ("mk mistral GQA head_dim32 untied theta1e6 f32",
     dict(arch="mistral", hidden=64, layers=2, heads=4, kv_heads=1, head_dim=32, intermediate=128, vocab=512,
          rope_theta=1e6, no_tie=True, dtype="f32")),
]
STD = 0.15


def mk_case(name, flags, seed, paths=False):
    folder = mkmodel(scratch("mk") / "m", seed=seed, std=STD, max_position=256, **flags)
    cfg = json.loads((folder / "config.json").read_text())
    gen = json.loads((folder / "generation_config.json").read_text())
    model = hf_causal_from_folder(folder)
    n_regular = cfg["vocab_size"] - 3  # mkmodel puts 3 special tokens at the end
    stop = gen["eos_token_id"] if isinstance(gen["eos_token_id"], list) else [gen["eos_token_id"]]
    s = check_model(folder, model, n_regular, seed, tokenizer=True, stop_ids=stop)
    if paths:
        s += "; " + check_engine_paths(folder, model, n_regular, seed + 100)
    return s


def hf_save_case(arch, cfg_kw, seed, dtype=torch.float32, shard=None, paths=False):
    """Builds a model in transformers, perturbs norms and biases, saves it with
    save_pretrained, and checks the engine on the saved folder against the
    same weights in float64."""
    from transformers import LlamaConfig, LlamaForCausalLM, MistralConfig, MistralForCausalLM, Qwen2Config, Qwen2ForCausalLM

    classes = {"qwen2": (Qwen2Config, Qwen2ForCausalLM), "llama": (LlamaConfig, LlamaForCausalLM),
               "mistral": (MistralConfig, MistralForCausalLM)}
    cfg_cls, model_cls = classes[arch]
    cfg = cfg_cls(initializer_range=STD, max_position_embeddings=256, attn_implementation="eager", **cfg_kw)
    torch.manual_seed(seed)
    model = model_cls(cfg)
    perturb_(model, seed)
    model = model.to(dtype).eval()
    folder = scratch("hf") / "m"
    kw = {"max_shard_size": shard} if shard else {}
    model.save_pretrained(folder, safe_serialization=True, **kw)
    if shard and not (folder / "model.safetensors.index.json").exists():
        raise AssertionError(f"save_pretrained(max_shard_size={shard}) wrote no shard index")
    # The reference is the saved folder loaded back by transformers: casting
    # the live model with .to(bf16) would also round its RoPE inv_freq buffer,
    # which no checkpoint stores and the engine computes from rope_theta.
    ref = hf_causal_from_folder(folder)
    for (n, a), (_, b) in zip(sorted(model.state_dict().items()), sorted(ref.state_dict().items())):
        if "inv_freq" not in n and not torch.equal(a.double(), b):
            raise AssertionError(f"save_pretrained/from_pretrained round trip changed {n}")
    s = check_model(folder, ref, cfg.vocab_size, seed)
    if paths:
        s += "; " + check_engine_paths(folder, ref, cfg.vocab_size, seed + 100)
    return s


def aidreams_case():
    """The real llama2.c model in ../shared/testdata, converted by
    flashtts-convert-llama2c: transformers and the engine both reproduce the
    float64 reference logits, and transformers' greedy ids equal run.c's."""
    data = os.environ.get("FLASHTTS_TESTDATA", "")
    d = Path(data) / "models" / "aidreams260K"
    if not (d / "aidreams260K.bin").exists():
        return "skipped: ../shared/testdata is absent"
    want = json.loads((d / "expected_greedy_bos.json").read_text())
    folder = scratch("l2c") / "m"
    run([program("flashtts-convert-llama2c"), "--checkpoint", d / "aidreams260K.bin", "--out", folder])
    model = hf_causal_from_folder(folder)
    ids, ref = want["token_ids"], want["reference_logits"]
    pos = ref["positions"]
    r_hf = check_close("transformers vs reference", hf_logits(model, ids[:len(pos)])[pos], ref["logits"], pos)
    item = probe(folder, [{"op": "run", "kind": "logits",
                           "items": [{"seq": 1, "tokens": ids[:len(pos)], "rows": "all"}]}])["results"][0]["items"][0]
    r_eng = check_close("engine vs reference", rows(item), ref["logits"], pos)
    g = check_greedy("transformers greedy vs run.c", model, ids[:1], ids[1:])
    return f"transformers rel {r_hf:.1e}, engine rel {r_eng:.1e}, {g}"


def negative_control(seed):
    """The comparison must be able to fail: the same folder, with transformers
    told rope_theta 1% off, must miss the tolerance by a wide margin."""
    folder = mkmodel(scratch("neg") / "m", seed=seed, std=STD, **MKMODEL_CASES[0][1])
    cfg = json.loads((folder / "config.json").read_text())
    cfg["rope_theta"] *= 1.01
    wrong = scratch("neg") / "m"
    wrong.mkdir(parents=True, exist_ok=True)
    (wrong / "config.json").write_text(json.dumps(cfg))
    (wrong / "model.safetensors").symlink_to(folder / "model.safetensors")
    model = hf_causal_from_folder(wrong)
    try:
        check_model(folder, model, cfg["vocab_size"] - 3, seed)
    except AssertionError as e:
        if "rel" in str(e):
            return f"caught: {str(e)[:60]}..."
        raise
    raise AssertionError("a model with rope_theta 1% off passed the logit comparison")


def main():
    rep = Report("test_parity_causal")
    for i, (name, flags) in enumerate(MKMODEL_CASES):
        rep.case(name, mk_case, name, flags, seed=11 + i, paths=(i == 0))
    small = dict(vocab_size=512, hidden_size=64, intermediate_size=128, num_hidden_layers=2)
    rep.case("hf qwen2 GQA tied theta1e6 f32 sharded", hf_save_case, "qwen2",
             dict(small, num_attention_heads=4, num_key_value_heads=2, rope_theta=1e6, tie_word_embeddings=True),
             seed=21, shard="100KB", paths=True)
    rep.case("hf qwen2 MHA untied theta1e4 bf16", hf_save_case, "qwen2",
             dict(small, num_hidden_layers=3, num_attention_heads=4, num_key_value_heads=4, rope_theta=1e4,
                  tie_word_embeddings=False), seed=22, dtype=torch.bfloat16)
    rep.case("hf llama MHA qkvo+mlp bias untied theta1e4 bf16", hf_save_case, "llama",
             dict(small, vocab_size=700, num_attention_heads=4, num_key_value_heads=4, rope_theta=1e4,
                  attention_bias=True, mlp_bias=True, tie_word_embeddings=False), seed=23, dtype=torch.bfloat16)
    rep.case("hf llama GQA nobias tied theta1e6 f32", hf_save_case, "llama",
             dict(small, hidden_size=128, intermediate_size=256, num_attention_heads=8, num_key_value_heads=4,
                  rope_theta=1e6, tie_word_embeddings=True), seed=24)
    rep.case("hf mistral GQA untied theta1e4 f32", hf_save_case, "mistral",
             dict(small, num_attention_heads=4, num_key_value_heads=2, rope_theta=1e4, tie_word_embeddings=False),
             seed=25)
    rep.case("hf mistral GQA sliding_window=8 theta1e4 f32", hf_save_case, "mistral",
             dict(small, num_attention_heads=4, num_key_value_heads=2, rope_theta=1e4, sliding_window=8),
             seed=26, paths=True)
    rep.case("aidreams260K (llama2.c) converted", aidreams_case)
    rep.case("negative control: 1% rope_theta change is caught", negative_control, seed=27)
    rep.finish()


if __name__ == "__main__":
    main()
