#!/usr/bin/python3
"""The Python client (tools/python/flashtts_client.py) against a real `flashtts serve`.

Writes a tiny random-weight Qwen2 policy and Qwen2 PRM with flashtts-mkmodel,
starts the server on an ipc:// endpoint in a temporary folder, and checks the
client protocol v1 (docs/protocol.md) through the client: ping, streaming
solve, generate, score, stats, cancel, a timeout that cancels, several
requests in flight on one socket answered out of order, error codes, the
example script, and a clean shutdown on SIGINT (requests in flight answered
with `shutting_down`, exit status 0 within 5 s). Before the server starts:
no server at an ipc:// path or a free tcp:// port raises NoServerError
within `connect_timeout`, and a ping left unanswered then does not confuse
the requests after it once the server is up.

Run by CTest as `client.python` with FLASHTTS_BIN set to the build folder.
Exit status 77 (skipped) when python3-zmq or python3-msgpack is missing.
"""

import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

try:
    import msgpack  # noqa: F401
    import zmq  # noqa: F401
except ImportError as e:
    print(f"SKIP: {e} (install python3-zmq and python3-msgpack)")
    sys.exit(77)

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tools" / "python"))
from flashtts_client import Client, FlashttsError, NoServerError  # noqa: E402

N = 4  # [search] n in the test's configuration


class Failed(Exception):
    pass


def check(cond, what):
    if not cond:
        raise Failed(what)


def expect_error(code, fn, *args, **kwargs):
    """Runs fn and returns the FlashttsError it raises, which must carry `code`."""
    try:
        r = fn(*args, **kwargs)
    except FlashttsError as e:
        check(e.code == code, f"expected error code {code!r}, got {e.code!r} ({e.message})")
        check(isinstance(e.message, str) and e.message, "an error carries a sentence")
        return e
    raise Failed(f"expected error {code!r}, got a result: {str(r)[:200]}")


# ---------------------------------------------------------------- the server

def write_models(bin_dir, tmp):
    mkmodel = Path(bin_dir) / "flashtts-mkmodel"
    shape = ["--hidden", "64", "--layers", "2", "--heads", "4", "--kv-heads", "2", "--intermediate", "128",
             "--vocab", "512", "--seed", "7"]
    # The policy gets room for the 20,000-token generation the cancel test
    # interrupts (mkmodel's default max_position_embeddings is 4096).
    subprocess.run([str(mkmodel), "--out", str(tmp / "policy"), "--arch", "qwen2", "--max-position", "32768"] + shape,
                   check=True, stdout=subprocess.DEVNULL)
    subprocess.run([str(mkmodel), "--out", str(tmp / "prm"), "--arch", "qwen2-prm"] + shape,
                   check=True, stdout=subprocess.DEVNULL)


def write_config(tmp, endpoint):
    text = f"""log_level = "info"

[models]
policy = "{tmp / 'policy'}"
prm = "{tmp / 'prm'}"

[memory]
budget_mb = 64

[engine]
generator_threads = 1
verifier_threads = 1

[search]
n = {N}
max_steps = 2
max_tokens_per_step = 12

[limits]
max_tokens = 20000

[endpoints]
clients = ["{endpoint}"]
"""
    path = tmp / "flashtts.toml"
    path.write_text(text)
    return path


class Server:
    """`flashtts serve` as a subprocess; its log goes to a file."""

    def __init__(self, bin_dir, config, log_path):
        self.log_path = log_path
        self.log = open(log_path, "w")
        self.proc = subprocess.Popen([str(Path(bin_dir) / "flashtts"), "serve", "--config", str(config)],
                                     stdout=subprocess.PIPE, stderr=self.log, text=True)
        self.stdout = []
        ready = threading.Event()

        def read_stdout():  # keeps the pipe drained for the server's lifetime
            for line in self.proc.stdout:
                self.stdout.append(line.rstrip("\n"))
                if "listening on" in line:
                    ready.set()
            ready.set()

        threading.Thread(target=read_stdout, daemon=True).start()
        if not ready.wait(60) or self.proc.poll() is not None:
            raise Failed(f"the server did not start:\n{self.logs()}")

    def logs(self):
        self.log.flush()
        return "\n".join(self.stdout) + "\n" + Path(self.log_path).read_text()

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.log.close()


