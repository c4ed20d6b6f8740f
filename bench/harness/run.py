#!/usr/bin/env python3
"""`make bench`: RingProxy beside HAProxy, nginx (stream) and a direct connection, on this machine.

    python3 bench/harness/run.py [--bin DIR] [--rounds 3] [--duration 5] [--quick] [--no-netns]
                                 [--threads N] [--proxy-cpus LIST] [--load-cpus LIST]

Starts the bundled backends (ringload echo-server and sink-server) and every proxy with --threads workers
(default 1) pinned to the proxy CPUs (default: the last N CPUs of this process's affinity set), then runs each
cell (ringload on the load CPUs: the rest) for every proxy, interleaved over rounds, and writes
bench/results/<date>.{json,md,svg} and latest.svg. Every child is tracked and stopped at the end, Ctrl-C too.
"""
import argparse
import atexit
import datetime
import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import time

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import cells as cellmod  # noqa: E402
import netns as netnsmod  # noqa: E402
import proxies as proxymod  # noqa: E402
import report  # noqa: E402
import svg  # noqa: E402
from procs import (Children, describe_cpus, format_cpu_list, free_port, parse_cpu_list,  # noqa: E402
                   raise_fd_limit, wait_line)

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))


class Context:
    """What every cell and proxy needs: binaries, temp folder, children, CPUs and where things run."""

    def __init__(self, bin_dir, tmpdir, children, proxy_cpus, load_cpus, threads=1):
        self.bin = bin_dir
        self.tmpdir = tmpdir
        self.children = children
        self.proxy_cpus = list(proxy_cpus)  # every proxy runs pinned to this set (taskset)
        self.load_cpus = list(load_cpus)  # ringload, the backends and the harness itself
        self.threads = threads  # worker threads (nginx: worker processes) of every proxy
        self.ringload = cellmod.RingLoad(os.path.join(bin_dir, "ringload"))
        self.backend_pids = {}
        self.backends = {}
        self.nofile = 20000
        self.listen_host = "127.0.0.1"
        self.backend_host = "127.0.0.1"
        self.server_ns = None
        self.client_ns = None
        self._port = 20000

    def next_port(self):
        self._port += 1
        return self._port

    def server_cmd(self, argv, cpus):
        """argv pinned to the CPU list cpus, inside the server namespace when there is one."""
        pinned = ["taskset", "-c", format_cpu_list(cpus)] + argv
        return (["ip", "netns", "exec", self.server_ns] + pinned) if self.server_ns else pinned

    def client_cmd(self, argv, cpus):
        pinned = ["taskset", "-c", format_cpu_list(cpus)] + argv
        return (["ip", "netns", "exec", self.client_ns] + pinned) if self.client_ns else pinned


def log(*args):
    print(*args, flush=True)


