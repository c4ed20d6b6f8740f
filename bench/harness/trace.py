#!/usr/bin/env python3
"""Where the time goes between an arrival and its send: wrk keep-alive through each proxy to nginx (1 KiB), the
proxy on CPU 1 and wrk + nginx on CPU 0 (the bench's `pinned` layout), with perf counting, per request:

- io_uring tracepoints in the proxy (SQEs by opcode, CQEs, task work added and run, waits), its
  io_uring_enter / epoll_wait / send and receive system calls, all of its system calls;
- its context switches (voluntary: it slept and had to be woken) and the wake-ups it makes (sched_waking in
  its context: each wakes wrk or nginx on the other CPU);
- how busy each CPU was, per request (the proxy's CPU, and the cost it puts on the load CPU).

    python3 bench/harness/trace.py [--bin DIR] [--proxies ringproxy,haproxy,nginx] [--connections 100]
                                   [--seconds 5] [--ringproxy-config 'key = value; ...'] [--no-nopush]
                                   [--build NAME=PATH] [--json FILE]

Needs perf (linux-perf) and root (tracepoints). Prints a Markdown table; --json keeps the raw counts.
"""
import argparse
import atexit
import json
import os
import re
import subprocess
import sys
import tempfile
import time

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import cells as cellmod  # noqa: E402
import proxies as proxymod  # noqa: E402
import run as runmod  # noqa: E402
import thirdparty  # noqa: E402
from procs import Children, cpu_busy, cpu_of, raise_fd_limit  # noqa: E402

EVENTS = ["io_uring:io_uring_submit_req", "io_uring:io_uring_complete", "io_uring:io_uring_task_add",
          "io_uring:io_uring_local_work_run", "io_uring:io_uring_task_work_run", "io_uring:io_uring_cqring_wait",
          "io_uring:io_uring_poll_arm", "syscalls:sys_enter_io_uring_enter", "syscalls:sys_enter_epoll_wait",
          "syscalls:sys_enter_sendto", "syscalls:sys_enter_recvfrom", "syscalls:sys_enter_writev",
          "syscalls:sys_enter_readv", "syscalls:sys_enter_splice", "raw_syscalls:sys_enter", "sched:sched_waking",
          "context-switches", "cpu-migrations"]


def ctx_switches(pids):
    """(voluntary, involuntary) context switches of pids' threads."""
    vol = inv = 0
    for pid in pids:
        for tid in os.listdir(f"/proc/{pid}/task"):
            try:
                with open(f"/proc/{pid}/task/{tid}/status") as f:
                    text = f.read()
            except OSError:
                continue
            vol += int(re.search(r"voluntary_ctxt_switches:\s+(\d+)", text)[1])
            inv += int(re.search(r"nonvoluntary_ctxt_switches:\s+(\d+)", text)[1])
    return vol, inv


# SQEs counted by opcode (the io_uring_submit_req tracepoint's field; include/uapi/linux/io_uring.h).
OPCODES = {"SEND": 26, "RECV": 27, "SENDMSG": 9, "RECVMSG": 10, "SEND_ZC": 47, "ASYNC_CANCEL": 14, "CLOSE": 19,
           "CONNECT": 16, "ACCEPT": 13, "TIMEOUT": 11}


def perf_stat(pids, seconds, out):
    argv = ["perf", "stat", "-x", ",", "-o", out, "-e", ",".join(EVENTS)]
    for name, number in OPCODES.items():
        argv += ["-e", "io_uring:io_uring_submit_req", "--filter", f"opcode == {number}"]
    argv += ["-p", ",".join(map(str, pids)), "--", "sleep", f"{seconds:g}"]
    return subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def read_stat(path):
    """{event: count}; the filtered submit_req lines, which come in OPCODES order, as "SQE <opcode>"."""
    counts = {}
    names = iter(OPCODES)
    with open(path) as f:
        for line in f:
            parts = line.strip().split(",")
            if len(parts) > 2 and parts[0].replace(".", "").isdigit():
                key = parts[2]
                if key in counts and key == "io_uring:io_uring_submit_req":
                    key = "SQE " + next(names)
                counts[key] = float(parts[0])
    return counts