# ---------------------------------------------------------------- the checks

def free_tcp_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def expect_no_server(fn, endpoint, within):
    """Runs fn, which must raise NoServerError naming `endpoint` after about `within` s; returns the seconds."""
    t0 = time.monotonic()
    try:
        r = fn()
    except NoServerError as e:
        took = time.monotonic() - t0
        want = f"no flashtts server answers at {endpoint} (no reply to ping within {within:g} s)"
        check(str(e) == want, f"the error says {want!r}, not {str(e)!r}")
        check(e.endpoint == endpoint and isinstance(e, ConnectionError) and isinstance(e, TimeoutError),
              f"NoServerError is a ConnectionError and a TimeoutError with the endpoint: {e!r}")
        check(within * 0.9 <= took < within + 2, f"it waited {took:.2f} s for a {within} s connect timeout")
        return took
    raise Failed(f"expected NoServerError at {endpoint}, got {str(r)[:200]}")


def check_no_server(endpoint):
    # The request timeout is 120 s; the first request's ping tells in 1 s.
    with Client(endpoint, timeout=120, connect_timeout=1) as c:
        took = expect_no_server(lambda: c.solve("What is 1 + 1?"), endpoint, 1)
        check(c.in_flight() == [], f"nothing is left in flight: {c.in_flight()}")
        expect_no_server(lambda: c.ping(timeout=0.3), endpoint, 0.3)
        expect_no_server(c.ping, endpoint, 1)  # ping's default wait is connect_timeout
    return f"no server at {endpoint.split(':')[0]}://...: NoServerError naming it after {took:.2f} s, not the 120 s timeout"


def check_example_no_server(endpoint):
    script = ROOT / "tools" / "python" / "solve_example.py"
    t0 = time.monotonic()
    p = subprocess.run([sys.executable, str(script), "--endpoint", endpoint, "--connect-timeout", "1", "What?"],
                       capture_output=True, text=True, timeout=60)
    took = time.monotonic() - t0
    check(p.returncode == 3 and f"no flashtts server answers at {endpoint}" in p.stderr,
          f"solve_example.py with no server exits 3 naming the endpoint: {p.returncode}\n{p.stderr}")
    check(took < 6, f"solve_example.py with no server took {took:.2f} s")
    return f"solve_example.py with no server exits 3 within {took:.2f} s"


def check_late_pong(c):
    """`c` pinged before the server was up: that ping's late pong is dropped."""
    r = c.score("What is 1 + 1?", ["2"])
    check("scores" in r and len(r["scores"]) == 1, f"the score gets its own reply, not the late pong: {r}")
    check(c.ping(timeout=10)["pong"] is True, "a ping now answers")
    check(c.in_flight() == [], f"nothing left in flight: {c.in_flight()}")
    return "a ping unanswered before the server was up does not confuse the requests after it"


def check_ping(c):
    r = c.ping()
    check(r.get("pong") is True and r.get("protocol") == 1 and r.get("server") == "flashtts",
          f"ping result: {r}")
    check(isinstance(r.get("uptime_ms"), float) and r["uptime_ms"] >= 0, "ping carries uptime_ms")
    return "ping answers {pong: true, protocol: 1, server: flashtts, uptime_ms}"


