"""The systemd unit's readiness and watchdog protocols, without systemd
(CTest service.notify).

Plays the service manager's part of sd_notify(3): binds a unix datagram
socket, starts the ExecStart line of tools/systemd/flashtts.service (its
paths pointed at this build, this source tree and a scratch folder) with
NOTIFY_SOCKET naming that socket, WATCHDOG_USEC=1 s and WATCHDOG_PID its own
pid (set by a shell that then execs it, as systemd sets it after the fork),
and checks that

  - READY=1 comes from the server's own process, after it printed that it
    listens, and that it then answers at once (`flashtts ask ping` and a
    solve with the shipped models);
  - WATCHDOG=1 comes from it every half second (half of WATCHDOG_USEC);
  - on SIGTERM it sends STOPPING=1, no WATCHDOG=1 after it, exits 0 and
    removes its ipc socket file;
  - `systemd-analyze verify` accepts the unit (when systemd-analyze exists);
  - a hung actor stops the pings: a second server on a simulated card
    (gpu/sim/) with a policy of a huge shape, whose every forward pass holds
    the generator's thread for about 2.7 s (a real pass of the real engine,
    longer than the 1 s timeout), gets a solve; no WATCHDOG=1 comes for
    longer than the timeout (systemd would restart it), the log names the
    generator and says the pings stopped, and once the solve is answered
    they resume.

Standard library only. Run: python3 tests/service/test_notify.py --flashtts build/flashtts
"""
from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import shlex
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
UNIT = os.path.join(ROOT, "tools", "systemd", "flashtts.service")
WATCHDOG_S = 1.0  # WATCHDOG_USEC the test gives: pings every 0.5 s
# Sets WATCHDOG_PID to the pid the server will have: the shell's, kept by exec.
WITH_WATCHDOG_PID = ["/bin/sh", "-c", 'WATCHDOG_PID=$$; export WATCHDOG_PID; exec "$@"', "with-watchdog-pid"]


def fail(why: str) -> int:
    print("FAIL: " + why, flush=True)
    return 1


def exec_start(unit_text: str) -> list:
    """The unit's ExecStart command line, continuation lines joined."""
    text = unit_text.replace("\\\n", " ")
    for line in text.splitlines():
        if line.startswith("ExecStart="):
            return shlex.split(line[len("ExecStart="):])
    raise ValueError("the unit has no ExecStart")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def recv_state(sock: socket.socket, timeout: float):
    """The next notification: (assignments dict, sender pid) or None."""
    sock.settimeout(timeout)
    try:
        data, anc, _, _ = sock.recvmsg(4096, socket.CMSG_SPACE(12))
    except socket.timeout:
        return None
    pid = None
    for level, kind, payload in anc:
        if level == socket.SOL_SOCKET and kind == socket.SCM_CREDENTIALS:
            pid = struct.unpack("iII", payload[:12])[0]
    state = dict(line.split("=", 1) for line in data.decode().splitlines() if "=" in line)
    return state, pid


