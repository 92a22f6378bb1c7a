#!/usr/bin/env python3
"""Half the room leaves at once: how long until every remaining client has seen every
`* NAME left`, the server's CPU for it, and its sendmsg calls (with perf, when installed).

Usage: bench/chat_leave.py [BINARY] [PORT]   (default target/release/tcpkit, 7480)
Compare two builds by passing each binary. Loopback only; 300 clients, bounded waits.
"""
import os, select, shutil, socket, subprocess, sys, tempfile, time
HERE = os.path.dirname(os.path.abspath(__file__))
binary = sys.argv[1] if len(sys.argv) > 1 else os.path.join(HERE, '..', 'target', 'release', 'tcpkit')
port = int(sys.argv[2]) if len(sys.argv) > 2 else 7480
d = tempfile.mkdtemp()
srv = subprocess.Popen([binary, "chat-server", "--port", str(port), "--no-console", "--log", d+"/log", "--db", d+"/db", "--history", "0"], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
time.sleep(0.4)
N = 300
socks = []
for i in range(N):
    s = socket.create_connection(("127.0.0.1", port))
    s.sendall(f"/register user{i} bench-pw-{i}\n".encode())
    socks.append(s)
# wait until all logged in: each saw "* online"
buf = {s: b"" for s in socks}
ready = set()
t0 = time.time()
while len(ready) < N and time.time() - t0 < 120:
    r, _, _ = select.select(socks, [], [], 0.5)
    for s in r:
        buf[s] += s.recv(65536)
        if b"* online" in buf[s]:  # logged in
            ready.add(s)
time.sleep(1)
def cpu(pid):
    f = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(f[11]) + int(f[12])) * 10
stat = None
if shutil.which("perf"):
    stat = subprocess.Popen(["perf", "stat", "-e", "syscalls:sys_enter_sendmsg", "-p", str(srv.pid), "-o", d+"/stat"])
time.sleep(0.5)
c0 = cpu(srv.pid)
for s in socks[:N//2]:
    s.close()
# drain the stayers until every stayer saw all N/2 "left" lines
left = {s: 0 for s in socks[N//2:]}
t0 = time.time()
while time.time() - t0 < 20 and any(v < N//2 for v in left.values()):
    r, _, _ = select.select(list(left), [], [], 0.5)
    for s in r:
        data = s.recv(1 << 20)
        left[s] += data.count(b" left\n")
dt = time.time() - t0
c1 = cpu(srv.pid)
sends = "?"
if stat:
    stat.send_signal(2)
    stat.wait()
    lines = [l for l in open(d + "/stat") if "sendmsg" in l]
    sends = lines[0].split()[0] if lines else "?"
seen = min(left.values())
print(f"{binary}: {N//2} of {N} leave: every stayer saw {seen} of {N//2} 'left' lines in "
      f"{dt*1000:.0f} ms, server CPU {c1-c0} ms, {sends} sendmsg")
srv.terminate()
srv.wait()
shutil.rmtree(d, ignore_errors=True)
