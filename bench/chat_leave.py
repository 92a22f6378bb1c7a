#!/usr/bin/env python3
"""Half the room leaves at once: how long until every remaining client has seen every
`* NAME left`, the server's CPU for it, and its sendmsg calls (with perf, when installed).

Usage: bench/chat_leave.py [BINARY] [PORT]   (default target/release/tcpkit, 7480)
Compare two builds by passing each binary. Loopback only; 300 clients; every wait bounded.
"""
import os
import select
import shutil
import socket
import subprocess
import sys
import tempfile
import time

from chat import start, stop

HERE = os.path.dirname(os.path.abspath(__file__))
N = 300


def cpu_ms(pid):
    """User + system CPU of a process so far, in ms (10 ms ticks)."""
    f = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(f[11]) + int(f[12])) * 10


def log_in_all(port):
    """N clients, each registered and logged in (it saw `* online`)."""
    socks = []
    for i in range(N):
        s = socket.create_connection(("127.0.0.1", port))
        s.sendall(f"/register user{i} bench-pw-{i}\n".encode())
        socks.append(s)
    seen = {s: b"" for s in socks}
    ready = set()
    deadline = time.time() + 120
    while len(ready) < N and time.time() < deadline:
        r, _, _ = select.select(socks, [], [], 0.5)
        for s in r:
            seen[s] += s.recv(65536)
            if b"* online" in seen[s]:
                ready.add(s)
    if len(ready) < N:
        raise SystemExit(f"only {len(ready)} of {N} clients logged in within 120 s")
    return socks


def main():
    binary = sys.argv[1] if len(sys.argv) > 1 else os.path.join(HERE, "..", "target", "release",
                                                                  "tcpkit")
    port = int(sys.argv[2]) if len(sys.argv) > 2 else 7480
    work = tempfile.mkdtemp(prefix="tcpkit-leave-bench-")
    srv = start("tcpkit", port, work, binary)
    try:
        socks = log_in_all(port)
        time.sleep(1)
        stat = None
        if shutil.which("perf"):
            stat = subprocess.Popen(["perf", "stat", "-e", "syscalls:sys_enter_sendmsg",
                                     "-p", str(srv.pid), "-o", os.path.join(work, "stat")])
            time.sleep(0.5)
        c0 = cpu_ms(srv.pid)
        for s in socks[:N // 2]:
            s.close()
        # Every client that stays must see all N/2 "left" lines.
        left = {s: 0 for s in socks[N // 2:]}
        t0 = time.time()
        while time.time() - t0 < 20 and any(v < N // 2 for v in left.values()):
            r, _, _ = select.select(list(left), [], [], 0.5)
            for s in r:
                left[s] += s.recv(1 << 20).count(b" left\n")
        dt = time.time() - t0
        c1 = cpu_ms(srv.pid)
        sends = "?"
        if stat:
            stat.send_signal(2)
            stat.wait()
            lines = [ln for ln in open(os.path.join(work, "stat")) if "sendmsg" in ln]
            sends = lines[0].split()[0] if lines else "?"
        print(f"{binary}: {N // 2} of {N} leave: every stayer saw {min(left.values())} of "
              f"{N // 2} 'left' lines in {dt * 1000:.0f} ms, server CPU {c1 - c0} ms, "
              f"{sends} sendmsg")
    finally:
        stop(srv)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
