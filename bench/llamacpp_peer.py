#!/usr/bin/env python3
"""llama.cpp as a peer figure for flashtts-bench-engine: a bench tool only,
never part of the build or the tests, and no dependency of the project.

Run through bench/llamacpp_peer.sh, which makes the venv (llama-cpp-python,
gguf, numpy) and calls, with that venv's python:

  llamacpp_peer.py convert --model DIR --out FILE.gguf --dtype f32|bf16
      A Qwen2 / Llama / Mistral Hugging Face folder (config.json,
      model.safetensors or its shards, tokenizer.json) to GGUF, written here
      with gguf's GGUFWriter. Llama and Mistral q/k rows are permuted from HF's
      rotate_half layout to the adjacent pairs of llama.cpp's "llama" rope;
      Qwen2 keeps HF's layout (llama.cpp runs it with NEOX rope). The
      vocabulary is only what llama.cpp needs to load: the benches feed ids.
  llamacpp_peer.py bench --gguf FILE [--threads N] [--prefill 512] [--steps 32] [--prompt 64]
      Prefill tokens/s of one --prefill-token eval (after a warm-up) and batch-1
      decode tokens/s over --steps single-token evals after a --prompt-token
      prompt (flashtts-bench-engine's default); random ids, best of 3.
  llamacpp_peer.py check --model DIR --gguf FILE
      llama.cpp's logits for a 16-token random prompt against transformers'
      (f32 HF model, run in a subprocess by .venv-ref's python or Debian's).
"""
import argparse
import json
import os
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent


def hf_tensors(folder: Path):
    """(name, f32 array) for every tensor of the folder's safetensors files.
    Read by hand (8-byte header size, JSON header, raw data) so that bf16
    folders load too: numpy has no bfloat16."""
    index = folder / "model.safetensors.index.json"
    files = (sorted(set(json.loads(index.read_text())["weight_map"].values()))
             if index.exists() else ["model.safetensors"])
    for f in files:
        path = folder / f
        with open(path, "rb") as fh:
            (n,) = struct.unpack("<Q", fh.read(8))
            header = json.loads(fh.read(n))
        data = np.memmap(path, dtype=np.uint8, mode="r", offset=8 + n)
        for name, info in header.items():
            if name == "__metadata__":
                continue
            a, b = info["data_offsets"]
            raw, dt = data[a:b], info["dtype"]
            if dt == "BF16":
                arr = (raw.view(np.uint16).astype(np.uint32) << 16).view(np.float32)
            elif dt in ("F32", "F16"):
                arr = raw.view(np.float32 if dt == "F32" else np.float16).astype(np.float32)
            else:
                raise SystemExit(f"{path}: {name}: dtype {dt} not handled")
            yield name, arr.reshape(info["shape"])


def gguf_name(hf: str) -> str | None:
    """HF tensor name -> llama.cpp's GGUF name (None: not stored)."""
    top = {"model.embed_tokens.weight": "token_embd.weight", "model.norm.weight": "output_norm.weight",
           "lm_head.weight": "output.weight"}
    if hf in top:
        return top[hf]
    if hf.endswith("rotary_emb.inv_freq"):
        return None
    p = hf.split(".")  # model.layers.N.<module...>.<weight|bias>
    if p[:2] != ["model", "layers"]:
        raise SystemExit(f"unexpected tensor {hf}")
    sub = {"input_layernorm": "attn_norm", "post_attention_layernorm": "ffn_norm",
           "self_attn.q_proj": "attn_q", "self_attn.k_proj": "attn_k", "self_attn.v_proj": "attn_v",
           "self_attn.o_proj": "attn_output", "mlp.gate_proj": "ffn_gate", "mlp.up_proj": "ffn_up",
           "mlp.down_proj": "ffn_down"}[".".join(p[3:-1])]
    return f"blk.{p[2]}.{sub}.{p[-1]}"


