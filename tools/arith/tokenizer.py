"""Trains the arith byte-level BPE tokenizer (HF `tokenizers`) and saves
tokenizer.json + tokenizer_config.json in the layout flashtts loads (the
Qwen2 split regex, which keeps every digit a token of its own, so that the
model does arithmetic digit by digit; NFC; ByteLevel; specials first).

Run: .venv-ref/bin/python tools/arith/tokenizer.py --out DIR [--vocab 512]
"""
from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import data  # noqa: E402

# The Qwen2 pre-tokenizer split pattern, byte for byte as in tools/mkmodel.cpp
# (flashtts recognises the pre-tokenizer by comparing this string).
QWEN2_REGEX = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|"
               r"\s+(?!\S)|\s+")
SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<extra_0>"]
CHAT_TEMPLATE = ("{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + "
                 "'<|im_end|>' + '\\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}"
                 "{% endif %}")


def chat_prompt(problem: str) -> str:
    return (f"<|im_start|>system\n{data.SYSTEM_PROMPT}<|im_end|>\n<|im_start|>user\n{problem}<|im_end|>\n"
            f"<|im_start|>assistant\n")


def corpus(n: int, seed: int):
    rng = random.Random(seed)
    out = [data.SYSTEM_PROMPT]
    for _ in range(n):
        p = data.sample_problem(rng, 1, 6)
        out.append(p.text)
        out.append(data.solution(p))
    return out


# What train() writes, and what every model folder of ours carries.
FILES = ("tokenizer.json", "tokenizer_config.json")


def copy_files(src_dir: str, out_dir: str) -> None:
    """Copies the tokenizer files of the model folder src_dir into out_dir (made if missing)."""
    os.makedirs(out_dir, exist_ok=True)
    for f in FILES:
        shutil.copy(os.path.join(src_dir, f), os.path.join(out_dir, f))


def train(out_dir: str, vocab: int = 512, n: int = 20000, seed: int = 1) -> None:
    from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.normalizer = normalizers.NFC()
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(QWEN2_REGEX), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=False, use_regex=False),
    ])
    tok.decoder = decoders.ByteLevel(add_prefix_space=False, trim_offsets=False, use_regex=False)
    tr = trainers.BpeTrainer(vocab_size=vocab, special_tokens=SPECIALS, show_progress=False,
                             initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(corpus(n, seed), trainer=tr)
    os.makedirs(out_dir, exist_ok=True)
    tok.save(os.path.join(out_dir, "tokenizer.json"))
    # Match mkmodel's layout: post_processor ByteLevel as in Qwen2's file.
    with open(os.path.join(out_dir, "tokenizer.json")) as f:
        tj = json.load(f)
    tj["post_processor"] = {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": False,
                            "use_regex": False}
    with open(os.path.join(out_dir, "tokenizer.json"), "w") as f:
        json.dump(tj, f, ensure_ascii=False, indent=1)
    ids = {s: tok.token_to_id(s) for s in SPECIALS}
    tc = {
        "add_prefix_space": False,
        "added_tokens_decoder": {str(ids[s]): {"content": s, "lstrip": False, "normalized": False, "rstrip": False,
                                               "single_word": False, "special": True} for s in SPECIALS},
        "additional_special_tokens": SPECIALS[1:],
        "bos_token": None,
        "chat_template": CHAT_TEMPLATE,
        "clean_up_tokenization_spaces": False,
        "eos_token": "<|im_end|>",
        "errors": "replace",
        "model_max_length": 512,
        "pad_token": "<|endoftext|>",
        "split_special_tokens": False,
        "tokenizer_class": "Qwen2Tokenizer",
        "unk_token": None,
    }
    with open(os.path.join(out_dir, "tokenizer_config.json"), "w") as f:
        json.dump(tc, f, indent=2)


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    ap.add_argument("--vocab", type=int, default=512)
    ap.add_argument("--n", type=int, default=20000)
    ap.add_argument("--seed", type=int, default=1)
    a = ap.parse_args()
    train(a.out, a.vocab, a.n, a.seed)
