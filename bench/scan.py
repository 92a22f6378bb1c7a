#!/usr/bin/env python3
"""Side-by-side scan benchmark: tcpkit against nmap, RustScan and the kernel floor.

Scenarios (traffic stays on this machine, in namespaces this script creates and deletes):
  L  127.0.0.1 inside a private namespace (its own loopback, nothing else listening),
     20 listeners, ports 1-65535; every closed port answers RST at once.
  F  198.18.0.2 in a namespace behind a veth pair, 20 listeners, nftables drops
     1000-60000 (58,994 silent ports), ports 1-65535.

Each tool runs RUNS times, interleaved (tool A, tool B, ..., then again), so every tool sees
the same minutes of machine time. For each run: wall time, open ports found (recall against
the 20 listeners) and ports wrongly reported open (phantoms). Printed: medians [min-max],
exact runs, and ratios of medians to tcpkit's.

Usage (root): bench/scan.py [--runs N] [--scenarios L,F] [--tcpkit PATH] [--skip TOOL,...]
Build first: cargo build --release --examples
"""

import argparse
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import time

LISTEN_PORTS = [1, 22, 80, 443, 3306, 5432, 6379, 8080, 8443, 9000, 11211, 15672, 20000,
                27017, 31337, 40000, 49152, 55555, 61000, 65535]
NS_L, NS_F = "tkbench-lo", "tkbench-f"
VETH_HOST, VETH_NS = "tkbv0", "tkbv1"
F_HOST_IP, F_NS_IP = "198.18.0.1", "198.18.0.2"
LISTENER = r"""
import socket, sys, time, select
socks = []
for p in map(int, sys.argv[2].split(',')):
    s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((sys.argv[1], p)); s.listen(1024); s.setblocking(False); socks.append(s)
print('ready', flush=True)
end = time.time() + float(sys.argv[3])
while time.time() < end:
    r, _, _ = select.select(socks, [], [], 0.5)
    for s in r:
        try:
            c, _ = s.accept(); c.close()
        except OSError:
            pass
"""


def sh(*cmd, check=True):
    return subprocess.run(cmd, check=check, capture_output=True, text=True)


def teardown():
    sh("ip", "netns", "del", NS_L, check=False)
    sh("ip", "netns", "del", NS_F, check=False)
    sh("ip", "link", "del", VETH_HOST, check=False)


def start_listeners(ns, addr, max_secs):
    p = subprocess.Popen(["ip", "netns", "exec", ns, sys.executable, "-c", LISTENER, addr,
                          ",".join(map(str, LISTEN_PORTS)), str(max_secs)],
                         stdout=subprocess.PIPE, text=True, start_new_session=True)
    if p.stdout.readline().strip() != "ready":
        raise SystemExit("listeners did not start")
    return p


def setup_l():
    sh("ip", "netns", "add", NS_L)
    sh("ip", "-n", NS_L, "link", "set", "lo", "up")


def setup_f():
    sh("ip", "netns", "add", NS_F)
    sh("ip", "link", "add", VETH_HOST, "type", "veth", "peer", "name", VETH_NS)
    sh("ip", "link", "set", VETH_NS, "netns", NS_F)
    sh("ip", "addr", "add", F_HOST_IP + "/30", "dev", VETH_HOST)
    sh("ip", "link", "set", VETH_HOST, "up")
    sh("ip", "-n", NS_F, "addr", "add", F_NS_IP + "/30", "dev", VETH_NS)
    sh("ip", "-n", NS_F, "link", "set", VETH_NS, "up")
    sh("ip", "-n", NS_F, "link", "set", "lo", "up")
    rules = ("table inet tkbench {\n chain input {\n  type filter hook input priority 0;\n"
             "  tcp dport { " + ", ".join(map(str, LISTEN_PORTS)) + " } accept\n"
             "  tcp dport 1000-60000 drop\n }\n}\n")
    subprocess.run(["ip", "netns", "exec", NS_F, "nft", "-f", "-"], input=rules, text=True,
                   check=True)


STATES = {}


def parse_open(out, name=None):
    """Open ports from any of the tools' outputs: JSON lines, `Port N open`, nmap, rustscan -g.
    From JSON (tcpkit) the closed and filtered counts are kept in STATES[name] too."""
    ports = set()
    for line in out.splitlines():
        line = line.strip()
        if line.startswith("{"):
            try:
                obj = json.loads(line)
                ports.update(obj.get("open", []))
                STATES.setdefault(name, []).append((obj.get("closed"), obj.get("filtered")))
            except ValueError:
                pass
            continue
        m = re.match(r"Port (\d+) open", line) or re.match(r"(\d+)/tcp\s+open\b", line)
        if m:
            ports.add(int(m.group(1)))
            continue
        m = re.search(r"->\s*\[([\d,\s]*)\]", line)
        if m:
            ports.update(int(x) for x in m.group(1).split(",") if x.strip())
    return ports


def run_once(name, cmd, ns, timeout):
    full = (["ip", "netns", "exec", ns] if ns else []) + cmd
    t0 = time.monotonic()
    p = subprocess.Popen(full, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                         start_new_session=True)
    try:
        out, err = p.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(p.pid, signal.SIGKILL)
        out, err = p.communicate()
        return None, set(), "timeout"
    wall = time.monotonic() - t0
    return wall, parse_open(out, name), err.strip().splitlines()[-1:] if err.strip() else ""