def rope_pairs(w: np.ndarray, n_head: int) -> np.ndarray:
    """Rows of each head from HF's halves layout (i pairs with i + d/2) to
    llama.cpp's adjacent pairs (2i with 2i+1): new row 2i = old i, 2i+1 = old i + d/2."""
    return w.reshape(n_head, 2, w.shape[0] // n_head // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def write_vocab(w, folder: Path, cfg: dict, arch: str):
    import gguf
    tok = json.loads((folder / "tokenizer.json").read_text())
    n_vocab = cfg["vocab_size"]
    tokens = [f"[PAD{i}]" for i in range(n_vocab)]
    types = [gguf.TokenType.UNUSED] * n_vocab
    for text, i in tok["model"]["vocab"].items():
        if i < n_vocab:
            tokens[i], types[i] = text, gguf.TokenType.NORMAL
    for a in tok.get("added_tokens", []):
        if a["id"] < n_vocab:
            tokens[a["id"]] = a["content"]
            types[a["id"]] = gguf.TokenType.CONTROL if a.get("special") else gguf.TokenType.USER_DEFINED
    merges = [m if isinstance(m, str) else " ".join(m) for m in tok["model"]["merges"]]
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre("qwen2" if arch == "qwen2" else "default")  # only matters for text
    w.add_token_list(tokens)
    w.add_token_types(types)
    w.add_token_merges(merges)
    for key, add in (("bos_token_id", w.add_bos_token_id), ("eos_token_id", w.add_eos_token_id)):
        v = cfg.get(key)
        v = v[0] if isinstance(v, list) else v
        if v is not None:
            add(v)


def convert(args):
    import gguf
    folder = Path(args.model)
    cfg = json.loads((folder / "config.json").read_text())
    hf_arch = cfg["architectures"][0]
    arch = {"Qwen2ForCausalLM": "qwen2", "LlamaForCausalLM": "llama", "MistralForCausalLM": "llama"}.get(hf_arch)
    if arch is None:
        raise SystemExit(f"{hf_arch}: only Qwen2, Llama and Mistral folders are handled")
    if cfg.get("rope_scaling") or (hf_arch == "MistralForCausalLM" and cfg.get("sliding_window")):
        raise SystemExit("rope_scaling / sliding_window: not handled by this converter")
    n_head, n_kv = cfg["num_attention_heads"], cfg.get("num_key_value_heads", cfg["num_attention_heads"])
    head_dim = cfg.get("head_dim") or cfg["hidden_size"] // n_head

    w = gguf.GGUFWriter(args.out, arch)
    w.add_name(folder.name)
    w.add_context_length(cfg["max_position_embeddings"])
    w.add_embedding_length(cfg["hidden_size"])
    w.add_block_count(cfg["num_hidden_layers"])
    w.add_feed_forward_length(cfg["intermediate_size"])
    w.add_head_count(n_head)
    w.add_head_count_kv(n_kv)
    w.add_key_length(head_dim)
    w.add_value_length(head_dim)
    w.add_rope_dimension_count(head_dim)
    w.add_layer_norm_rms_eps(cfg["rms_norm_eps"])
    w.add_rope_freq_base(cfg.get("rope_theta", 10000.0))
    w.add_vocab_size(cfg["vocab_size"])
    bf16 = args.dtype == "bf16"
    w.add_file_type(gguf.LlamaFileType.MOSTLY_BF16 if bf16 else gguf.LlamaFileType.ALL_F32)
    write_vocab(w, folder, cfg, arch)

    for hf, t in hf_tensors(folder):
        name = gguf_name(hf)
        if name is None:
            continue
        if arch == "llama" and ".attn_q." in name:
            t = rope_pairs(t, n_head)
        elif arch == "llama" and ".attn_k." in name:
            t = rope_pairs(t, n_kv)
        if bf16 and t.ndim == 2:  # 1-D tensors (norms, biases) stay f32, as llama.cpp's converter does
            w.add_tensor(name, gguf.quants.quantize(t, gguf.GGMLQuantizationType.BF16),
                         raw_dtype=gguf.GGMLQuantizationType.BF16)
        else:
            w.add_tensor(name, np.ascontiguousarray(t, dtype=np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    print(f"wrote {args.out} ({os.path.getsize(args.out) / 1e6:.1f} MB, {arch}, {args.dtype})")


def load(path, threads, **kw):
    from llama_cpp import Llama
    return Llama(model_path=path, n_ctx=1024, n_threads=threads, n_threads_batch=threads,
                 n_batch=512, verbose=False, **kw)


def bench(args):
    llm = load(args.gguf, args.threads)
    rng = np.random.default_rng(0)
    ids = lambda n: rng.integers(0, llm.n_vocab(), n).tolist()  # noqa: E731
    prompt = ids(args.prefill)

    def prefill():
        llm.reset()
        t = time.perf_counter()
        llm.eval(prompt)
        return time.perf_counter() - t

    def decode():
        llm.reset()
        llm.eval(ids(args.prompt))  # not timed
        steps = ids(args.steps)
        t = time.perf_counter()
        for tok in steps:
            llm.eval([tok])
        return time.perf_counter() - t

    prefill()  # warm-up
    tp = min(prefill() for _ in range(3))
    td = min(decode() for _ in range(3))
    print(f"prefill {args.prefill} tok: {args.prefill / tp:.1f} tok/s")
    print(f"decode b=1: {args.steps / td:.1f} tok/s ({1e3 * td / args.steps:.2f} ms/step)")


def ref_python():
    """A python that imports torch and transformers, or None."""
    for py in (ROOT / ".venv-ref/bin/python", Path("/usr/bin/python3")):
        if py.exists() and subprocess.run([str(py), "-c", "import torch, transformers"],
                                          capture_output=True).returncode == 0:
            return str(py)
    return None


def hf_logits(args):
    """(run by the reference python) transformers' f32 logits for --ids, saved to --out."""
    import torch
    import transformers
    from transformers import AutoModelForCausalLM
    transformers.logging.set_verbosity_error()
    m = AutoModelForCausalLM.from_pretrained(args.model, torch_dtype=torch.float32).float().eval()
    ids = torch.tensor([[int(x) for x in args.ids.split(",")]])
    with torch.no_grad():
        np.save(args.out, m(ids).logits[0].numpy().astype(np.float32))


def check(args):
    py = ref_python()
    if py is None:
        print("check skipped: no python with torch + transformers (.venv-ref, /usr/bin/python3)")
        return
    cfg = json.loads((Path(args.model) / "config.json").read_text())
    ids = np.random.default_rng(1).integers(0, cfg["vocab_size"], 16).tolist()
    with tempfile.TemporaryDirectory() as d:
        out = os.path.join(d, "ref.npy")
        subprocess.run([py, __file__, "hf-logits", "--model", args.model, "--out", out,
                        "--ids", ",".join(map(str, ids))], check=True)
        ref = np.load(out)
    # f32 KV cache here (llama.cpp's default, kept by bench, is f16): the check is of the weights
    llm = load(args.gguf, args.threads, logits_all=True, type_k=0, type_v=0)  # GGML_TYPE_F32
    llm.eval(ids)
    got = np.array(llm.scores[: len(ids)], dtype=np.float32)
    diff = np.abs(got - ref).max()
    agree = int((got.argmax(1) == ref.argmax(1)).sum())
    print(f"check {Path(args.gguf).name} vs transformers ({py}): max |logit diff| {diff:.3g} "
          f"(max |logit| {np.abs(ref).max():.3g}, relative {diff / np.abs(ref).max():.2g}); "
          f"argmax agrees at {agree}/{len(ids)} positions")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    c = sub.add_parser("convert")
    c.add_argument("--model", required=True)
    c.add_argument("--out", required=True)
    c.add_argument("--dtype", choices=["f32", "bf16"], default="f32")
    b = sub.add_parser("bench")
    b.add_argument("--gguf", required=True)
    b.add_argument("--threads", type=int, default=os.cpu_count())
    b.add_argument("--prefill", type=int, default=512)
    b.add_argument("--steps", type=int, default=32)
    b.add_argument("--prompt", type=int, default=64)
    k = sub.add_parser("check")
    k.add_argument("--model", required=True)
    k.add_argument("--gguf", required=True)
    k.add_argument("--threads", type=int, default=os.cpu_count())
    h = sub.add_parser("hf-logits")
    h.add_argument("--model", required=True)
    h.add_argument("--ids", required=True)
    h.add_argument("--out", required=True)
    args = ap.parse_args()
    {"convert": convert, "bench": bench, "check": check, "hf-logits": hf_logits}[args.cmd](args)


if __name__ == "__main__":
    sys.exit(main())
