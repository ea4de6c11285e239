#!/usr/bin/env python3
"""Our tokenizer vs Hugging Face `tokenizers`, id for id and decode for decode.

Texts: every MATH-500 problem, every GSM8K question, hand-picked adversarial
strings (Unicode classes, NFC/NFD, CR/LF runs, digits, emoji, special tokens
inside text, apostrophes) and seeded random strings over a nasty alphabet.
Tokenizers: the Qwen3 and Llama 3 tokenizer.json files in the shared test data.
Our side runs through $FLASHTTS_BIN/flashtts-tokenize-batch.

Exit 0 when all match, 1 on any mismatch (the first few are printed), 77 when
the test data or the tool is missing.
"""
import json
import os
import random
import subprocess
import sys
import tempfile

SKIP = 77


def skip(why):
    print(f"SKIPPED: {why}")
    sys.exit(SKIP)


def read_jsonl(path, key):
    with open(path, encoding="utf-8") as f:
        return [json.loads(line)[key] for line in f if line.strip()]


ADVERSARIAL = [
    "", " ", "  ", "\t", "\n", "\r\n", "\r\n\r\n  \n", "\n\n\n", " \n \n", "a \n b", "x\t\ty", "trailing   ",
    "  leading", "\r\r\n\n\r", "line1\r\nline2\r\n", "tab\tthen\n\tindent", "ends with space ", "\u00a0nbsp\u00a0",
    "\u3000ideographic\u3000space", "\u2028sep\u2029", "\u0085nel", "\x0b\x0cvt ff",
    "e\u0301 cafe\u0301 caf\u00e9", "A\u030a \u212b \u00c5", "\u1100\u1161\u11a8 \uac01", "o\u0308\u0304",
    "\u0915\u094d\u0937 \u0928\u092e\u0938\u094d\u0924\u0947 \u0926\u0941\u0928\u093f\u092f\u093e",
    "\u6211\u60f3\u5728apple\u5de5\u4f5c1314151\u5929\uff5e", "\u65e5\u672c\u8a9e\u306e\u30c6\u30ad\u30b9\u30c8",
    "\u0645\u0631\u062d\u0628\u0627 \u0628\u0627\u0644\u0639\u0627\u0644\u0645 123",
    "\uff11\uff12\uff13\uff14\uff15 full-width", "x\u00b2 + y\u00b3 = z\u2074 \u00bd \u2155", "\u2460\u2461\u2462 \u2167",
    "\u0663\u0664\u0665 arabic digits", "1234567890123", "3.14159265358979", "-0.5e-10", "1,000,000", "12 345 678",
    "\U0001f680 (normal) \U0001f636\u200d\U0001f32b\ufe0f (multiple emojis concatenated) \u2705 (only emoji)",
    "\U0001f468\u200d\U0001f469\u200d\U0001f467\u200d\U0001f466 family", "\U0001f44d\U0001f3fd\U0001f44b\U0001f3ff",
    "\U0001f1fa\U0001f1f8\U0001f1ef\U0001f1f5 flags", "\U0001d538\U0001d539\u2102 math letters",
    "a<|im_end|>b<|endoftext|>", "<|im_start|>user\nhi<|im_end|>\n", "<|im_end|><|im_end|>", "<|im_end",
    "<think>\n\n</think>\n\n", "x<|begin_of_text|>y<|eot_id|>", "<|reserved_special_token_5|>",
    "'S 'll' DON'T", "I'M you'RE we'Ve they'lL it's", "'s's's", "''", "'\u017f long s", "' era",
    "Hello, y'all! How are you \U0001f601 ?", "!!!!!!", "...???", "$(x+1)^2$", "\\frac{1}{2}", "a_b-c.d/e",
    "   Hello\n    Hello", "\n =", " (", "C\u1ee7a Vi\u1ec7t", "\u043d\u0435\u0449\u043e \u043d\u0430 \u0411\u044a\u043b\u0433\u0430\u0440\u0441\u043a\u0438",
    "\u1780\u17b6\u1793\u17cb\u178f\u17c2\u1796\u17b7\u179f\u17c1\u179f", "w048 7tuijk dsdfhu", "\ufeffBOM", "zero\u200bwidth",
    "\U000e0001tag", "\U0010fffd private", "\x00\x01\x1f controls", "\x7f del", "a" * 300, " " * 40 + "x",
    "\n" * 20, "9" * 100, "\u4e00" * 200, "\U0001f600" * 30,
]