def wait_for(sock: socket.socket, key: str, timeout: float, seen: list, server=None):
    """Notifications until one sets `key`; every one is appended to `seen`.
    None after `timeout`, or as soon as `server` has exited without it."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        got = recv_state(sock, min(0.2, max(0.0, deadline - time.time())))
        if got is None:
            if server is not None and server.poll() is not None:
                return None
            continue
        seen.append(got)
        if key in got[0]:
            return got
    return None


def collect(sock: socket.socket, seconds: float, seen: list) -> list:
    """Every notification for `seconds`, as (arrival time, state, pid)."""
    got = []
    deadline = time.time() + seconds
    while time.time() < deadline:
        n = recv_state(sock, max(0.001, deadline - time.time()))
        if n is not None:
            seen.append(n)
            got.append((time.time(), n[0], n[1]))
    return got


def drain(sock: socket.socket, seen: list) -> list:
    """The notifications already waiting, without waiting for more."""
    got = []
    while (n := recv_state(sock, 0.001)) is not None:
        seen.append(n)
        got.append((time.time(), n[0], n[1]))
    return got


def ping_times(got: list, pid: int):
    """The arrival times of the WATCHDOG=1 notifications in `got`, or a
    sentence when one is not WATCHDOG=1 or not from `pid`."""
    times = []
    for t, state, sender in got:
        if state != {"WATCHDOG": "1"} or sender != pid:
            return f"unexpected notification {state} from pid {sender} (the server is {pid})"
        times.append(t)
    return times


def gaps(times: list) -> list:
    return [b - a for a, b in zip(times, times[1:])]


def check_hung_actor_stops_pings(flashtts: str, tmp: str, sock: socket.socket, env: dict):
    """The hang: None when it passes, else why not."""
    # The shipped policy's tokenizer with a shape no card holds: on the
    # simulated card every pass streams ~410 GB of weights, about 2.7 s.
    big = os.path.join(tmp, "huge-policy")
    os.mkdir(big)
    policy = os.path.join(ROOT, "models", "policy")
    for f in ("tokenizer.json", "tokenizer_config.json", "generation_config.json"):
        if os.path.exists(os.path.join(policy, f)):
            shutil.copy(os.path.join(policy, f), big)
    shape = json.load(open(os.path.join(policy, "config.json")))
    shape.update(hidden_size=12288, intermediate_size=49152, num_hidden_layers=96, num_attention_heads=96,
                 num_key_value_heads=8)
    json.dump(shape, open(os.path.join(big, "config.json"), "w"))
    toml = open(os.path.join(ROOT, "configs", "default.toml")).read()
    for key, value in (("policy", json.dumps(big)), ("prm", json.dumps(os.path.join(ROOT, "models", "prm"))),
                       ("device", '"sim:orin-agx"'), ("budget_mb", "400000")):  # the weights count against it
        toml, n = re.subn(rf"^{key} = .*$", f"{key} = {value}", toml, count=1, flags=re.M)
        if n != 1:
            return f"configs/default.toml has no '{key} = ' line"
    config = os.path.join(tmp, "sim.toml")
    open(config, "w").write(toml)

    ipc = f"ipc://{tmp}/sim.sock"
    cmd = [flashtts, "serve", "--config", config, "--endpoint", ipc]
    out_path = os.path.join(tmp, "sim.out")
    print("$ " + " ".join(cmd) + "   # sim:orin-agx, a policy of 205e9 weights", flush=True)
    with open(out_path, "w") as out:
        server = subprocess.Popen(WITH_WATCHDOG_PID + cmd, stdout=out, stderr=subprocess.STDOUT, env=env)
    try:
        seen = []
        if wait_for(sock, "READY", 120, seen, server) is None:
            return f"no READY=1 (got {seen}; exit status {server.poll()}):\n{open(out_path).read()}"
        idle = ping_times(collect(sock, 1.5, seen), server.pid)
        if isinstance(idle, str) or len(idle) < 2:
            return f"idle before the solve: {idle}"
        ask = subprocess.Popen([flashtts, "ask", "--endpoint", ipc, "--n", "1", "--max-steps", "1",
                                "--max-tokens-per-step", "2", "--quiet", "Let a = 5. What is a?"],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        started = time.time()
        got = []
        while ask.poll() is None and time.time() < started + 120:
            got += collect(sock, 0.2, seen)
        answered = time.time()
        if ask.poll() is None:
            ask.kill()
            return "the solve took over 120 s"
        ask_out = ask.stdout.read()
        if ask.returncode != 0 or "answer:" not in ask_out:
            return f"the solve: rc {ask.returncode}: {ask_out}"
        got += collect(sock, 1.5, seen)
        times = ping_times(got, server.pid)
        if isinstance(times, str):
            return times
        times = [idle[-1]] + times
        longest = max(gaps(times))
        if longest < 1.5 * WATCHDOG_S:
            return (f"no WATCHDOG=1 gap longer than the {WATCHDOG_S} s timeout while the generator ran passes of "
                    f"~2.7 s (longest {longest:.2f} s; pings at {[round(t - started, 2) for t in times]})")
        after = [t for t in times if t > answered]
        if len(after) < 2 or max(gaps(after)) > 0.9 * WATCHDOG_S:
            return f"the pings did not resume after the solve: {[round(t - answered, 2) for t in after]}"
        log = open(out_path).read()
        if not re.search(r"actors? (\S+, )*generator(, \S+)* ha(s|ve) not come back to (its|their) loop "
                         r"for over 0\.5 s \(stuck in one iteration\); watchdog pings stopped", log):
            return f"no line naming the generator and saying the pings stopped:\n{log}"
        if "watchdog pings resumed" not in log:
            return f"no line saying the pings resumed:\n{log}"
        print(f"a solve on the simulated card holds the generator in ~2.7 s passes: no WATCHDOG=1 for "
              f"{longest:.2f} s (timeout {WATCHDOG_S} s), the log says which actor and that the pings stopped; "
              f"{len(after)} pings in the 1.5 s after the answer")
        server.send_signal(signal.SIGTERM)
        rc = server.wait(timeout=60)
        if rc != 0:
            return f"exit status {rc} after SIGTERM:\n{open(out_path).read()}"
        return None
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--flashtts", required=True)
    a = ap.parse_args()

    unit_text = open(UNIT).read()
    for want in ("Type=notify", "NotifyAccess=main", "KillSignal=SIGTERM", "WatchdogSec=", "Restart=on-failure"):
        if want not in unit_text:
            return fail(f"{UNIT} lacks {want}")
    with tempfile.TemporaryDirectory(prefix="flashtts-notify-") as tmp:
        port = free_port()
        cmd = []
        for arg in exec_start(unit_text):
            arg = arg.replace("/usr/local/bin/flashtts", os.path.abspath(a.flashtts))
            arg = arg.replace("/usr/local/share/flashtts/configs", os.path.join(ROOT, "configs"))
            arg = arg.replace("ipc:///run/flashtts/", f"ipc://{tmp}/")
            arg = arg.replace("tcp://127.0.0.1:7797", f"tcp://127.0.0.1:{port}")
            cmd.append(arg)
        ipc = f"ipc://{tmp}/flashtts.sock"
        if ipc not in cmd:
            return fail(f"the unit's ExecStart does not listen on ipc:///run/flashtts/flashtts.sock: {cmd}")

        if os.path.exists("/usr/bin/systemd-analyze"):
            unit_copy = os.path.join(tmp, "flashtts.service")
            with open(unit_copy, "w") as f:
                f.write(unit_text.replace("/usr/local/bin/flashtts", os.path.abspath(a.flashtts)))
            v = subprocess.run(["/usr/bin/systemd-analyze", "verify", unit_copy], capture_output=True, text=True)
            if v.returncode != 0 or v.stdout.strip() or v.stderr.strip():
                return fail(f"systemd-analyze verify: rc {v.returncode}: {v.stdout}{v.stderr}")
            print("systemd-analyze verify: the unit is valid")
        else:
            print("systemd-analyze is not installed: the unit's syntax is not verified")

        notify_path = os.path.join(tmp, "notify")
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        sock.bind(notify_path)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
        env = dict(os.environ, NOTIFY_SOCKET=notify_path, WATCHDOG_USEC=str(int(WATCHDOG_S * 1e6)))
        env.pop("WATCHDOG_PID", None)
        out_path = os.path.join(tmp, "serve.out")
        print(f"$ NOTIFY_SOCKET={notify_path} WATCHDOG_USEC={env['WATCHDOG_USEC']} WATCHDOG_PID=<its pid> "
              + " ".join(cmd), flush=True)
        with open(out_path, "w") as out:
            server = subprocess.Popen(WITH_WATCHDOG_PID + cmd, stdout=out, stderr=subprocess.STDOUT, env=env)
        try:
            seen = []
            ready = wait_for(sock, "READY", 120, seen, server)
            log = open(out_path).read()
            if ready is None:
                return fail(f"no READY=1 (got {seen}; exit status {server.poll()}); server output:\n{log}")
            state, pid = ready
            if state["READY"] != "1":
                return fail(f"READY={state['READY']}")
            if pid != server.pid:
                return fail(f"READY=1 came from pid {pid}, not the server's {server.pid} (NotifyAccess=main)")
            if f"listening on {ipc}" not in log:
                return fail(f"READY=1 came before the server said it listens:\n{log}")
            print(f"READY=1 from the server (pid {pid}), STATUS={state.get('STATUS', '')!r}")
            # Ready means answering: no retries, a short connect timeout.
            ask = [a.flashtts, "ask", "--endpoint", ipc]
            p = subprocess.run(ask + ["--connect-timeout", "2", "ping"], capture_output=True, text=True, timeout=30)
            if p.returncode != 0 or "pong" not in p.stdout:
                return fail(f"ping after READY=1: rc {p.returncode}: {p.stdout}{p.stderr}")
            p = subprocess.run(ask + ["--n", "2", "--quiet", "Let a = 5. Let b = a * 3. What is b?"],
                               capture_output=True, text=True, timeout=60)
            if p.returncode != 0 or "answer:" not in p.stdout:
                return fail(f"solve after READY=1: rc {p.returncode}: {p.stdout}{p.stderr}")
            print("the server answers a ping and a solve right after READY=1")

            stray = [n for n in drain(sock, seen) if n[1] != {"WATCHDOG": "1"} or n[2] != server.pid]
            if stray:
                return fail(f"unexpected notifications after READY=1: {stray}")
            times = ping_times(collect(sock, 3.0, seen), server.pid)
            if isinstance(times, str):
                return fail(times)
            between = sorted(gaps(times))
            if len(times) < 4 or not 0.35 <= between[len(between) // 2] <= 0.8 or between[-1] >= WATCHDOG_S:
                return fail(f"WATCHDOG=1 in 3 s: {len(times)}, {[round(g, 2) for g in gaps(times)]} s apart "
                            f"(want about {WATCHDOG_S / 2} s, none {WATCHDOG_S} s or more)")
            print(f"WATCHDOG=1 from the server {len(times)} times in 3 s, a median "
                  f"{between[len(between) // 2]:.2f} s apart (WATCHDOG_USEC: {WATCHDOG_S} s)")

            server.send_signal(signal.SIGTERM)
            stopping = wait_for(sock, "STOPPING", 30, seen)
            if stopping is None:
                return fail(f"no STOPPING=1 within 30 s of SIGTERM (got {seen})")
            if stopping[0]["STOPPING"] != "1" or stopping[1] != server.pid:
                return fail(f"bad STOPPING notification {stopping}")
            rc = server.wait(timeout=60)
            log = open(out_path).read()
            if rc != 0:
                return fail(f"exit status {rc} after SIGTERM:\n{log}")
            if "stopped by SIGTERM" not in log:
                return fail(f"no 'stopped by SIGTERM' line:\n{log}")
            if os.path.exists(os.path.join(tmp, "flashtts.sock")):
                return fail("the ipc socket file is left behind after the stop")
            late = drain(sock, seen)
            if late:
                return fail(f"notifications after STOPPING=1: {late}")
            print(f"STOPPING=1 on SIGTERM, STATUS={stopping[0].get('STATUS', '')!r}, no WATCHDOG=1 after it; "
                  "exit 0, socket file removed")

            why = check_hung_actor_stops_pings(os.path.abspath(a.flashtts), tmp, sock, env)
            if why is not None:
                return fail("hung actor: " + why)
        finally:
            if server.poll() is None:
                server.kill()
                server.wait()
            sock.close()
    print("PASS")
    return 0


if __name__ == "__main__":
    sys.exit(main())
