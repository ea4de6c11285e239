#!/usr/bin/env python3
"""The official `openai` Python package against the HTTP gateway of a real
`flashtts serve --http 127.0.0.1:0` on the shipped models.

Lists the model, asks for completions and chat completions (plain, several
choices, a search named with the extra field `strategy` through
`extra_body`), streams both (deltas that join to the plain text, usage when
asked for), and checks that bad input raises the package's own
BadRequestError with the error object's code.

Run by CTest as `http.openai` with the reference venv's Python
(tools/setup_reference_venv.sh installs the pinned `openai`) and
FLASHTTS_BIN set to the build folder. Exit status 77 (skipped) when the
package is missing.
"""

import os
import re
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

try:
    import openai
except ImportError as e:
    print(f"SKIP: {e} (tools/setup_reference_venv.sh installs it)")
    sys.exit(77)

ROOT = Path(__file__).resolve().parents[2]
PROBLEM = "Let a = 5. Let b = a * 3. Let c = b - 4. What is c?"


def check(cond, what):
    if not cond:
        raise AssertionError(what)


def start_server(bin_dir, tmp):
    log = open(tmp / "log", "w")
    proc = subprocess.Popen([str(Path(bin_dir) / "flashtts"), "serve", "--config", str(ROOT / "configs" / "default.toml"),
                             "--endpoint", f"ipc://{tmp}/sock", "--http", "127.0.0.1:0"],
                            stdout=log, stderr=subprocess.STDOUT)
    url = None
    for _ in range(100):
        m = re.search(r"^flashtts serve: HTTP on (http://\S+)$", (tmp / "log").read_text(), re.M)
        if m:
            url = m.group(1)
            break
        time.sleep(0.1)
    check(url, "the server printed no HTTP address")
    for _ in range(100):
        try:
            with urllib.request.urlopen(url + "/health", timeout=5) as r:
                if r.status == 200:
                    return proc, url
        except OSError:
            pass  # 503 (urllib raises HTTPError, an OSError) until the models are loaded
        time.sleep(0.1)
    raise AssertionError("/health never answered 200")


def run(url):
    client = openai.OpenAI(base_url=url + "/v1", api_key="unused", max_retries=0, timeout=60)

    models = client.models.list()
    check(len(models.data) == 1, f"models: {models}")
    model = models.data[0].id

    # Completions: two choices with a seed, usage filled in, the seed repeats.
    c = client.completions.create(model=model, prompt=PROBLEM, max_tokens=12, n=2, seed=5)
    check(c.object == "text_completion" and len(c.choices) == 2, f"completions: {c}")
    check([ch.index for ch in c.choices] == [0, 1], "choice indices")
    check(c.usage.prompt_tokens > 0 and 0 < c.usage.completion_tokens <= 24, f"usage: {c.usage}")
    check(c.usage.total_tokens == c.usage.prompt_tokens + c.usage.completion_tokens, "total_tokens")
    again = client.completions.create(model=model, prompt=PROBLEM, max_tokens=12, n=2, seed=5)
    check([ch.text for ch in again.choices] == [ch.text for ch in c.choices], "a seed gives the same choices")

    # Chat, greedy: the shipped policy writes a solution in the chat template.
    chat = client.chat.completions.create(model=model, messages=[{"role": "user", "content": PROBLEM}],
                                          max_tokens=60, temperature=0)
    msg = chat.choices[0].message
    check(chat.object == "chat.completion" and msg.role == "assistant", f"chat: {chat}")
    check("=" in msg.content, f"chat content: {msg.content!r}")
    check(chat.usage.completion_tokens > 0, "chat usage")

    # Streamed chat: deltas join to the same text; usage comes last.
    parts, finish, usage = [], None, None
    stream = client.chat.completions.create(model=model, messages=[{"role": "user", "content": PROBLEM}],
                                            max_tokens=60, temperature=0, stream=True,
                                            stream_options={"include_usage": True})
    for chunk in stream:
        if chunk.usage is not None:
            usage = chunk.usage
        for ch in chunk.choices:
            if ch.delta.content:
                parts.append(ch.delta.content)
            finish = ch.finish_reason or finish
    check("".join(parts) == msg.content, f"streamed {''.join(parts)!r} != {msg.content!r}")
    check(finish == chat.choices[0].finish_reason, f"finish {finish}")
    check(usage is not None and usage.completion_tokens == chat.usage.completion_tokens, f"stream usage {usage}")

    # Streamed completions.
    text = "".join(ch.choices[0].text for ch in client.completions.create(
        model=model, prompt=PROBLEM, max_tokens=20, temperature=0, stream=True) if ch.choices)
    plain = client.completions.create(model=model, prompt=PROBLEM, max_tokens=20, temperature=0)
    check(text == plain.choices[0].text, f"streamed completion {text!r} != {plain.choices[0].text!r}")

    # A search: 'strategy' as an extra field (vLLM style), n samples.
    s = client.chat.completions.create(model=model, messages=[{"role": "user", "content": PROBLEM}], n=4,
                                       extra_body={"strategy": "beam_search", "beam_width": 2, "seed": 1})
    extra = s.model_extra["flashtts"]
    check(extra["strategy"] == "beam_search" and extra["n"] == 4, f"search: {extra}")
    check(s.choices[0].message.content == extra["text"], "the chosen solution is the choice")
    check(s.usage.model_extra["prm_tokens"] > 0, f"search usage {s.usage}")
    print(f"beam_search answer: {extra['answer']!r} (score {extra['score']:.4f})")

    # Bad input: the package's own error classes, with our error object.
    try:
        client.completions.create(model=model, prompt=PROBLEM, max_tokens=100000)
        raise AssertionError("max_tokens = 100000 was accepted")
    except openai.BadRequestError as e:
        check(e.status_code == 400 and e.code == "bad_request", f"error {e.status_code} {e.code}")
        check("max_tokens" in e.message, e.message)
    try:
        client.chat.completions.create(model=model, messages=[{"role": "system", "content": "x"},
                                                              {"role": "user", "content": "y"}])
        raise AssertionError("a system message was accepted")
    except openai.BadRequestError as e:
        check(e.param == "messages[0].role", f"param {e.param}")
    try:
        client.completions.create(model=model, prompt="x" * 20000, extra_body={"strategy": "best_of_n"})
        raise AssertionError("a 20000-byte problem was accepted")
    except openai.APIStatusError as e:
        check(e.status_code == 413 and e.code == "too_large", f"error {e.status_code} {e.code}")


def main():
    bin_dir = os.environ.get("FLASHTTS_BIN")
    check(bin_dir, "FLASHTTS_BIN must name the build folder")
    print(f"openai {openai.__version__}")
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        proc, url = start_server(bin_dir, tmp)
        try:
            run(url)
            proc.send_signal(signal.SIGTERM)
            rc = proc.wait(timeout=10)
            check(rc == 0, f"the server exited with {rc} after SIGTERM")
        except BaseException:
            print("--- server log\n" + (tmp / "log").read_text())
            raise
        finally:
            if proc.poll() is None:
                proc.kill()
    print("PASS: http.openai")


if __name__ == "__main__":
    main()
