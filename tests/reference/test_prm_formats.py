#!/usr/bin/env python3
"""PRM input formats, token for token, against the published reference code.

For each PRM family the input ids and the score positions that flashtts builds
(through $FLASHTTS_BIN/flashtts-prm-input) must equal what the reference
implementation builds with Hugging Face tokenizers / transformers:

- Qwen2.5-Math-PRM (model card): apply_chat_template over system, user and an
  assistant turn of the steps joined and ended by <extra_0>; scores at <extra_0>.
- Skywork-o1 PRM (skywork-o1-prm-inference, prepare_input): encode(bos + problem
  + "\\n"), then the response split at the step token, each piece encoded and
  followed by the step token; scores where reward_flags are 1.
- Math-Shepherd (search-and-learn MathShepherd.score): "\\n\\n" -> " ки\\n\\n",
  a final " ки", question first; scores at the tag's last token.
- RLHFlow (search-and-learn RLHFFlow._score_batched): Llama 3 chat with each
  step a user turn answered "+"; scores one token before each "+".

Tokenizers: the Qwen3 tokenizer.json (with <extra_0> added, as Qwen2.5-Math-PRM
has it) and the Llama 3 tokenizer.json + chat template from the shared test data.
Exit 0 on a match, 1 on a mismatch, 77 when the data or the tool is missing.
"""
import atexit
import json
import os
import shutil
import subprocess
import sys
import tempfile

SKIP = 77
DATA = os.environ.get("FLASHTTS_TESTDATA", "")
BIN = os.environ.get("FLASHTTS_BIN", "")

PROBLEM = "What is 2 + 3 * 4?"
CASES = [
    ["First, 3 * 4 = 12.", "Then 2 + 12 = 14.\nSo the answer is \\boxed{14}."],
    ["We compute   step by step.", " 3*4=12", "2+12 = 14 ", "\\boxed{14}"],
    ["Only one step: 14."],
]


def skip(why):
    print(f"SKIPPED: {why}")
    sys.exit(SKIP)


def flashtts(tok_dir, family, fmt, problem, steps, extra=()):
    cmd = [os.path.join(BIN, "flashtts-prm-input"), "--tokenizer", tok_dir, "--family", family, "--format", fmt,
           "--problem", problem] + list(extra)
    for s in steps:
        cmd += ["--step", s]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    j = json.loads(out)
    return j["ids"], j["score_positions"]