def sched_latency(ctx, host, port, cell, tmp):
    """`perf sched latency` rows (task, runtime ms, switches, average and maximum delay ms: from being woken to
    running) over 2 s of the same load, system-wide."""
    data = os.path.join(tmp, "sched.data")
    wrk = subprocess.Popen(ctx.client_cmd(thirdparty.wrk_argv(host, port, cell, 4, 1), ctx.load_cpus),
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(1)
    subprocess.run(["perf", "sched", "record", "-a", "-o", data, "--", "sleep", "2"],
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wrk.wait()
    text = subprocess.run(["perf", "sched", "latency", "-i", data, "--sort", "max"], capture_output=True,
                          text=True).stdout
    rows = []
    for line in text.splitlines():
        m = re.match(r"\s*(\S+?):(?:[\d,]+|\(\d+\))\s*\|\s*([\d.]+) ms\s*\|\s*(\d+)\s*\|\s*avg:\s*([\d.]+) ms\s*\|\s*max:\s*([\d.]+) ms", line)
        if m and re.match(r"(ringproxy|haproxy|nginx|wrk|worker)", m[1]):
            rows.append({"task": m[1], "runtime_ms": float(m[2]), "switches": int(m[3]), "avg_delay_ms": float(m[4]),
                         "max_delay_ms": float(m[5])})
    return rows


def trace(ctx, proxy, cell, seconds, tmp):
    host, port = proxy.frontends["http"]
    # Warm-up, then the counted run: perf stat over the proxy while wrk runs.
    thirdparty.run_client(ctx, thirdparty.wrk_argv(host, port, cell, 1, 1), 30)
    pids = proxy.cpu_pids()
    stat_out = os.path.join(tmp, f"{proxy.name}.stat")
    vol0, inv0 = ctx_switches(pids)
    user0, sys0 = cpu_of(pids)
    busy0 = {c: cpu_busy([c]) for c in (0, 1)}
    stat = perf_stat(pids, seconds, stat_out)
    status, text, client_cpu = thirdparty.run_client(ctx, thirdparty.wrk_argv(host, port, cell, seconds, 1), seconds + 30)
    stat.wait()
    vol1, inv1 = ctx_switches(pids)
    user1, sys1 = cpu_of(pids)
    busy1 = {c: cpu_busy([c]) for c in (0, 1)}
    load = thirdparty.parse_wrk(text)
    requests = load.get("requests") or 1
    counts = read_stat(stat_out)
    sched = sched_latency(ctx, host, port, cell, tmp) if ctx.sched else None
    return {"sched_latency": sched, "proxy": proxy.name, "requests": requests, "requests_per_s": load.get("requests_per_s"),
            "p50_ms": load["latency_ms"].get("p50"), "p99_ms": load["latency_ms"].get("p99"),
            "counts": counts, "per_request": {k: v / requests for k, v in counts.items()},
            "voluntary_switches_per_request": (vol1 - vol0) / requests,
            "involuntary_switches_per_request": (inv1 - inv0) / requests,
            "proxy_cpu_us_per_request": ((user1 - user0) + (sys1 - sys0)) / requests * 1e6,
            "cpu_busy_us_per_request": {c: (busy1[c][0] - busy0[c][0]) / requests * 1e6 for c in (0, 1)},
            "client_cpu_us_per_request": client_cpu / requests * 1e6}


def table(results):
    rows = [("requests/s", lambda r: f"{r['requests_per_s']:,.0f}"),
            ("p50 / p99 ms", lambda r: f"{r['p50_ms']:.2f} / {r['p99_ms']:.2f}"),
            ("proxy CPU-µs", lambda r: f"{r['proxy_cpu_us_per_request']:.1f}"),
            ("CPU 1 (proxy) busy µs", lambda r: f"{r['cpu_busy_us_per_request'][1]:.1f}"),
            ("CPU 0 (wrk + nginx) busy µs", lambda r: f"{r['cpu_busy_us_per_request'][0]:.1f}"),
            ("wrk CPU-µs", lambda r: f"{r['client_cpu_us_per_request']:.1f}")]
    for event in EVENTS:
        name = event.split(":")[-1]
        rows.append((name, lambda r, e=event: f"{r['per_request'].get(e, 0):.2f}"))
    rows += [("voluntary switches (sleeps)", lambda r: f"{r['voluntary_switches_per_request']:.2f}"),
             ("involuntary switches", lambda r: f"{r['involuntary_switches_per_request']:.2f}")]
    for op in OPCODES:
        rows.append((f"SQE {op}", lambda r, o=op: f"{r['per_request'].get('SQE ' + o, 0):.2f}"))
    lines = ["| per request | " + " | ".join(r["proxy"] for r in results) + " |",
             "|---|" + "---:|" * len(results)]
    for label, fn in rows:
        lines.append(f"| {label} | " + " | ".join(fn(r) for r in results) + " |")
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bin")
    parser.add_argument("--proxies", default="ringproxy,haproxy,nginx")
    parser.add_argument("--connections", type=int, default=100)
    parser.add_argument("--seconds", type=float, default=5)
    parser.add_argument("--ringproxy-config", default="", help="extra RingProxy keys, 'a = 1; b = \"x\"'")
    parser.add_argument("--nopush", action=argparse.BooleanOptionalAction, default=True,
                        help="nginx tcp_nopush (Debian's default: on; off sends a response's header and body as two "
                             "segments)")
    parser.add_argument("--build", action="append", default=[], metavar="NAME=PATH",
                        help="another ringproxy binary, traced as ringproxy-NAME (repeatable)")
    parser.add_argument("--sched", action="store_true",
                        help="also `perf sched latency` (system-wide) over 2 s: how long each task waited to run once woken")
    parser.add_argument("--json")
    args = parser.parse_args()
    bin_dir = args.bin or subprocess.run(["swift", "build", "-c", "release", "--show-bin-path"],
                                         capture_output=True, text=True).stdout.strip()
    children = Children()
    atexit.register(children.stop_all)
    tmp = tempfile.mkdtemp(prefix="ringproxy-trace-")
    ctx = runmod.Context(os.path.abspath(bin_dir), tmp, children, [1], [0], 1)
    ctx.nofile = raise_fd_limit(200000)
    ctx.http_nopush = args.nopush
    ctx.sched = args.sched
    os.sched_setaffinity(0, {0})
    backends = runmod.start_backends(ctx)
    cell = cellmod.Cell("wrk", "wrk", "wrk", "http", ["--connections", str(args.connections)], "requests_per_s", "req/s")
    extra = dict(kv.split("=", 1) for kv in args.ringproxy_config.split(";") if kv.strip())
    results = []
    for proxy in proxymod.build([p for p in args.proxies.split(",") if p], [], args.build):
        if proxy.name == "ringproxy" and extra:
            proxy.extra = {k.strip(): v.strip() for k, v in extra.items()}
        if not proxy.start(ctx, backends):
            print(f"{proxy.name} did not start: {proxy.error}", file=sys.stderr)
            continue
        time.sleep(0.3)
        results.append(trace(ctx, proxy, cell, args.seconds, tmp))
        children.stop(proxy.proc)
    print(f"wrk keep-alive, {args.connections} connections, nginx 1 KiB (tcp_nopush {'on' if args.nopush else 'off'}); proxy on CPU 1, wrk + nginx on CPU 0; "
          f"{args.seconds:g} s counted\n")
    print(table(results))
    for r in results:
        for row in r.get("sched_latency") or []:
            print(f"{r['proxy']}: {row['task']:<16} runtime {row['runtime_ms']:8.1f} ms  switches {row['switches']:6}  "
                  f"delay avg {row['avg_delay_ms']:.3f} ms  max {row['max_delay_ms']:.3f} ms")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)


if __name__ == "__main__":
    main()