def check_streaming_solve(c):
    events = []
    r = c.solve("Let a = 5. Let b = a * 3. What is b?", on_progress=events.append, seed=1, return_completions=True)
    kinds = [e.get("kind") for e in events]
    check(kinds.count("generated") == N and kinds.count("completed") == N,
          f"a streaming solve reports each of the {N} beams generated and completed, got {kinds}")
    done = [e for e in events if e["kind"] == "completed"]
    check([e["done"] for e in done] == list(range(1, N + 1)) and all(e["total"] == N for e in done),
          f"completed events count up to total: {done}")
    for e in events:
        check(0 <= e["beam"] < N, f"event beam in range: {e}")
        if e["kind"] == "generated":
            check(isinstance(e["tokens"], int) and e["finish"] in ("eos", "length", "delimiter"), f"generated: {e}")
        else:
            check(isinstance(e["step_scores"], list), f"completed carries step_scores: {e}")
    for key, typ in (("answer", str), ("score", float), ("text", str), ("steps", list), ("strategy", str),
                     ("n", int), ("aggregation", str), ("selection", str), ("completions", list), ("stats", dict)):
        check(isinstance(r.get(key), typ), f"solve result field {key!r} is a {typ.__name__}: {r.get(key)!r}")
    check(r["n"] == N and r["strategy"] == "best_of_n", "the server's defaults apply: n = 4, best_of_n")
    for s in r["steps"]:
        check(isinstance(s["text"], str) and 0.0 <= s["score"] <= 1.0, f"a step is {{text, score}}: {s}")
    check(len(r["completions"]) == N, "return_completions gives every completion")
    for comp in r["completions"]:
        check(set(comp) >= {"beam", "text", "answer", "score", "step_scores", "finish", "tokens"}, f"completion {comp}")
    check(r["score"] == max(x["score"] for x in r["completions"]) or r["selection"] != "naive",
          "naive selection picks the best-scored completion")
    st = r["stats"]
    for key in ("latency_ms", "policy_tokens", "prm_tokens", "prm_tokens_computed", "preemptions",
                "prefix_hit_rate", "generation_ms", "verification_ms", "generation_job_ms_sum", "verification_job_ms_sum", "goodput_tokens_per_s"):
        check(key in st, f"solve stats has {key}")
    return f"a streaming solve gets {len(events)} progress events, then one result with answer, steps, completions, stats"


def check_generate(c):
    events = []
    r = c.generate("Once upon a time", on_progress=events.append, max_tokens=40, temperature=0.7, seed=3)
    check(set(r) >= {"text", "tokens", "finish", "n_prompt", "n_cached", "latency_ms"}, f"generate result {r}")
    check(1 <= len(r["tokens"]) <= 40 and r["finish"] in ("eos", "length"), f"max_tokens holds: {r['finish']}")
    check(all(e["kind"] == "text" and e["beam"] == 0 for e in events), f"generate streams text events: {events}")
    streamed = "".join(e["text"] for e in events)
    check(r["text"].startswith(streamed), "the streamed text is the start of the final text")
    again = c.generate("Once upon a time", max_tokens=40, temperature=0.7, seed=3)
    check(again["tokens"] == r["tokens"], "the same seed gives the same tokens")
    return f"generate returns text/tokens/finish; {len(events)} streamed text events are the start of the text; seeded"


def check_score(c):
    r = c.score("What is 1 + 1?", ["1 + 1 = 2.", "The answer is \\boxed{2}."])
    check(len(r["scores"]) == 2 and all(0.0 <= s <= 1.0 for s in r["scores"]), f"one score per step: {r}")
    check(r["n_tokens"] >= r["n_computed"] >= 0 and r["latency_ms"] >= 0, f"score counters: {r}")
    return "score gives one PRM score in [0, 1] per step"


def check_stats(c):
    r = c.stats()
    actors = r["actors"]
    for a in ("intake", "beam_manager", "scheduler", "generator", "verifier", "memory_arbiter"):
        check(a in actors, f"stats has actor {a}: {sorted(actors)}")
    check("missing" not in r, f"every actor answered stats: {r.get('missing')}")
    check(actors["intake"]["requests"] > 0 and actors["beam_manager"]["completed"] > 0, "the counters count")
    return "stats has every actor's counters"