POOL = (list("aZ'sSdtlLmrRve ") + [" ", " ", "\t", "\n", "\r", "\r\n", "\u00a0", "\u3000"] + list("0123456789") +
        list(".,!?$\\{}()[]-_/*+=<>|\"#@") + ["\u00e9", "e\u0301", "\u00df", "\u0915", "\u094d", "\u6211", "\u30c6",
        "\u0645", "\uff11", "\u00b2", "\u00bd", "\U0001f600", "\u200d", "\U0001f3fd", "\ufe0f", "\u0301", "\u017f",
        "<|im_end|>", "<think>", "<|eot_id|>"])


def random_strings(n, seed=1234):
    rng = random.Random(seed)
    return ["".join(rng.choice(POOL) for _ in range(rng.randint(1, 40))) for _ in range(n)]


def load_hf(Tokenizer, path):
    """tokenizers < 0.20 reads merges only as "a b" strings; newer files store
    [a, b] pairs. Byte-level tokens never hold a space, so rewriting is exact."""
    try:
        return Tokenizer.from_file(path)
    except Exception:
        with open(path, encoding="utf-8") as f:
            doc = json.load(f)
        doc["model"]["merges"] = [m if isinstance(m, str) else " ".join(m) for m in doc["model"]["merges"]]
        with tempfile.NamedTemporaryFile("w", suffix=".json", encoding="utf-8", delete=False) as f:
            json.dump(doc, f, ensure_ascii=False)
        try:
            return Tokenizer.from_file(f.name)
        finally:
            os.unlink(f.name)


def ours(tool, tokenizer, texts, parse_special):
    inp = "".join(json.dumps({"text": t, "parse_special": parse_special}) + "\n" for t in texts)
    res = subprocess.run([tool, "--tokenizer", tokenizer], input=inp.encode(), capture_output=True, check=False)
    if res.returncode != 0:
        print(res.stderr.decode(errors="replace"))
        sys.exit(1)
    return [json.loads(line) for line in res.stdout.decode().split("\n") if line]


def compare(name, hf, tool, path, texts, diffs, parse_special=True):
    """Counts texts where ids and decode agree. parse_special=False is HF's
    encode_special_tokens=True: special tokens become plain text."""
    got = ours(tool, path, texts, parse_special)
    hf.encode_special_tokens = not parse_special
    want = hf.encode_batch(texts, add_special_tokens=False)
    hf.encode_special_tokens = False
    ok = 0
    for text, g, w in zip(texts, got, want):
        hf_decoded = hf.decode(w.ids, skip_special_tokens=False)
        if g["ids"] == w.ids and g["decoded"] == hf_decoded:
            ok += 1
        elif len(diffs) < 8:
            diffs.append(f"{name}: {text[:80]!r}\n  ours {g['ids'][:24]} {g['decoded'][:40]!r}\n"
                         f"  hf   {w.ids[:24]} {hf_decoded[:40]!r}")
    return ok


def main():
    testdata = os.environ.get("FLASHTTS_TESTDATA", "")
    bindir = os.environ.get("FLASHTTS_BIN", "")
    tool = os.path.join(bindir, "flashtts-tokenize-batch")
    tok = os.path.join(testdata, "tokenizers")
    needed = [os.path.join(tok, "qwen3/tokenizer.json"), os.path.join(tok, "llama3/tokenizer.json"),
              os.path.join(testdata, "datasets/math500/test.jsonl"), os.path.join(testdata, "datasets/gsm8k/test.jsonl")]
    for p in needed:
        if not os.path.exists(p):
            skip(f"{p} is missing")
    if not os.access(tool, os.X_OK):
        skip(f"{tool} is not built")
    try:
        from tokenizers import Tokenizer
    except ImportError:
        skip("python package tokenizers is missing")

    datasets = (read_jsonl(needed[2], "problem") + read_jsonl(needed[3], "question"))
    extra = ADVERSARIAL + random_strings(1000)
    summary, diffs, failed = [], [], False
    for name in ("qwen3", "llama3"):
        path = os.path.join(tok, name, "tokenizer.json")
        hf = load_hf(Tokenizer, path)
        ok_data = compare(name, hf, tool, path, datasets, diffs)
        ok_extra = compare(name, hf, tool, path, extra, diffs)
        ok_plain = compare(name + " (special as text)", hf, tool, path, extra, diffs, parse_special=False)
        summary.append(f"{name} {ok_data}/{len(datasets)} (+ adversarial {ok_extra}/{len(extra)},"
                       f" special-as-text {ok_plain}/{len(extra)})")
        failed |= ok_data != len(datasets) or ok_extra != len(extra) or ok_plain != len(extra)
    print("tokenizer_hf: " + " ".join(summary))
    for d in diffs:
        print(d)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
