"""The systemd unit's readiness protocol, without systemd (CTest service.notify).

Plays the service manager's part of sd_notify(3): binds a unix datagram
socket, starts the ExecStart line of tools/systemd/flashtts.service (its
paths pointed at this build, this source tree and a scratch folder) with
NOTIFY_SOCKET naming that socket, and checks that

  - READY=1 comes from the server's own process, after it printed that it
    listens, and that it then answers at once (`flashtts ask ping` and a
    solve with the shipped models);
  - on SIGTERM it sends STOPPING=1, exits 0 and removes its ipc socket file;
  - `systemd-analyze verify` accepts the unit (when systemd-analyze exists).

Standard library only. Run: python3 tests/service/test_notify.py --flashtts build/flashtts
"""
from __future__ import annotations

import argparse
import os
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


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--flashtts", required=True)
    a = ap.parse_args()

    unit_text = open(UNIT).read()
    for want in ("Type=notify", "NotifyAccess=main", "KillSignal=SIGTERM"):
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
        env = dict(os.environ, NOTIFY_SOCKET=notify_path)
        out_path = os.path.join(tmp, "serve.out")
        print("$ NOTIFY_SOCKET=" + notify_path + " " + " ".join(cmd), flush=True)
        with open(out_path, "w") as out:
            server = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env)
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
            print(f"STOPPING=1 on SIGTERM, STATUS={stopping[0].get('STATUS', '')!r}; exit 0, socket file removed")
        finally:
            if server.poll() is None:
                server.kill()
                server.wait()
            sock.close()
    print("PASS")
    return 0


if __name__ == "__main__":
    sys.exit(main())
