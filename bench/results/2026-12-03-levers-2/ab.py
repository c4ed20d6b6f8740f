#!/usr/bin/env python3
# Interleaved A/B/C: proxy CPU (perf stat task-clock), io_uring_enter calls and context switches per request over a
# fixed ringload rr request count. Proxy on CPU 1, load + echo server on CPU 0. Each round runs every variant once,
# in a shuffled order.  ab.py OUT.json ROUNDS REQUESTS CONNS name=cmd ...
import json, os, random, signal, socket, subprocess, sys, time, statistics
out, rounds, requests, conns = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
variants = dict(a.split("=", 1) for a in sys.argv[5:])
L = "/tmp/levers2/ringload"
def fp():
    s = socket.socket(); s.bind(("127.0.0.1", 0)); p = s.getsockname()[1]; s.close(); return p
def wp(port):
    for _ in range(600):
        try: socket.create_connection(("127.0.0.1", port), 0.2).close(); return
        except OSError: time.sleep(0.1)
    raise SystemExit(f"port {port} never opened")
ep = fp()
echo = subprocess.Popen(["taskset", "-c", "0", L, "echo-server", "--listen", f"127.0.0.1:{ep}"], stdout=subprocess.DEVNULL)
wp(ep)
results = {n: [] for n in variants}
def load(port, n, json_path=None):
    cmd = ["taskset", "-c", "0", L, "rr", "--target", f"127.0.0.1:{port}", "--connections", str(conns), "--requests", str(n), "--quiet"]
    if json_path: cmd += ["--json", json_path]
    subprocess.run(cmd, stdout=subprocess.DEVNULL, check=True)
try:
    for r in range(rounds):
        order = list(variants); random.shuffle(order)
        for name in order:
            port = fp()
            proxy = subprocess.Popen(["taskset", "-c", "1", variants[name], "--listen", f"127.0.0.1:{port}", "--backend",
                f"127.0.0.1:{ep}", "--threads", "1", "--no-pin", "--log-level", "error"])
            wp(port); load(port, 2000)
            stat = subprocess.Popen(["perf", "stat", "-x,", "-e", "task-clock,context-switches,syscalls:sys_enter_io_uring_enter",
                "-p", str(proxy.pid), "-o", "/tmp/levers2/stat.txt"])
            time.sleep(0.3)
            t0 = time.time(); load(port, requests, "/tmp/levers2/ab-load.json"); wall = time.time() - t0
            stat.send_signal(signal.SIGINT); stat.wait()
            proxy.send_signal(signal.SIGINT); proxy.wait()
            vals = {}
            for line in open("/tmp/levers2/stat.txt"):
                f = line.strip().split(",")
                if len(f) > 2 and f[0] and f[0][0].isdigit(): vals[f[2]] = float(f[0])
            lj = json.load(open("/tmp/levers2/ab-load.json"))
            n = lj["requests"]
            row = dict(round=r, cpu_us_per_req=vals["task-clock"] * 1000 / n, enters_per_req=vals["syscalls:sys_enter_io_uring_enter"] / n,
                       cs_per_req=vals["context-switches"] / n, rate=lj["requests_per_s"], p99_ms=lj["latency_ms"]["p99"])
            results[name].append(row); print(name, json.dumps(row), flush=True)
finally:
    echo.send_signal(signal.SIGINT); echo.wait()
    json.dump(results, open(out, "w"), indent=1)
base = list(variants)[0]
for name in variants:
    rows = results[name]
    line = f"{name}: " + ", ".join(f"{k} median {statistics.median(x[k] for x in rows):.3f}" for k in ("cpu_us_per_req", "enters_per_req", "cs_per_req", "rate", "p99_ms"))
    if name != base:
        ratios = sorted(a["cpu_us_per_req"] / b["cpu_us_per_req"] for a, b in zip(rows, results[base]))
        rr = sorted(a["rate"] / b["rate"] for a, b in zip(rows, results[base]))
        line += f" | CPU/req ÷ {base}: median {statistics.median(ratios):.3f} range {ratios[0]:.3f}–{ratios[-1]:.3f}; rate ÷: median {statistics.median(rr):.3f} range {rr[0]:.3f}–{rr[-1]:.3f}"
    print(line)