def start_backends(ctx):
    """ringload echo-server and sink-server on the load CPUs (one thread per load CPU where they take
    --threads); {name: (host, port)}."""
    backends = {}
    kinds = [("echo", "echo-server")]
    if "sink-server" in ctx.ringload.modes:
        kinds.append(("sink", "sink-server"))
    for name, mode in kinds:
        port = ctx.next_port() if ctx.server_ns else free_port(ctx.backend_host)
        argv = [ctx.ringload.path, mode, "--listen", f"{ctx.backend_host}:{port}"]
        argv += ctx.ringload.thread_args(mode, len(ctx.load_cpus))
        proc = ctx.children.start(ctx.server_cmd(argv, ctx.load_cpus), stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        if not wait_line(proc, "listening on", timeout=15):
            raise SystemExit(f"{mode} did not start")
        ctx.backend_pids[name] = proc.pid
        backends[name] = (ctx.backend_host, port)
    ctx.backends = backends
    return backends


def machine_info(proxies, args, ctx, network, nofile):
    cpu_model = "unknown"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu_model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    git = subprocess.run(["git", "-C", ROOT, "describe", "--always", "--dirty"], capture_output=True, text=True)
    versions = {p.name: p.version() for p in proxies if p.name in ("haproxy", "nginx")}
    return {"date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
            "kernel": platform.release(), "cpu_model": cpu_model, "nproc": os.cpu_count(),
            "versions": versions, "git": git.stdout.strip() or "unknown", "proxy_cpus": ctx.proxy_cpus,
            "load_cpus": ctx.load_cpus, "threads": ctx.threads,
            "rounds": args.rounds, "duration_s": args.duration, "network": network,
            "nofile": nofile, "command": args.command, "rate": args.rate, "idle_connections": args.idle,
            "ringload_modes": sorted(ctx.ringload.modes), "notes": [],
            "binaries": {tool: datetime.datetime.fromtimestamp(os.path.getmtime(os.path.join(ctx.bin, tool)),
                                                               datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
                         for tool in ("ringproxy", "ringload")}}


def run_rounds(ctx, proxies, cells, rounds, duration, tag="", samples=None):
    """Every cell for every running proxy, `rounds` times, rotating the proxies' order; appends each sample
    to `samples` as it is taken (so an interrupted run keeps them) and returns the list."""
    samples = [] if samples is None else samples
    for r in range(rounds):
        for ci, cell in enumerate(cells):
            shift = (r + ci) % len(proxies)
            order = proxies[shift:] + proxies[:shift]
            for proxy in order:
                sample = cellmod.measure(ctx, proxy, cell, duration, r)
                if tag:
                    sample["network"] = tag
                samples.append(sample)
                log(describe(r, cell, proxy, sample))
    return samples


def describe(r, cell, proxy, s):
    head = f"[round {r + 1}] {cell.name:<13} {proxy.name:<19}"
    if not s.get("ok"):
        return head + ("unsupported: " if s.get("unsupported") else "FAILED: ") + str(s.get("error"))[:200]
    if cell.mode == "idle":
        return head + f"{s['kib_per_connection']:.2f} KiB/conn (RSS {s['rss_kib_before']} -> {s['rss_kib_after']} KiB)"
    rate = s.get("mb_per_s") if cell.mode == "stream" else s.get("requests_per_s")
    extra = f"  p50 {s['p50_ms']:.3f} ms  p99 {s['p99_ms']:.3f} ms" if cell.mode == "rr" and s.get("p50_ms") is not None else ""
    cpu = f"  proxy CPU {s['cpu_percent']}%" + (f" {s['cpu_us_per_request']} µs/req" if s.get("cpu_us_per_request") else "")
    unit = "req/s" if cell.metric == "cpu_us_per_request" else cell.unit
    return head + f"{rate:,.1f} {unit}{cpu}{extra}"


def warm_up(ctx, proxies, seconds):
    """A short unrecorded rr run through each proxy (caches, page faults, lazy allocations)."""
    cell = cellmod.Cell("warmup", "warm-up", "rr", "echo", ["--connections", "100", "--size", "64"],
                        "requests_per_s", "req/s")
    for proxy in proxies:
        cellmod.measure(ctx, proxy, cell, seconds, -1)


def start_proxies(ctx, proxies, backends):
    for proxy in proxies:
        if proxy.start(ctx, backends):
            log(f"started {proxy.name:<19} " + ", ".join(f"{n} {h}:{p}" for n, (h, p) in proxy.frontends.items()))
        else:
            log(f"could not start {proxy.name}: {proxy.error}")


def choose_cpus(parser, args, affinity):
    """(proxy_cpus, load_cpus, notes) from --threads, --proxy-cpus and --load-cpus within `affinity` (this
    process's CPUs); a bad list ends the run with exit status 2.

    Defaults: the proxies get the last N CPUs of the set (N = --threads, at most all but one), the load and the
    backends the rest; with one CPU they share it. When only one list is given, the other one gets the rest of
    the set (or shares the given one when nothing is left)."""
    if args.threads < 1:
        parser.error(f"--threads must be at least 1 (got {args.threads})")
    cpus = sorted(affinity)
    given = {}
    for flag, text in (("--proxy-cpus", args.proxy_cpus), ("--load-cpus", args.load_cpus)):
        if text is None:
            continue
        try:
            chosen = parse_cpu_list(text)
        except ValueError as e:
            parser.error(f"{flag}: {e}")
        outside = [c for c in chosen if c not in affinity]
        if outside:
            parser.error(f"{flag} {text}: CPU {format_cpu_list(outside)} not in this process's affinity set "
                         f"({format_cpu_list(cpus)})")
        given[flag] = chosen
    proxy, load = given.get("--proxy-cpus"), given.get("--load-cpus")
    if proxy is None and load is None:
        if len(cpus) >= 2:
            n = min(args.threads, len(cpus) - 1)
            proxy, load = cpus[-n:], cpus[:-n]
        else:
            proxy = load = cpus
    elif proxy is None:
        rest = [c for c in cpus if c not in load]
        proxy = rest[-min(args.threads, len(rest)):] if rest else load
    elif load is None:
        load = [c for c in cpus if c not in proxy] or proxy
    notes = []
    shared = sorted(set(proxy) & set(load))
    if len(cpus) < 2:
        notes.append("only one CPU: proxies share it with the load")
    elif shared:
        notes.append(f"The proxies share {describe_cpus(shared)} with the load and the backends: their rates "
                     "and CPU figures include that contention")
    if args.threads > len(proxy):
        notes.append(f"{args.threads} worker threads per proxy on {len(proxy)} CPU(s): workers share CPUs")
    return proxy, load, notes


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bin", help="folder with ringproxy and ringload (default: swift's release bin path)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration", type=float, default=5.0, help="seconds per timed cell")
    parser.add_argument("--quick", action="store_true", help="1 round of 2 s cells (results tagged -quick)")
    parser.add_argument("--rate", type=int, default=10000,
                        help="offered req/s of the open-loop cell (keep it well under every proxy's peak)")
    parser.add_argument("--idle", type=int, default=10000, help="idle connections of the memory cell")
    parser.add_argument("--proxies", default="ringproxy,haproxy,nginx,direct")
    parser.add_argument("--variants", default=os.environ.get("BENCH_VARIANTS", ""),
                        help="extra RingProxy variants: sqpoll,zerocopy (or BENCH_VARIANTS)")
    parser.add_argument("--cells", help="only these cells (comma-separated names)")
    parser.add_argument("--threads", type=int, default=1,
                        help="worker threads of every proxy: RingProxy threads, HAProxy nbthread, nginx "
                             "worker_processes (default 1)")
    parser.add_argument("--proxy-cpus", metavar="LIST",
                        help="CPUs of the proxies, taskset-style (2-9, 0,2-3); default: the last --threads CPUs "
                             "of this process's affinity set (all but one at most)")
    parser.add_argument("--load-cpus", metavar="LIST",
                        help="CPUs of ringload, the backends and the harness; default: the CPUs the proxies do not "
                             "have (with one CPU, the same one). ringload and the backends get one thread per CPU")
    parser.add_argument("--netns", action=argparse.BooleanOptionalAction, default=True,
                        help="also run the rr cells across two network namespaces joined by a veth pair (root)")
    parser.add_argument("--no-install", action="store_true", help="do not apt-get install haproxy/nginx")
    parser.add_argument("--out", help="folder for the results (default bench/results; with --report, the "
                                      "json's own folder)")
    parser.add_argument("--warmup", type=float, default=None, help="seconds of unrecorded load per proxy first")
    parser.add_argument("--report", metavar="JSON", help="only redo the .md and .svg of a results .json")
    args = parser.parse_args()
    if args.report:
        return rewrite_report(args.report, args.out)
    args.out = args.out or os.path.join(ROOT, "bench", "results")
    affinity = os.sched_getaffinity(0)
    proxy_cpus, load_cpus, cpu_notes = choose_cpus(parser, args, affinity)
    if args.quick:
        args.rounds, args.duration = 1, min(args.duration, 2.0)
    args.command = "make bench-quick" if args.quick else "make bench" if args.rounds == 3 else \
        f"python3 bench/harness/run.py --rounds {args.rounds} --duration {args.duration:g}"
    placement = ([f"--threads {args.threads}"] if args.threads != 1 else []) \
        + ([f"--proxy-cpus {args.proxy_cpus}"] if args.proxy_cpus else []) \
        + ([f"--load-cpus {args.load_cpus}"] if args.load_cpus else [])
    if placement:
        args.command += (f" BENCH_ARGS='{' '.join(placement)}'" if args.command.startswith("make")
                         else " " + " ".join(placement))
    if args.warmup is None:
        args.warmup = 0.5 if args.quick else 1.0
    bin_dir = args.bin or subprocess.run(["swift", "build", "-c", "release", "--show-bin-path"], cwd=ROOT,
                                         capture_output=True, text=True).stdout.strip()
    for tool in ("ringproxy", "ringload"):
        if not os.access(os.path.join(bin_dir, tool), os.X_OK):
            raise SystemExit(f"{bin_dir}/{tool} not found: build first (swift build -c release)")

    children = Children()
    atexit.register(children.stop_all)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    signal.signal(signal.SIGINT, signal.default_int_handler)  # even when started with SIGINT ignored
    if not args.no_install:
        proxymod.ensure_packages(log)
    nofile = raise_fd_limit(200000)
    os.sched_setaffinity(0, set(load_cpus))  # the harness's own polling stays off the proxies' CPUs

    started = time.monotonic()
    tmpdir = tempfile.mkdtemp(prefix="ringproxy-bench-")
    ctx = Context(os.path.abspath(bin_dir), tmpdir, children, proxy_cpus, load_cpus, args.threads)
    variants = [v for v in args.variants.split(",") if v]
    proxies = proxymod.build([p for p in args.proxies.split(",") if p], variants)
    ctx.nofile = nofile
    notes = []
    fits = (nofile - 300) // 2 // 1000 * 1000  # a proxy holds 2 descriptors per connection
    if args.idle > fits:
        note = (f"RLIMIT_NOFILE is {nofile} here (raising it needs CAP_SYS_RESOURCE): the memory cell holds "
                f"{fits} idle connections instead of {args.idle}")
        log(note)
        notes.append(note)
        args.idle = fits
    cells = cellmod.make_cells(rate=args.rate, idle_connections=args.idle)
    if args.cells:
        wanted = args.cells.split(",")
        cells = [c for c in cells if c.name in wanted]
    network = "loopback (127.0.0.1)"
    meta = machine_info(proxies, args, ctx, network, nofile)
    meta["notes"] += notes
    with open("/proc/loadavg") as f:
        meta["loadavg_start"] = f.read().split()[:3]
    meta["notes"] += cpu_notes
    for note in cpu_notes:
        log(note)
    log(f"ringload modes here: {', '.join(sorted(ctx.ringload.modes))}; temp {tmpdir}")
    log(f"proxies ({args.threads} worker thread(s) each) pinned to {describe_cpus(proxy_cpus)}, backends and load "
        f"on {describe_cpus(load_cpus)}; RLIMIT_NOFILE {nofile}")

    samples = []
    complete = False
    try:
        backends = start_backends(ctx)
        start_proxies(ctx, proxies, backends)
        warm_up(ctx, proxies, args.warmup)
        run_rounds(ctx, proxies, cells, args.rounds, args.duration, samples=samples)
        if args.netns:
            children.stop_all()
            netnsmod.run(ctx, args, [c for c in cells if c.netns and c.mode == "rr"], log,
                         start_backends, start_proxies, run_rounds, warm_up, meta, samples)
        complete = True
    finally:
        children.stop_all()
        if samples:
            meta["elapsed_s"] = round(time.monotonic() - started, 1)
            write_results(args, meta, cells, proxies, samples, complete)
        if complete and all(s.get("ok") or s.get("unsupported") for s in samples):
            shutil.rmtree(tmpdir, ignore_errors=True)
        else:
            log(f"configurations and proxy logs kept in {tmpdir}")


def rewrite_report(path, out_dir=None):
    """Redo <name>.md and <name>.svg (and latest.svg for a complete full run) from <name>.json, next to it or
    in out_dir."""
    with open(path) as f:
        data = json.load(f)
    cells = [cellmod.Cell(**{k: v for k, v in c.items() if k != "short"}, short=c.get("short")) for c in data["cells"]]
    names, meta, samples = data["proxies"], data["meta"], data["samples"]
    summary = report.summarize([s for s in samples if not s.get("network")], cells, names)
    text = report.markdown(meta, cells, names, summary)
    if any(s.get("network") for s in samples):
        ns_cells = [c for c in cells if c.netns and c.mode == "rr"]
        text += "\n" + netnsmod.markdown(meta, ns_cells, names,
                                         report.summarize([s for s in samples if s.get("network")], ns_cells, names))
    base = path[:-len(".json")] if path.endswith(".json") else path
    if out_dir:
        os.makedirs(out_dir, exist_ok=True)
        base = os.path.join(out_dir, os.path.basename(base))
    chart = svg.chart(meta, cells, names, summary)
    with open(base + ".md", "w") as f:
        f.write(text)
    with open(base + ".svg", "w") as f:
        f.write(chart)
    if data.get("complete") and "-quick" not in base and "-partial" not in base:
        with open(os.path.join(os.path.dirname(base), "latest.svg"), "w") as f:
            f.write(chart)
    print(text)


def write_results(args, meta, cells, proxies, samples, complete):
    names = [p.name for p in proxies]
    foreign = sorted(s["foreign_on_proxy_cpu_percent"] for s in samples if s.get("foreign_on_proxy_cpu_percent") is not None)
    if foreign:
        meta["foreign_on_proxy_cpu_percent"] = {"median": foreign[len(foreign) // 2], "max": foreign[-1]}
        cpus = meta["proxy_cpus"]
        meta["notes"].append(f"Work other than the proxy on {describe_cpus(cpus)} during the measurements: median "
                             f"{foreign[len(foreign) // 2]}% of {'that CPU' if len(cpus) == 1 else 'those CPUs'}, "
                             f"at most {foreign[-1]}% (0 on a quiet machine; "
                             "more makes the proxies' numbers noisier, latency tails first)")
    with open("/proc/loadavg") as f:
        meta["loadavg_end"] = f.read().split()[:3]
    summary = report.summarize([s for s in samples if not s.get("network")], cells, names)
    text = report.markdown(meta, cells, names, summary)
    netns_text = ""
    if any(s.get("network") for s in samples):
        ns_cells = [c for c in cells if c.netns and c.mode == "rr"]
        ns_summary = report.summarize([s for s in samples if s.get("network")], ns_cells, names)
        netns_text = netnsmod.markdown(meta, ns_cells, names, ns_summary)
        text += "\n" + netns_text
        summary["netns"] = ns_summary
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d")
    suffix = ("-quick" if args.quick else "") + ("" if complete else "-partial")
    os.makedirs(args.out, exist_ok=True)
    base = os.path.join(args.out, stamp + suffix)
    with open(base + ".json", "w") as f:
        json.dump({"meta": meta, "complete": complete, "cells": [vars(c) for c in cells], "proxies": names,
                   "summary": summary, "samples": samples}, f, indent=1, default=str)
    with open(base + ".md", "w") as f:
        f.write(text)
    chart = svg.chart(meta, cells, names, {k: v for k, v in summary.items() if k != "netns"})
    with open(base + ".svg", "w") as f:
        f.write(chart)
    if complete and not args.quick:
        with open(os.path.join(args.out, "latest.svg"), "w") as f:
            f.write(chart)
    print()
    print(text)
    log(f"wrote {base}.json, .md, .svg" + (" and latest.svg" if complete and not args.quick else "")
        + f" in {meta['elapsed_s']} s")


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        sys.exit(130)
