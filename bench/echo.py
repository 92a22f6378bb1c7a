#!/usr/bin/env python3
"""Side-by-side echo benchmark: tcpkit echo-server against the std thread-per-client reference.

Phase rt: 64-byte ping-pong over loopback for SECS seconds with C clients (examples/loadgen.rs,
one epoll thread), for C in CONNS; REPEAT rounds, the servers interleaved in each round so
drift hits both alike. Round trips per second, latency, CPU of the server.
Phase idle: a fresh server each, N idle clients (one echo each, then held): resident memory
per client and thread count.

Usage: bench/echo.py [--conns 1,10,100,1000] [--secs 10] [--repeat 3] [--idle 10000]
Build first: cargo build --release --examples
"""

import argparse
import json
import os
import resource
import signal
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REL = os.path.join(HERE, "..", "target", "release")


def free_port():
    import socket
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def start(name, port, logdir):
    if name == "tcpkit":
        cmd = [os.path.join(REL, "tcpkit"), "echo-server", "--port", str(port), "--no-console",
               "--max-clients", "20000", "--log", os.path.join(logdir, "tcpkit-echo.log")]
    else:
        cmd = [os.path.join(REL, "examples", "echo_reference"), f"127.0.0.1:{port}"]
    p = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                         stderr=subprocess.DEVNULL, text=True)
    line = p.stdout.readline()
    if not line.startswith("listening on"):
        raise SystemExit(f"{name} did not start: {line!r}")
    return p, int(line.strip().rsplit(":", 1)[1])


def stop(p):
    p.send_signal(signal.SIGTERM)
    try:
        p.wait(timeout=5)
    except subprocess.TimeoutExpired:
        p.kill()
        p.wait()


def loadgen(*args, timeout=700):
    out = subprocess.run([os.path.join(REL, "examples", "loadgen"), *args], capture_output=True,
                         text=True, timeout=timeout)
    if out.returncode != 0:
        raise SystemExit(f"loadgen failed: {out.stderr}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--conns", default="1,10,100,1000")
    ap.add_argument("--secs", type=int, default=10)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--idle", type=int, default=10000)
    args = ap.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    if hard < args.idle + 100:
        print(f"note: open-files hard limit {hard} < {args.idle}+100: idle phase shrinks",
              file=sys.stderr)
        args.idle = max(100, hard - 200)
    logdir = os.path.join("/tmp", f"tcpkit-echo-bench-{os.getpid()}")
    os.makedirs(logdir, exist_ok=True)
    names = ["tcpkit", "reference"]
    print(f"# echo benchmark, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, "
          f"{os.cpu_count()} cores, {args.secs} s per run, {args.repeat} rounds, interleaved")

    rt = {(n, c): [] for n in names for c in args.conns.split(",")}
    servers = {n: start(n, free_port(), logdir) for n in names}
    try:
        for c in args.conns.split(","):
            for r in range(args.repeat):
                for n in names:
                    p, port = servers[n]
                    res = loadgen("echo", "--addr", f"127.0.0.1:{port}", "--conns", c,
                                  "--size", "64", "--secs", str(args.secs), "--pid", str(p.pid))
                    rt[(n, c)].append(res)
                    print(f"  rt C={c} round {r + 1} {n}: {res['rt_per_s']:.0f}/s "
                          f"p50 {res['p50_us']} us p99 {res['p99_us']} us "
                          f"errors {res['errors']} server cpu {res['server_cpu_pct']}%",
                          file=sys.stderr)
    finally:
        for p, _ in servers.values():
            stop(p)

    print("\n### 64-byte ping-pong, round trips/s (median [min-max]), tcpkit / reference")
    print("| clients | tcpkit | reference | tcpkit/ref | tcpkit p50 / p99 us | ref p50 / p99 us | errors |")
    print("|---|---|---|---|---|---|---|")
    for c in args.conns.split(","):
        cell = {}
        for n in names:
            v = [x["rt_per_s"] for x in rt[(n, c)]]
            m = statistics.median(v)
            best = min(rt[(n, c)], key=lambda x: abs(x["rt_per_s"] - m))
            cell[n] = (m, min(v), max(v), best["p50_us"], best["p99_us"],
                       sum(x["errors"] for x in rt[(n, c)]))
        t, r = cell["tcpkit"], cell["reference"]
        print(f"| {c} | {t[0]:,.0f} [{t[1]:,.0f}-{t[2]:,.0f}] | {r[0]:,.0f} [{r[1]:,.0f}-{r[2]:,.0f}] "
              f"| {t[0] / r[0]:.2f} | {t[3]} / {t[4]} | {r[3]} / {r[4]} | {t[5]} / {r[5]} |")

    if args.idle:
        print(f"\n### {args.idle:,} idle clients held: resident memory per client, threads")
        print("| server | served | RSS before KiB | RSS with clients KiB | KiB per client | threads before / with |")
        print("|---|---|---|---|---|---|")
        for n in names:
            p, port = start(n, free_port(), logdir)
            try:
                res = loadgen("idle", "--addr", f"127.0.0.1:{port}", "--conns", str(args.idle),
                              "--hold", "3", "--pid", str(p.pid))
            finally:
                stop(p)
            print(f"| {n} | {res['served']:,} | {res['rss_before_kib']:,} | {res['rss_with_kib']:,} "
                  f"| {res['rss_kib_per_conn']:.1f} | {res['threads_before']} / {res['threads_with']} |")


if __name__ == "__main__":
    main()
