#!/usr/bin/env python3
"""`make bench`: RingProxy beside HAProxy, nginx (stream) and a direct connection, on this machine.

    python3 bench/harness/run.py [--bin DIR] [--rounds 10] [--duration 1] [--quick] [--layouts pinned,unpinned,two]
                                 [--threads N] [--proxy-cpus LIST] [--load-cpus LIST] [--netns]

Starts the backends (ringload echo-server and sink-server, an nginx HTTP server with a 1 KiB page, iperf3 -s)
and every proxy, then runs each cell of each layout for every proxy, every round in a balanced random order,
and writes bench/results/<date>.{json,md,svg} and latest.svg: medians, and RingProxy's paired per-round ratios
to HAProxy and nginx with bootstrap 95 % intervals, rounds disturbed by steal left out. Layouts: `pinned` (one
worker each on the proxy CPUs, load and backends on the others), `unpinned` (one worker each, nothing pinned)
and `two` (two workers each, nothing pinned but RingProxy's `--cpus` variant and HAProxy's cpu-map). Every
child is tracked and stopped at the end, Ctrl-C too.
"""
import argparse
import atexit
import datetime
import json
import os
import platform
import random
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
import stats  # noqa: E402
import svg  # noqa: E402
import thirdparty  # noqa: E402
import tls  # noqa: E402
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
        self.third_party = True  # the nginx HTTP, TLS and iperf3 backends (not in the veth-pair run)
        self.tls_routes = {}  # server name -> (host, port) of its TLS server (the SNI-routed cell)
        self.wants_tls = True  # whether the run has the TLS cell (a build from before routing cannot load its listener)
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
    --threads), the nginx HTTP server and iperf3 -s; {name: (host, port)}. ctx.backend_pids[name] gives the
    pids whose CPU time is the backend's."""
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
        ctx.backend_pids[name] = lambda pid=proc.pid: [pid]
        backends[name] = (ctx.backend_host, port)
    if ctx.third_party:
        for name, starter in (("http", thirdparty.start_http_backend), ("iperf", thirdparty.start_iperf_server)):
            started = starter(ctx, log)
            if started:
                host, port, pids = started
                backends[name] = (host, port)
                ctx.backend_pids[name] = pids
        started = tls.start_tls_backends(ctx, log) if ctx.wants_tls else None
        if started:
            ctx.tls_routes, ctx.backend_pids["tls"] = started
            backends["tls"] = next(iter(ctx.tls_routes.values()))  # each proxy routes its "tls" listener by name
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
    for tool, argv in (("wrk", ["wrk", "--version"]), ("iperf3", ["iperf3", "--version"])):
        versions[tool] = proxymod.first_line(argv)
    return {"date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
            "kernel": platform.release(), "cpu_model": cpu_model, "nproc": os.cpu_count(),
            "versions": versions, "git": git.stdout.strip() or "unknown", "proxy_cpus": ctx.proxy_cpus,
            "load_cpus": ctx.load_cpus, "threads": ctx.threads,
            "rounds": args.rounds, "duration_s": args.duration, "network": network,
            "nofile": nofile, "command": args.command, "rate": args.rate, "idle_connections": args.idle,
            "ringload_modes": sorted(ctx.ringload.modes), "notes": list(args.note or []),
            "binaries": {tool: datetime.datetime.fromtimestamp(os.path.getmtime(os.path.join(ctx.bin, tool)),
                                                               datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
                         for tool in ("ringproxy", "ringload")}}


class Layout:
    """Where the proxies and the load run, how many workers each proxy has, and which cells are measured."""

    def __init__(self, name, title, threads, shared, cells, variants=()):
        self.name = name
        self.title = title
        self.threads = threads
        self.shared = shared  # proxies, load and backends all on every CPU (nothing pinned by taskset)
        self.cells = cells
        self.variants = list(variants)


THIRD_PARTY = ["wrk-ka-100", "wrk-ka-1000", "wrk-close", "tls-sni", "iperf-1", "iperf-4"]


def make_layouts(threads):
    """The three layouts of `make bench`; `threads` is the pinned layout's worker count (--threads)."""
    return [
        Layout("pinned", f"{workers(threads)} each on the proxy CPUs, load and backends on the others", threads, False,
               ["rr-1", "rr-100", "rr-1000", "rr-100-fixed", "rr-1000-fixed", "stream", "connect"] + THIRD_PARTY
               + ["idle"]),
        Layout("unpinned", f"{workers(threads)} each, nothing pinned: proxies, load and backends share every CPU",
               threads, True, ["rr-100", "rr-1000", "rr-100-fixed", "rr-1000-fixed"] + THIRD_PARTY),
        Layout("two", f"{workers(2 * threads)} each, sharing every CPU with the load; RingProxy unpinned and pinned "
               "(--cpus), HAProxy with cpu-map and a bind per thread", 2 * threads, True,
               ["rr-100", "wrk-ka-100", "iperf-1", "iperf-4"], variants=["pinned"]),
    ]


def workers(n):
    return "one worker" if n == 1 else f"{n} workers"


def run_rounds(ctx, proxies, cells, rounds, duration, tag="", samples=None, rng=None, idle_rounds=None):
    """Every cell for every running proxy, `rounds` times, each cell's proxies in a balanced random order
    (stats.balanced_orders); appends each sample to `samples` as it is taken (so an interrupted run keeps them)
    and returns the list. `tag` names the layout (or "netns"); the idle cell runs in the first `idle_rounds`."""
    samples = [] if samples is None else samples
    rng = rng or random.Random()
    orders = {cell.name: stats.balanced_orders(proxies, rounds, rng) for cell in cells}
    for r in range(rounds):
        for cell in cells:
            if cell.mode == "idle" and idle_rounds is not None and r >= idle_rounds:
                continue
            for proxy in orders[cell.name][r]:
                sample = cellmod.measure(ctx, proxy, cell, duration, r)
                if tag:
                    sample["layout"] = tag
                if tag == "netns":
                    sample["network"] = tag
                samples.append(sample)
                log(describe(r, cell, proxy, sample, tag))
    return samples


def describe(r, cell, proxy, s, tag=""):
    head = f"[{tag + ' ' if tag else ''}round {r + 1}] {cell.name:<13} {proxy.name:<19}"
    if not s.get("ok"):
        return head + ("unsupported: " if s.get("unsupported") else "FAILED: ") + str(s.get("error"))[:200]
    if cell.mode == "idle":
        text = head + f"{s['kib_per_connection']:.2f} KiB/conn RSS, {s['slab_kib_per_connection']:.2f} slab"
        return text + (f", {s['cgroup_kib_per_connection']:.2f} cgroup" if "cgroup_kib_per_connection" in s else "")
    key = cell.rate_key
    unit = "req/s" if cell.metric == "cpu_us_per_request" else cell.unit
    per = cell.per_unit_key
    cpu = f"  proxy CPU {s['cpu_percent']}%" + (f" {s[per]} {'µs/req' if 'request' in per else 'CPU-s/GB'}"
                                                  if per and s.get(per) is not None else "")
    extra = f"  p50 {s['p50_ms']:.3f} ms  p99 {s['p99_ms']:.3f} ms" if s.get("p50_ms") is not None else ""
    steal = f"  steal {s['steal_percent']}%" if s.get("steal_percent") else ""
    return head + f"{s[key]:,.2f} {unit}{cpu}{extra}{steal}"


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
    parser.add_argument("--rounds", type=int, default=int(os.environ.get("BENCH_ROUNDS", 10)),
                        help="rounds; each runs every proxy once per cell (default 10, or BENCH_ROUNDS)")
    parser.add_argument("--duration", type=float, default=float(os.environ.get("BENCH_DURATION", 1)),
                        help="seconds per timed cell (default 1, or BENCH_DURATION; wrk and iperf3 round to whole "
                             "seconds)")
    parser.add_argument("--quick", action="store_true", help="1 round of 1 s cells (results tagged -quick)")
    parser.add_argument("--layouts", default=os.environ.get("BENCH_LAYOUTS", "pinned,unpinned,two"),
                        help="which layouts: pinned, unpinned, two (default all, or BENCH_LAYOUTS)")
    parser.add_argument("--rate", type=int, default=10000,
                        help="offered req/s of the open-loop cells (keep it well under every proxy's peak)")
    parser.add_argument("--idle", type=int, default=4000, help="idle connections of the memory cell")
    parser.add_argument("--idle-rounds", type=int, default=3, help="rounds that include the memory cell (default 3)")
    parser.add_argument("--steal-max", type=float, default=5.0,
                        help="a round whose samples saw more than this %% of CPU time stolen is left out (default 5)")
    parser.add_argument("--direct-drop", type=float, default=15.0,
                        help="a round where the direct run fell more than this %% below its median is left out "
                             "(default 15)")
    parser.add_argument("--other-max", type=float,
                        help="also leave out a round where other work on this machine (not the proxy, client or "
                             "backend) took more than this %% of its CPU time (default: not checked, only reported)")
    parser.add_argument("--seed", type=int, help="seed of the random order (default: from the clock; recorded)")
    parser.add_argument("--proxies", default="ringproxy,haproxy,nginx,direct")
    parser.add_argument("--variants", default=os.environ.get("BENCH_VARIANTS", ""),
                        help="extra RingProxy variants in every layout: sqpoll,zerocopy,pinned (or BENCH_VARIANTS)")
    parser.add_argument("--build", action="append", default=[], metavar="NAME=PATH",
                        help="another ringproxy binary (a change under test), run beside as ringproxy-NAME in every "
                             "layout and compared with ringproxy (repeatable)")
    parser.add_argument("--cells", help="only these cells (comma-separated names)")
    parser.add_argument("--threads", type=int, default=1,
                        help="worker threads of every proxy in the pinned and unpinned layouts (twice that in "
                             "`two`): RingProxy threads, HAProxy nbthread, nginx worker_processes (default 1)")
    parser.add_argument("--proxy-cpus", metavar="LIST",
                        help="CPUs of the proxies in the pinned layout, taskset-style (2-9, 0,2-3); default: the last "
                             "--threads CPUs of this process's affinity set (all but one at most)")
    parser.add_argument("--load-cpus", metavar="LIST",
                        help="CPUs of the load, the backends and the harness in the pinned layout; default: the CPUs "
                             "the proxies do not have (with one CPU, the same one)")
    parser.add_argument("--netns", action=argparse.BooleanOptionalAction, default=False,
                        help="also run the rr cells across two network namespaces joined by a veth pair (root)")
    parser.add_argument("--no-install", action="store_true", help="do not apt-get install haproxy/nginx/wrk/iperf3")
    parser.add_argument("--out", help="folder for the results (default bench/results; with --report, the "
                                      "json's own folder)")
    parser.add_argument("--tag", default="", help="appended to the results' file name (<date>-<tag>)")
    parser.add_argument("--note", action="append", help="a line for the report's notes (repeatable)")
    parser.add_argument("--warmup", type=float, default=None, help="seconds of unrecorded load per proxy first")
    parser.add_argument("--report", metavar="JSON", help="only redo the .md and .svg of a results .json")
    args = parser.parse_args()
    if args.report:
        return rewrite_report(args.report, args.out)
    args.out = args.out or os.path.join(ROOT, "bench", "results")
    affinity = os.sched_getaffinity(0)
    proxy_cpus, load_cpus, cpu_notes = choose_cpus(parser, args, affinity)
    if args.quick:
        args.rounds, args.duration, args.idle_rounds = 1, min(args.duration, 1.0), 1
    if args.rounds < 1:
        parser.error("--rounds must be at least 1")
    layouts = [l for l in make_layouts(args.threads) if l.name in args.layouts.split(",")]
    unknown = set(args.layouts.split(",")) - {l.name for l in make_layouts(1)}
    if unknown or not layouts:
        parser.error(f"--layouts: unknown {', '.join(sorted(unknown)) or '(none given)'}; pinned, unpinned, two")
    args.seed = args.seed if args.seed is not None else int(time.time())
    args.command = "python3 bench/harness/run.py " + " ".join(sys.argv[1:]).replace("--bin " + (args.bin or ""), "").strip()
    if args.warmup is None:
        args.warmup = 0.5
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

    started = time.monotonic()
    tmpdir = tempfile.mkdtemp(prefix="ringproxy-bench-")
    ctx = Context(os.path.abspath(bin_dir), tmpdir, children, proxy_cpus, load_cpus, args.threads)
    ctx.nofile = nofile
    notes = []
    fits = (nofile - 300) // 2 // 1000 * 1000  # a proxy holds 2 descriptors per connection
    if args.idle > fits:
        note = (f"RLIMIT_NOFILE is {nofile} here (raising it needs CAP_SYS_RESOURCE): the memory cell holds "
                f"{fits} idle connections instead of {args.idle}")
        log(note)
        notes.append(note)
        args.idle = fits
    all_cells = {c.name: c for c in cellmod.make_cells(rate=args.rate, idle_connections=args.idle)}
    wanted = set(args.cells.split(",")) if args.cells else None
    for layout in layouts:
        layout.cells = [all_cells[n] for n in layout.cells if wanted is None or n in wanted]
    layouts = [l for l in layouts if l.cells]
    ctx.wants_tls = any(c.mode == "wrk-tls" for l in layouts for c in l.cells)
    network = "loopback (127.0.0.1)"
    meta = machine_info(proxymod.build([p for p in args.proxies.split(",") if p], []), args, ctx, network, nofile)
    meta.update({"seed": args.seed, "steal_max": args.steal_max, "direct_drop": args.direct_drop,
                 "other_max": args.other_max,
                 "idle_rounds": args.idle_rounds, "layouts": []})
    meta["notes"] += notes + cpu_notes
    with open("/proc/loadavg") as f:
        meta["loadavg_start"] = f.read().split()[:3]
    for note in cpu_notes:
        log(note)
    samples_per_round = sum(len(l.cells) * (len(args.proxies.split(",")) + len(l.variants) + len(args.build))
                            for l in layouts)
    log(f"{len(layouts)} layout(s), {samples_per_round} samples a round, {args.rounds} round(s) of {args.duration:g} s "
        f"cells: about {samples_per_round * args.rounds * (args.duration + 0.6) / 60:.0f} minutes; seed {args.seed}; "
        f"temp {tmpdir}")

    samples = []
    complete = False
    rng = random.Random(args.seed)
    try:
        for layout in layouts:
            if layout.shared:
                ctx.proxy_cpus = ctx.load_cpus = sorted(affinity)
            else:
                ctx.proxy_cpus, ctx.load_cpus = proxy_cpus, load_cpus
            ctx.threads = layout.threads
            ctx.backend_pids = {}
            os.sched_setaffinity(0, set(ctx.load_cpus))  # the harness's own polling stays off the proxies' CPUs
            meta["layouts"].append({"name": layout.name, "title": layout.title, "threads": layout.threads,
                                    "proxy_cpus": ctx.proxy_cpus, "load_cpus": ctx.load_cpus,
                                    "cells": [c.name for c in layout.cells]})
            log(f"layout {layout.name}: {layout.title}; proxies on {describe_cpus(ctx.proxy_cpus)}, load and "
                f"backends on {describe_cpus(ctx.load_cpus)}")
            proxies = proxymod.build([p for p in args.proxies.split(",") if p],
                                     list(dict.fromkeys([v for v in args.variants.split(",") if v] + layout.variants)),
                                     args.build)
            backends = start_backends(ctx)
            start_proxies(ctx, proxies, backends)
            warm_up(ctx, proxies, args.warmup)
            run_rounds(ctx, proxies, layout.cells, args.rounds, args.duration, tag=layout.name, samples=samples,
                       rng=rng, idle_rounds=args.idle_rounds)
            children.stop_all()
        if args.netns:
            ctx.proxy_cpus, ctx.load_cpus, ctx.threads = proxy_cpus, load_cpus, args.threads
            netnsmod.run(ctx, args, [c for c in all_cells.values() if c.netns and c.mode == "rr"], log,
                         start_backends, start_proxies, run_rounds, warm_up, meta, samples)
        complete = True
    finally:
        children.stop_all()
        if samples:
            meta["elapsed_s"] = round(time.monotonic() - started, 1)
            write_results(args, meta, list(all_cells.values()), samples, complete)
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
    meta, samples = data["meta"], data["samples"]
    if meta.get("layouts"):
        analysis = report.analyse(meta, cells, samples)
        text, chart = report.document(meta, cells, analysis), svg.document(meta, cells, analysis)
    else:  # results from before the layouts
        text, chart = legacy_report(meta, cells, data["proxies"], samples)
    base = path[:-len(".json")] if path.endswith(".json") else path
    if out_dir:
        os.makedirs(out_dir, exist_ok=True)
        base = os.path.join(out_dir, os.path.basename(base))
    with open(base + ".md", "w") as f:
        f.write(text)
    with open(base + ".svg", "w") as f:
        f.write(chart)
    if data.get("complete") and "-quick" not in base and "-partial" not in base and "-" not in os.path.basename(base)[10:]:
        with open(os.path.join(os.path.dirname(base), "latest.svg"), "w") as f:
            f.write(chart)
    print(text)


def legacy_report(meta, cells, names, samples):
    """The .md and .svg of results written before the layouts (one placement, rotating order)."""
    summary = report.summarize([s for s in samples if not s.get("network")], cells, names)
    text = report.markdown(meta, cells, names, summary)
    if any(s.get("network") for s in samples):
        ns_cells = [c for c in cells if c.netns and c.mode == "rr"]
        text += "\n" + netnsmod.markdown(meta, ns_cells, names,
                                         report.summarize([s for s in samples if s.get("network")], ns_cells, names))
    return text, svg.chart(meta, cells, names, summary)


def write_results(args, meta, cells, samples, complete):
    foreign = sorted(s["foreign_on_proxy_cpu_percent"] for s in samples
                     if s.get("foreign_on_proxy_cpu_percent") is not None and s.get("layout") == "pinned")
    if foreign:
        meta["foreign_on_proxy_cpu_percent"] = {"median": foreign[len(foreign) // 2], "max": foreign[-1]}
    for key in ("steal_percent", "other_work_percent"):
        values = sorted(s[key] for s in samples if s.get(key) is not None)
        if values:
            meta[key] = {"median": values[len(values) // 2], "max": values[-1]}
    with open("/proc/loadavg") as f:
        meta["loadavg_end"] = f.read().split()[:3]
    used = {s["cell"] for s in samples}
    cells = [c for c in cells if c.name in used]
    analysis = report.analyse(meta, cells, samples)
    text = report.document(meta, cells, analysis)
    names = sorted({s["proxy"] for s in samples}, key=report.proxy_rank)
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d")
    suffix = (f"-{args.tag}" if args.tag else "") + ("-quick" if args.quick else "") + ("" if complete else "-partial")
    os.makedirs(args.out, exist_ok=True)
    base = os.path.join(args.out, stamp + suffix)
    with open(base + ".json", "w") as f:
        json.dump({"meta": meta, "complete": complete, "cells": [vars(c) for c in cells], "proxies": names,
                   "analysis": analysis, "samples": samples}, f, indent=1, default=str)
    with open(base + ".md", "w") as f:
        f.write(text)
    chart = svg.document(meta, cells, analysis)
    with open(base + ".svg", "w") as f:
        f.write(chart)
    latest = complete and not args.quick and not args.tag
    if latest:
        with open(os.path.join(args.out, "latest.svg"), "w") as f:
            f.write(chart)
    print()
    print(text)
    log(f"wrote {base}.json, .md, .svg" + (" and latest.svg" if latest else "") + f" in {meta['elapsed_s']} s")


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        sys.exit(130)
