#!/usr/bin/env python3
"""Side-by-side chat benchmark: tcpkit chat-server against `ncat --chat` (nmap's ncat).

Each case N:S:M:R[:stall] = N clients, S senders, M lines per sender, R lines/s per sender
(0 = flat out), and optionally one extra client that logs in and never reads. Every client
reads everything; a delivery is one line reaching one other client. For every run a fresh
server (tcpkit: a fresh database; every tcpkit client registers an account first), then
examples/loadgen.rs (one epoll thread). REPEAT rounds, the servers alternating.

Usage: bench/chat.py [--cases "10:10:1000:0 100:10:1000:0 500:10:1000:0 500:10:200:10"]
                     [--repeat 3] [--stall-case 100:10:1000:0]
Build first: cargo build --release --examples;  ncat: apt-get install ncat
"""

import argparse
import json
import os
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REL = os.path.join(HERE, "..", "target", "release")
PORT = 7460


def start(name, port, work):
    if name == "tcpkit":
        db = os.path.join(work, f"bench-{time.monotonic_ns()}.db")
        cmd = [os.path.join(REL, "tcpkit"), "chat-server", "--port", str(port), "--no-console",
               "--log", os.path.join(work, "chat.log"), "--db", db, "--history", "0"]
    else:
        cmd = ["ncat", "-l", "--chat", "--max-conns", "1000", "127.0.0.1", str(port)]
    p = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                         stderr=subprocess.DEVNULL, start_new_session=True)
    import socket
    for _ in range(200):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return p
        except OSError:
            time.sleep(0.05)
    raise SystemExit(f"{name} did not start")


def stop(p):
    try:
        os.killpg(p.pid, signal.SIGTERM)
        p.wait(timeout=5)
    except (subprocess.TimeoutExpired, ProcessLookupError):
        p.kill()
        p.wait()


def run(name, case, port, work):
    parts = case.split(":")
    n, s, m, r = parts[:4]
    stall = len(parts) > 4 and parts[4] == "stall"
    p = start(name, port, work)
    try:
        args = [os.path.join(REL, "examples", "loadgen"), "chat", "--addr", f"127.0.0.1:{port}",
                "--clients", n, "--senders", s, "--msgs", m, "--rate", r, "--timeout", "120",
                "--pid", str(p.pid)]
        if stall:
            args += ["--stall", "1"]
        if name == "tcpkit":
            args += ["--login-fmt", "/register user{i} bench-pw-{i}", "--ready-marker", "* online"]
        out = subprocess.run(args, capture_output=True, text=True, timeout=600)
        if out.returncode != 0:
            return {"error": out.stderr.strip().splitlines()[-1:] or ["failed"]}
        return json.loads(out.stdout.strip().splitlines()[-1])
    finally:
        stop(p)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cases", default="10:10:1000:0 100:10:1000:0 500:10:1000:0 500:10:200:10")
    ap.add_argument("--stall-case", default="100:10:1000:0")
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    names = ["tcpkit"] + (["ncat"] if shutil.which("ncat") else [])
    if len(names) == 1:
        print("note: ncat not installed (apt-get install ncat): tcpkit only", file=sys.stderr)
    cases = args.cases.split()
    if args.stall_case:
        cases += [args.stall_case + ":stall"]
    work = tempfile.mkdtemp(prefix="tcpkit-chat-bench-")
    print(f"# chat benchmark, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, "
          f"{os.cpu_count()} cores, {args.repeat} rounds, servers alternating")
    res = {}
    port = PORT
    for case in cases:
        for rnd in range(args.repeat):
            for name in names:
                port += 1
                out = run(name, case, port, work)
                res.setdefault((case, name), []).append(out)
                print(f"  {case} round {rnd + 1} {name}: {json.dumps(out)}", file=sys.stderr)
    shutil.rmtree(work, ignore_errors=True)
    print("\n| case (clients:senders:lines:rate) | server | deliveries/s median [min-max] | "
          "p50 / p99 ms | missing (worst run) | malformed | out of order | x ncat |")
    print("|---|---|---|---|---|---|---|---|")
    for case in cases:
        med = {}
        for name in names:
            runs = [x for x in res[(case, name)] if "error" not in x]
            if runs:
                med[name] = statistics.median(x["deliveries_per_s"] for x in runs)
        for name in names:
            runs = [x for x in res[(case, name)] if "error" not in x]
            if not runs:
                print(f"| {case} | {name} | failed: {res[(case, name)][0]} | | | | | |")
                continue
            d = [x["deliveries_per_s"] for x in runs]
            mid = min(runs, key=lambda x: abs(x["deliveries_per_s"] - med[name]))
            ratio = (f"{med[name] / med['ncat']:.2f}" if name == "tcpkit" and med.get("ncat")
                     else "")
            print(f"| {case} | {name} | {med[name]:,.0f} [{min(d):,.0f}-{max(d):,.0f}] | "
                  f"{mid['p50_ms']:.1f} / {mid['p99_ms']:.1f} | "
                  f"{max(x['missing'] for x in runs)} of {runs[0]['expected']:,} | "
                  f"{sum(x['malformed'] for x in runs)} | {sum(x['out_of_order'] for x in runs)} "
                  f"| {ratio} |")


if __name__ == "__main__":
    main()