def wait_until_idle(c, cancelled_before):
    """Polls stats until the beam manager counted a new cancel and the generator runs nothing."""
    deadline = time.monotonic() + 5
    while True:
        a = c.stats()["actors"]
        if a["beam_manager"]["cancelled"] > cancelled_before and a["generator"]["running"] == 0 \
                and a["generator"]["queued"] == 0:
            return a
        if time.monotonic() > deadline:
            raise Failed(f"the cancelled work did not stop: {a['beam_manager']}, {a['generator']}")
        time.sleep(0.05)


def check_cancel(c):
    before = c.stats()["actors"]["beam_manager"]["cancelled"]
    rid = c.submit("generate", prompt="Count to a million:", max_tokens=20000, stream=True)
    answers = []

    def on_progress(event):
        if not answers:  # cancel at the first piece of text: the generation is running
            answers.append(c.cancel(rid))

    e = expect_error("cancelled", c.wait, rid, on_progress=on_progress, timeout=120)
    check(answers == [{"cancelled": rid}], f"the cancel request gets the result {{cancelled: id}}: {answers}")
    check(e.request_id == rid, "the cancelled error names the request")
    wait_until_idle(c, before)
    expect_error("not_found", c.cancel, rid)
    return "cancel: the target gets 'cancelled', the cancel gets {cancelled: id}, the work stops; again: not_found"


def check_timeout_cancels(c):
    before = c.stats()["actors"]["beam_manager"]["cancelled"]
    rid = c.submit("generate", prompt="Count to a million:", max_tokens=20000)
    t0 = time.monotonic()
    try:
        c.wait(rid, timeout=0.3)
        raise Failed("a 20,000-token generation finished within 0.3 s")
    except TimeoutError:
        pass
    check(time.monotonic() - t0 < 2, "the timeout is kept")
    check(rid not in c.in_flight(), "a timed-out request is forgotten")
    wait_until_idle(c, before)
    c.ping()  # the late 'cancelled' error and the cancel's result are dropped, not misrouted
    return "a client timeout raises TimeoutError and cancels the request on the server"


def check_out_of_order(c):
    slow = c.submit("generate", prompt="Count to a million:", max_tokens=4000)
    fast = c.submit("score", problem="What is 1 + 1?", steps=["2"])
    ping = c.submit("ping")
    r = c.wait(fast, timeout=60)
    check(len(r["scores"]) == 1, "the later score request is answered")
    check(not c.done(slow), "the earlier generation is still running")
    check(c.wait(ping)["pong"], "the ping's reply was kept while waiting for another id")
    r = c.wait(slow, timeout=120)
    check(len(r["tokens"]) > 0, "the earlier generation is answered last, its reply kept")
    check(c.in_flight() == [], f"nothing left in flight: {c.in_flight()}")
    return "three requests in flight on one socket, answered out of order, none lost"


def check_errors(c):
    e = expect_error("bad_request", c.solve, "What is 1 + 1?", n=0)
    check("'n'" in e.message, f"the sentence names the field: {e.message}")
    expect_error("bad_request", c.solve, "What is 1 + 1?", colour="blue")
    expect_error("bad_request", c.score, "What is 1 + 1?", [])
    expect_error("too_large", c.generate, "x" * 20000)
    expect_error("unknown_type", lambda: c.wait(c.submit("dance")))
    expect_error("unsupported_version", lambda: c.wait(c.submit("ping", v=2)))
    expect_error("deadline_exceeded", c.generate, "Count to a million:", max_tokens=20000, deadline_ms=50)
    # Over max_message_bytes: the server cannot read the id; the client ties
    # the nil-id error to the one request it has outstanding.
    expect_error("too_large", c.solve, "x" * ((1 << 20) + 100))
    c.ping()
    return "errors raise FlashttsError: bad_request, too_large, unknown_type, unsupported_version, deadline_exceeded"