def main():
    qwen_json = os.path.join(DATA, "tokenizers", "qwen3", "tokenizer.json")
    llama_dir = os.path.join(DATA, "tokenizers", "llama3")
    qwen2_cfg = os.path.join(DATA, "tokenizers", "qwen2", "tokenizer_config.json")
    if not os.path.isfile(qwen_json) or not os.path.isdir(llama_dir):
        skip("shared test data (tokenizers) is missing")
    if not os.path.isfile(os.path.join(BIN, "flashtts-prm-input")):
        skip("flashtts-prm-input is not built")
    from tokenizers import AddedToken, Tokenizer
    from transformers import PreTrainedTokenizerFast

    tmp = tempfile.mkdtemp(prefix="flashtts-prm-formats-")
    atexit.register(shutil.rmtree, tmp, True)  # every exit path, skips and failures included
    qdir = os.path.join(tmp, "qwen-prm")
    os.makedirs(qdir)
    # tokenizers < 0.20 reads merges only as "a b" strings; the Qwen3 file
    # stores pairs. Rewrite them (same merges) for this version.
    doc = json.load(open(qwen_json, encoding="utf-8"))
    doc["model"]["merges"] = [m if isinstance(m, str) else " ".join(m) for m in doc["model"]["merges"]]
    t = Tokenizer.from_str(json.dumps(doc))
    t.add_special_tokens([AddedToken("<extra_0>", special=True, normalized=False)])
    t.save(os.path.join(qdir, "tokenizer.json"))
    qwen = PreTrainedTokenizerFast(tokenizer_file=os.path.join(qdir, "tokenizer.json"))
    qwen.chat_template = json.load(open(qwen2_cfg))["chat_template"]
    llama_cfg = json.load(open(os.path.join(llama_dir, "tokenizer_config.json")))
    llama = PreTrainedTokenizerFast(tokenizer_file=os.path.join(llama_dir, "tokenizer.json"),
                                    bos_token=llama_cfg["bos_token"], eos_token=llama_cfg["eos_token"])
    llama.chat_template = llama_cfg["chat_template"]

    failures = 0

    def check(name, got, want):
        nonlocal failures
        if got != want:
            failures += 1
            print(f"MISMATCH {name}:\n  flashtts  {got}\n  reference {want}")
        else:
            print(f"ok {name}: {len(got[0])} ids, scores at {got[1]}")

    for k, steps in enumerate(CASES):
        # Qwen2.5-Math-PRM
        extra0 = qwen.convert_tokens_to_ids("<extra_0>")
        msgs = [{"role": "system", "content": "Please reason step by step, and put your final answer within \\boxed{}."},
                {"role": "user", "content": PROBLEM},
                {"role": "assistant", "content": "<extra_0>".join(steps) + "<extra_0>"}]
        text = qwen.apply_chat_template(msgs, tokenize=False, add_generation_prompt=False)
        ids = qwen.encode(text)
        want = (ids, [i for i, x in enumerate(ids) if x == extra0])
        check(f"qwen_chat case {k}", flashtts(qdir, "classifier", "qwen_chat", PROBLEM, steps), want)

        # Skywork-o1 PRM: bos is <|endoftext|> for the Qwen2.5 base.
        bos = "<|endoftext|>"
        prompt = qwen.encode(bos + PROBLEM + "\n")
        flags = [0] * len(prompt)
        tag = qwen.encode("\n")[-1]
        resp = []
        for piece in "\n\n".join(steps).split("\n"):
            p = qwen.encode(piece) if piece != "" else []
            p += [tag]
            f = [0] * len(p)
            f[-1] = 1
            resp += p
            flags += f
        ids = prompt + resp
        flagged = [i for i, x in enumerate(flags) if x == 1]
        # One score per step: the flag that closes each step's last piece.
        ends, n = [], 0
        for s_i, s in enumerate(steps):
            n += s.count("\n") + 1 + (1 if s_i else 0)
            ends.append(flagged[n - 1])
        got = flashtts(qdir, "value_head", "skywork", PROBLEM, steps, ["--bos-id", str(qwen.convert_tokens_to_ids(bos))])
        check(f"skywork case {k}", got, (ids, ends))

        # Math-Shepherd as search-and-learn builds it.
        out = "\n\n".join(steps).replace("\n\n", " ки\n\n")
        if out[-2:] != "\n\n":
            out += " ки"
        ids = qwen.encode(f"{PROBLEM}\n {out}")
        tag_ids = qwen.encode(" ки")
        pos = [i + len(tag_ids) - 1 for i in range(len(ids) - len(tag_ids) + 1) if ids[i:i + len(tag_ids)] == tag_ids]
        check(f"math_shepherd case {k}", flashtts(qdir, "lm_logits", "math_shepherd", PROBLEM, steps), (ids, pos))

        # RLHFlow as search-and-learn builds it (the "ки" twin marks the spots).
        conv, conv2 = [], []
        for i, s in enumerate(steps):
            text = PROBLEM + " " + s if i == 0 else s
            conv += [{"content": text, "role": "user"}, {"content": "+", "role": "assistant"}]
            conv2 += [{"content": text, "role": "user"}, {"content": "ки", "role": "assistant"}]
        ids = llama.apply_chat_template(conv)
        ids2 = llama.apply_chat_template(conv2)
        special = llama("ки", add_special_tokens=False).input_ids[0]  # sal: [1], after the BOS its tokenizer adds
        pos = [i for i in range(len(ids2) - 1) if ids2[i + 1] == special]
        check(f"rlhflow case {k}", flashtts(llama_dir, "lm_logits", "rlhflow", PROBLEM, steps), (ids, pos))

    print("FAILED" if failures else "all PRM formats match the reference")
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
