#!/usr/bin/env python3
"""Hugging Face transformers on the GPU, on the same model folders as
flashtts-bench-cuda: the side-by-side baseline of docs/cuda.md.

  python3 bench/hf_transformers.py --model DIR [--batches 1,64] [--context 512]
                                   [--new-tokens 64] [--prefill 2048] [--json FILE]

Policy folders (a causal LM head): decode tokens/s at each batch size through
model.generate (greedy, KV cache, exactly --new-tokens tokens), taken as
(B * (N - 1)) / (time of N new tokens - time of 1 new token), so the prompt's
prefill is not counted; and prefill tokens/s of one forward pass.
PRM folders (Skywork value head, Qwen2.5-Math-PRM): the Qwen2 body's prefill
tokens/s (the head is one small matrix). bf16 weights, torch's default (sdpa)
attention. Medians of a few timed runs after a warm-up; nothing is asserted.
"""
import argparse
import json
import statistics
import time
from pathlib import Path

import torch


def timed(fn, reps=3):
    fn()  # warm-up: kernels, cuBLAS handles, allocator
    torch.cuda.synchronize()
    out = []
    for _ in range(reps):
        t = time.perf_counter()
        fn()
        torch.cuda.synchronize()
        out.append(time.perf_counter() - t)
    return statistics.median(out)


def load(folder: Path):
    cfg = json.loads((folder / "config.json").read_text())
    arch = cfg.get("architectures", ["?"])[0]
    if arch.endswith("ForCausalLM"):
        from transformers import AutoModelForCausalLM
        try:
            m = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.bfloat16)
        except TypeError:  # transformers 4.x
            m = AutoModelForCausalLM.from_pretrained(folder, torch_dtype=torch.bfloat16)
        return m.cuda().eval(), True, arch
    # A PRM: its Qwen2 body from the "model.*" tensors.
    from safetensors.torch import load_file
    from transformers import Qwen2Config, Qwen2Model
    index = folder / "model.safetensors.index.json"
    files = sorted(set(json.loads(index.read_text())["weight_map"].values())) if index.exists() else ["model.safetensors"]
    sd = {}
    for f in files:
        sd.update({k[len("model."):]: v for k, v in load_file(str(folder / f)).items() if k.startswith("model.")})
    body = Qwen2Model(Qwen2Config.from_pretrained(folder)).to(torch.bfloat16)
    missing, unexpected = body.load_state_dict(sd, strict=False)
    if missing or unexpected:
        raise SystemExit(f"{folder}: body tensors missing {missing[:3]}, unexpected {unexpected[:3]}")
    return body.cuda().eval(), False, arch


@torch.no_grad()
def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", required=True, type=Path)
    ap.add_argument("--batches", default="1,64")
    ap.add_argument("--context", type=int, default=512)
    ap.add_argument("--new-tokens", type=int, default=64)
    ap.add_argument("--prefill", type=int, default=2048)
    ap.add_argument("--json", type=Path)
    a = ap.parse_args()

    model, causal, arch = load(a.model)
    vocab = model.config.vocab_size
    gen = torch.Generator(device="cuda").manual_seed(0)
    rows = []
    n_seq, length = max(1, a.prefill // 512), min(512, a.prefill)
    ids = torch.randint(0, vocab, (n_seq, length), device="cuda", generator=gen)
    sec = timed(lambda: model(input_ids=ids))
    rows.append({"what": "prefill", "batch": n_seq, "tokens_per_s": n_seq * length / sec, "ms_per_step": sec * 1e3})
    if causal:
        for b in [int(x) for x in a.batches.split(",")]:
            prompt = torch.randint(0, vocab, (b, a.context), device="cuda", generator=gen)
            mask = torch.ones_like(prompt)

            def run(n):
                return lambda: model.generate(input_ids=prompt, attention_mask=mask, max_new_tokens=n,
                                              min_new_tokens=n, do_sample=False, pad_token_id=0)
            t_n, t_1 = timed(run(a.new_tokens)), timed(run(1))
            step = (t_n - t_1) / (a.new_tokens - 1)
            rows.append({"what": "decode (generate)", "batch": b, "tokens_per_s": b / step, "ms_per_step": step * 1e3})
    device = torch.cuda.get_device_name()
    print(f"device: {device}; model {a.model} ({arch}); torch {torch.__version__}")
    print(f"{'what':<20} {'batch':>6} {'tokens/s':>12} {'ms/step':>10}")
    for r in rows:
        print(f"{r['what']:<20} {r['batch']:>6} {r['tokens_per_s']:>12.0f} {r['ms_per_step']:>10.3f}")
    if a.json:
        import transformers
        a.json.write_text(json.dumps({"device": device, "model": str(a.model), "arch": arch, "torch": torch.__version__,
                                      "transformers": transformers.__version__, "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
