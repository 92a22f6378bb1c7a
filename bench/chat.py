#!/usr/bin/env python3
"""Side-by-side chat benchmark: tcpkit chat-server against `ncat --chat` (nmap's ncat).

Each case N:S:M:R[:stall] = N clients, S senders, M lines per sender, R lines/s per sender
(0 = flat out), and optionally one extra client that logs in and never reads. Every client
reads everything; a delivery is one line reaching one other client. For every run a fresh
server (tcpkit: a fresh database; every tcpkit client registers an account first), then
examples/loadgen.rs (one epoll thread). REPEAT rounds, the servers alternating.

Usage: bench/chat.py [--cases "10:10:1000:0 100:10:1000:0 500:10:1000:0 500:10:200:10"]
                     [--repeat 3] [--stall-case 100:10:1000:0] [--shared-loadgen PATH]
Build first: cargo build --release --examples;  ncat: apt-get install ncat

Flat out, the one-thread load generator is what limits both servers, so its own cost per line
weighs on the figures. `--shared-loadgen PATH` (the `loadgen` binary built from
../shared/bench, the tool that measured the issue's reference table) runs every case a second
time with that client too, so the two instruments can be compared in one run.
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


def start(name, port, work, binary=None):
    """A fresh server (`tcpkit`, from `binary` if given, or `ncat`), once it accepts."""
    if name == "tcpkit":
        db = os.path.join(work, f"bench-{time.monotonic_ns()}.db")
        cmd = [binary or os.path.join(REL, "tcpkit"), "chat-server", "--port", str(port), "--no-console",
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


def run(name, case, port, work, shared=None):
    """One run of `case` against a fresh `name` server, measured by our load generator or,
    with `shared`, by the shared one (its JSON is mapped onto ours)."""
    parts = case.split(":")
    n, s, m, r = parts[:4]
    stall = len(parts) > 4 and parts[4] == "stall"
    p = start(name, port, work)
    try:
        lg = shared or os.path.join(REL, "examples", "loadgen")
        args = [lg, "chat", "--addr", f"127.0.0.1:{port}", "--clients", n, "--senders", s,
                "--msgs", m, "--rate", r, "--timeout", "120", "--pid", str(p.pid)]
        if shared:
            # Paced connects: ncat's listen backlog is 10 (the shared README's default).
            args += ["--connect-batch", "1", "--connect-gap-us", "2000"]
        if stall:
            args += ["--stall", "1"]
        if name == "tcpkit":
            args += ["--login-fmt", "/register user{i} bench-pw-{i}", "--ready-marker", "* online"]
        out = subprocess.run(args, capture_output=True, text=True, timeout=600)
        if out.returncode != 0:
            return {"error": out.stderr.strip().splitlines()[-1:] or ["failed"]}
        if not shared:
            return json.loads(out.stdout.strip().splitlines()[-1])
        res = [l for l in out.stdout.splitlines() if l.startswith("RESULT ")]
        if not res:
            return {"error": ["no RESULT line"]}
        j = json.loads(res[-1][len("RESULT "):])
        return {"deliveries_per_s": j["deliveries_per_s"], "p50_ms": j["lat_us_p50"] / 1000,
                "p99_ms": j["lat_us_p99"] / 1000, "missing": j["missing"],
                "expected": j["expected"], "malformed": j["malformed"],
                "out_of_order": j["out_of_order"], "loadgen_cpu_pct": j["loadgen_cpu_pct"],
                "server_cpu_pct": j["server_cpu_pct"]}
    finally:
        stop(p)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cases", default="10:10:1000:0 100:10:1000:0 500:10:1000:0 500:10:200:10")
    ap.add_argument("--stall-case", default="100:10:1000:0")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--shared-loadgen", metavar="PATH",
                    help="also measure every case with this loadgen (from ../shared/bench)")
    args = ap.parse_args()
    if args.shared_loadgen and not os.access(args.shared_loadgen, os.X_OK):
        raise SystemExit(f"--shared-loadgen {args.shared_loadgen}: not an executable file")
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
    tools = [("ours", None)] + ([("shared", args.shared_loadgen)] if args.shared_loadgen else [])
    for case in cases:
        for rnd in range(args.repeat):
            for tool, path in tools:
                for name in names:
                    port += 1
                    out = run(name, case, port, work, path)
                    res.setdefault((case, tool, name), []).append(out)
                    print(f"  {case} round {rnd + 1} {tool} loadgen, {name}: {json.dumps(out)}",
                          file=sys.stderr)
    shutil.rmtree(work, ignore_errors=True)
    print("\n| case (clients:senders:lines:rate) | loadgen | server | deliveries/s median "
          "[min-max] | p50 / p99 ms | missing (worst run) | malformed | out of order | x ncat |")
    print("|---|---|---|---|---|---|---|---|---|")
    for case in cases:
        for tool, _ in tools:
            table(res, case, tool, names)


def table(res, case, tool, names):
    """The rows of one case measured by one load generator."""
    med = {}
    for name in names:
        runs = [x for x in res[(case, tool, name)] if "error" not in x]
        if runs:
            med[name] = statistics.median(x["deliveries_per_s"] for x in runs)
    for name in names:
        runs = [x for x in res[(case, tool, name)] if "error" not in x]
        if not runs:
            print(f"| {case} | {tool} | {name} | failed: {res[(case, tool, name)][0]} "
                  "| | | | | |")
            continue
        d = [x["deliveries_per_s"] for x in runs]
        mid = min(runs, key=lambda x: abs(x["deliveries_per_s"] - med[name]))
        ratio = (f"{med[name] / med['ncat']:.2f}" if name == "tcpkit" and med.get("ncat")
                 else "")
        print(f"| {case} | {tool} | {name} | {med[name]:,.0f} [{min(d):,.0f}-{max(d):,.0f}] | "
              f"{mid['p50_ms']:.1f} / {mid['p99_ms']:.1f} | "
              f"{max(x['missing'] for x in runs)} of {runs[0]['expected']:,} | "
              f"{sum(x['malformed'] for x in runs)} | {sum(x['out_of_order'] for x in runs)} "
              f"| {ratio} |")


if __name__ == "__main__":
    main()