def tools_for(scenario, host, args):
    tk = args.tcpkit
    floor = os.path.join(os.path.dirname(tk), "examples", "scan_floor")
    tools = [("tcpkit", [tk, "scan", "--no-progress", "--format", "json", host])]
    if shutil.which("nmap"):
        if scenario == "L" or args.slow:
            tools.append(("nmap -T4", ["nmap", "-sT", "-p1-65535", "-T4", "-n", "-Pn", host]))
        tools.append(("nmap -T5", ["nmap", "-sT", "-p1-65535", "-T5", "-n", "-Pn",
                                   "--min-rate", "100000", host]))
    if shutil.which("rustscan"):
        tools.append(("rustscan -b4500 -t500" if scenario == "F" else "rustscan -b4500",
                      ["rustscan", "-a", host, "-r", "1-65535", "-b", "4500", "-t",
                       "500" if scenario == "F" else "1000", "-g", "--ulimit", "70000"]))
    if scenario == "L" and os.path.exists(floor):
        tools.append(("floor (2 blocking threads)", [floor, "2", host, "1-65535"]))
    return [t for t in tools if not any(t[0].startswith(s) for s in args.skip)]


def bench(scenario, args):
    if scenario == "L":
        setup_l()
        listeners = start_listeners(NS_L, "127.0.0.1", 3600)
        ns, host = NS_L, "127.0.0.1"
    else:
        setup_f()
        listeners = start_listeners(NS_F, "0.0.0.0", 3600)
        ns, host = None, F_NS_IP
    expected = set(LISTEN_PORTS)
    tools = tools_for(scenario, host, args)
    results = {name: [] for name, _ in tools}
    try:
        for r in range(args.runs):
            for name, cmd in tools:
                wall, found, note = run_once(name, cmd, ns, args.timeout)
                results[name].append((wall, found))
                print(f"  {scenario} run {r + 1} {name}: "
                      f"{'timeout' if wall is None else f'{wall:.3f} s'}, "
                      f"{len(found & expected)}/20 found, phantoms {sorted(found - expected)}",
                      file=sys.stderr)
    finally:
        os.killpg(listeners.pid, signal.SIGTERM)
        listeners.wait()
        teardown()
    return tools, results, expected


def report(scenario, tools, results, expected):
    dropped = (60000 - 1000 + 1 - sum(1 for p in LISTEN_PORTS if 1000 <= p <= 60000)
               if scenario == "F" else 0)
    print(f"\n### Scenario {scenario}: ports 1-65535, 20 listening"
          + (f", {dropped:,} dropped" if scenario == "F" else ""))
    print("| tool | wall s median [min-max] | x tcpkit | exact runs | recall (worst) | phantom ports |")
    print("|---|---|---|---|---|---|")
    med = {}
    for name, _ in tools:
        walls = [w for w, _ in results[name] if w is not None]
        med[name] = statistics.median(walls) if walls else None
    base = med.get("tcpkit")
    for name, _ in tools:
        runs = results[name]
        walls = [w for w, _ in runs if w is not None]
        exact = sum(1 for w, f in runs if w is not None and f == expected)
        worst = min(len(f & expected) for _, f in runs)
        phantoms = sorted(set().union(*[f - expected for _, f in runs]))
        t = (f"{med[name]:.3f} [{min(walls):.3f}-{max(walls):.3f}]" if walls else "timeout")
        ratio = f"{med[name] / base:.2f}" if base and med[name] else "-"
        print(f"| {name} | {t} | {ratio} | {exact}/{len(runs)} | {worst}/20 | "
              f"{phantoms if phantoms else 'none'} |")
    want = (65535 - 20 - dropped, dropped)
    states = STATES.pop("tcpkit", [])
    print(f"\ntcpkit closed/filtered counts exact (want {want[0]} closed, {want[1]} filtered): "
          f"{sum(1 for st in states if st == want)}/{len(states)} runs")
    floor, nmap5 = med.get("floor (2 blocking threads)"), med.get("nmap -T5")
    if base:
        if floor:
            print(f"\ntcpkit / floor = {base / floor:.2f} (goal <= 1.25)")
        if nmap5:
            print(f"tcpkit / nmap -T5 = {base / nmap5:.2f} (goal <= 0.5 on L, < 1 on F)")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--scenarios", default="L,F")
    ap.add_argument("--tcpkit", default=os.path.join(os.path.dirname(__file__), "..", "target",
                                                     "release", "tcpkit"))
    ap.add_argument("--skip", default="", help="comma-separated tool name prefixes to skip")
    ap.add_argument("--slow", action="store_true", help="also run nmap -T4 on F (~46 s a run)")
    ap.add_argument("--timeout", type=float, default=300, help="seconds per tool run")
    args = ap.parse_args()
    args.tcpkit = os.path.realpath(args.tcpkit)
    args.skip = [s for s in args.skip.split(",") if s]
    if os.geteuid() != 0:
        raise SystemExit("bench/scan.py needs root (network namespaces, nftables)")
    for tool in ["ip"] + (["nft"] if "F" in args.scenarios else []):
        if not shutil.which(tool):
            raise SystemExit(f"bench/scan.py needs `{tool}` (apt-get install iproute2 nftables)")
    if not os.path.exists(args.tcpkit):
        raise SystemExit("build first: cargo build --release --examples")
    teardown()
    signal.signal(signal.SIGTERM, lambda *_: (teardown(), sys.exit(1)))
    print(f"# tcpkit scan benchmark, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, "
          f"{os.cpu_count()} cores, {args.runs} runs per tool, interleaved")
    try:
        for sc in args.scenarios.split(","):
            report(sc, *bench(sc, args))
    finally:
        teardown()


if __name__ == "__main__":
    main()