def check_example(endpoint):
    script = ROOT / "tools" / "python" / "solve_example.py"
    p = subprocess.run([sys.executable, str(script), "--endpoint", endpoint, "--n", "2", "What is 2 + 3?"],
                       capture_output=True, text=True, timeout=120)
    check(p.returncode == 0, f"solve_example.py exits 0: {p.returncode}\n{p.stdout}\n{p.stderr}")
    check("answer:" in p.stdout and "step 1" in p.stdout, f"it prints the answer and steps:\n{p.stdout}")
    check("generated" in p.stderr and "2/2 done" in p.stderr, f"it streams progress:\n{p.stderr}")
    p = subprocess.run([sys.executable, str(script), "--endpoint", endpoint, "--n", "0", "What?"],
                       capture_output=True, text=True, timeout=120)
    check(p.returncode == 1 and "bad_request" in p.stderr, f"a refused request exits 1:\n{p.stderr}")
    return "solve_example.py streams progress, prints answer and steps; exits 1 on a server error"


def check_shutdown(c, server):
    rid = c.submit("generate", prompt="Count to a million:", max_tokens=20000)
    c.ping()  # the generation has reached the server
    server.proc.send_signal(signal.SIGINT)
    expect_error("shutting_down", c.wait, rid, timeout=10)
    try:
        rc = server.proc.wait(timeout=5)
    except subprocess.TimeoutExpired:
        raise Failed("the server did not exit within 5 s of SIGINT")
    check(rc == 0, f"the server exits 0 after SIGINT, not {rc}")
    return "SIGINT: the request in flight gets 'shutting_down', the server exits 0 within 5 s"


def main():
    bin_dir = os.environ.get("FLASHTTS_BIN")
    if not bin_dir:
        print("FLASHTTS_BIN (the build folder) is not set")
        return 1
    with tempfile.TemporaryDirectory(prefix="flashtts-py-") as d:
        tmp = Path(d)
        endpoint = f"ipc://{tmp / 'client.sock'}"
        failed = 0
        for what in (lambda: check_no_server(f"ipc://{tmp / 'nobody.sock'}"),
                     lambda: check_no_server(f"tcp://127.0.0.1:{free_tcp_port()}"),
                     lambda: check_example_no_server(f"ipc://{tmp / 'nobody.sock'}")):
            try:
                print(f"ok    {what()}", flush=True)
            except (Failed, subprocess.TimeoutExpired) as e:
                failed += 1
                print(f"FAIL  {type(e).__name__}: {e}", flush=True)
        early = Client(endpoint, timeout=120, connect_timeout=0.5)
        try:
            early.ping()
            failed += 1
            print("FAIL  a ping with no server yet got an answer", flush=True)
        except NoServerError:
            pass
        write_models(bin_dir, tmp)
        config = write_config(tmp, endpoint)
        server = Server(bin_dir, config, tmp / "server.log")
        try:
            try:
                print(f"ok    {check_late_pong(early)}", flush=True)
            except (Failed, FlashttsError, TimeoutError) as e:
                failed += 1
                print(f"FAIL  check_late_pong: {type(e).__name__}: {e}", flush=True)
            early.close()
            with Client(endpoint, timeout=120) as c:
                for fn in (check_ping, check_streaming_solve, check_generate, check_score, check_stats,
                           check_cancel, check_timeout_cancels, check_out_of_order, check_errors):
                    t0 = time.monotonic()
                    try:
                        what = fn(c)
                        print(f"ok    {what}  ({time.monotonic() - t0:.2f} s)", flush=True)
                    except (Failed, FlashttsError, TimeoutError, KeyError) as e:
                        failed += 1
                        print(f"FAIL  {fn.__name__}: {type(e).__name__}: {e}", flush=True)
                try:
                    print(f"ok    {check_example(endpoint)}", flush=True)
                except (Failed, subprocess.TimeoutExpired) as e:
                    failed += 1
                    print(f"FAIL  check_example: {e}", flush=True)
                print(f"ok    {check_shutdown(c, server)}", flush=True)
        except (Failed, FlashttsError, TimeoutError) as e:
            failed += 1
            print(f"FAIL  {type(e).__name__}: {e}", flush=True)
        finally:
            server.kill()
        if failed:
            print(f"{failed} check(s) failed; the server's output:\n{server.logs()}")
            return 1
        print("all checks passed")
        return 0


if __name__ == "__main__":
    sys.exit(main())
