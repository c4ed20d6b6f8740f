#!/usr/bin/env python3
"""Where a proxy's CPU per request goes, by kernel subsystem, RingProxy beside HAProxy (issue 14: the profile
behind a missed target, and its ceiling).

    python3 bench/harness/ceiling.py [--bin DIR] [--rounds 3] [--seconds 4] [--connections 100] [--rate 10000]
                                     [--stream]   (one bulk stream up to a sink instead: CPU-ms per GB)
                                     [--tls]      (make bench's SNI-routed TLS cell instead: CPU-µs per connection)
                                     [--unpinned] (proxy, load and servers on every CPU, as the unpinned layout)

Each proxy forwards to ringload's echo server, one worker on CPU 1 (load and backend on CPU 0), under the same
open-loop load (ringload rr 64 B at a fixed rate, so every proxy does the same work), with `perf record -e
cpu-clock` on the proxy's process. The samples are split by symbol into buckets: user space; the TCP/IP stack and
loopback (including the receive path of the peer's socket, which loopback runs in the sender's context); copies
between user memory and socket buffers; the proxy's mechanism: io_uring for RingProxy, epoll for HAProxy, and
system call entry/exit and descriptor lookups; the scheduler. Each bucket is reported in CPU-µs per request
(the proxy's measured CPU per request × the bucket's share of its samples), median over interleaved rounds.

The ceiling: the TCP/IP and copy buckets are the work of moving the same bytes through the same sockets, which
neither proxy can avoid; RingProxy's ratio if everything else it spends went to zero is its TCP/IP + copy over
HAProxy's total.
"""
import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import proxies as proxymod  # noqa: E402
import tls  # noqa: E402
from procs import Children, cpu_of, free_port, raise_fd_limit, wait_line  # noqa: E402

BUCKETS = [  # (name, pattern on the symbol), first match wins; user-space symbols are their own bucket
    ("io_uring", r"^(__)?io_|io_uring|^tctx_|^task_work|^llist_"),
    ("epoll", r"^(__)?ep_|epoll"),
    ("syscall entry/exit, fd lookup", r"entry_SYSCALL|syscall|^__x64_sys|^(__)?sys_|exit_to_user|^(__)?fget|^(__)?fput|fdget"
                                      r"|^__fdget|^do_syscall|restore_regs|^error_entry|^irqentry"),
    ("scheduler, wake-ups", r"schedule|switch_to|finish_task|wake|pick_next|enqueue|dequeue|update_curr|update_load"
                            r"|psi_|cpuacct|select_task|ttwu|^__?perf|hrtimer|tick_|native_sched_clock"),
    ("copy user <-> socket, splice", r"copy_(to|from)_user|_copy_(to|from)_iter|copy_user|^rep_movs|memcpy|memmove"
                             r"|skb_copy_datagram|simple_copy|csum_partial|check_object_size|virt_addr_valid"
                             r"|splice|pipe_|page_cache_pipe|^(__)?(get|put)_page|folio"),
    ("TCP/IP + loopback", r"tcp|^(__)?ip_|inet|^(__)?sk_|sock|skb|^(__)?dev_|netif|net_rx|napi|loopback|softirq"
                          r"|bh_|kmem_cache|kfree|kmalloc|__slab|slab_|page_frag|^(__)?alloc_pages|memcg|mod_memcg"
                          r"|release_sock|lock_sock|security_|apparmor|selinux|bpf_|nf_|refill_obj|obj_cgroup"
                          r"|rb_|timer|^__?mod_timer|dst_|neigh|validate_xmit|fib_|raw_|^__?x86_indirect_thunk|bbr_|cubic"),
]


def bucket_of(symbol, user):
    if user:
        return "user space"
    for name, pattern in BUCKETS:
        if re.search(pattern, symbol):
            return name
    return "other kernel"


def profile(perf_data):
    """{bucket: share of samples} and the top kernel symbols of 'other kernel', from `perf report`."""
    out = subprocess.run(["perf", "report", "-i", perf_data, "--no-children", "--sort", "sym", "-q", "--stdio",
                          "-g", "none"], capture_output=True, text=True).stdout
    shares, other = {}, []
    for line in out.splitlines():
        m = re.match(r"\s*([\d.]+)%\s+\[(.)\]\s+(\S+)", line)
        if not m:
            continue
        share, kind, symbol = float(m[1]) / 100, m[2], m[3]
        bucket = bucket_of(symbol, kind != "k")
        shares[bucket] = shares.get(bucket, 0.0) + share
        if bucket == "other kernel":
            other.append((share, symbol))
    return shares, sorted(other, reverse=True)[:8]


def measure(proxy, ringload, args, tmp, children, ctx):
    """One sample: requests, the proxy's CPU per request and its bucket shares."""
    if args.tls:
        return measure_tls(proxy, args, tmp, children, ctx)
    host, port = proxy.frontends["sink" if args.stream else "echo"]
    data = os.path.join(tmp, f"perf-{proxy.name}.data")
    load_json = os.path.join(tmp, "load.json")
    pids = proxy.cpu_pids()
    recorder = children.start(["perf", "record", "-q", "-e", "cpu-clock", "-F", "3999", "-o", data,
                               "-p", ",".join(str(p) for p in pids), "--", "sleep", str(args.seconds + 0.5)])
    user0, sys0 = cpu_of(pids)
    load = ["--connections", "1", "--direction", "up"] if args.stream else \
        ["--connections", str(args.connections), "--size", "64", "--rate", str(args.rate)]
    subprocess.run(["taskset", "-c", ",".join(str(c) for c in ctx.load_cpus), ringload, "stream" if args.stream else "rr", "--target", f"{host}:{port}"]
                   + load + ["--duration", str(args.seconds), "--json", load_json, "--quiet"],
                   check=True, stdout=subprocess.DEVNULL)
    user1, sys1 = cpu_of(pids)
    recorder.wait(timeout=60)
    with open(load_json) as f:
        result = json.load(f)
    # Units of work: requests, or GB moved (CPU-µs per request, or CPU-ms per GB: both "cpu_us_per_request" here).
    requests = result["requests"] if not args.stream else \
        ((result.get("bytes_sent") or 0) + (result.get("bytes_received") or 0)) / 1e9 * 1e3
    shares, other = profile(data)
    cpu_us = ((user1 - user0) + (sys1 - sys0)) * 1e6 / requests
    return {"proxy": proxy.name, "requests": requests, "cpu_us_per_request": cpu_us,
            "buckets_us": {b: cpu_us * s for b, s in shares.items()}, "other_symbols": other}


def measure_tls(proxy, args, tmp, children, ctx):
    """One sample of the TLS cell: new connections (one wrk per name), the proxy's CPU per connection, buckets."""
    data = os.path.join(tmp, f"perf-{proxy.name}.data")
    pids = proxy.cpu_pids()
    recorder = children.start(["perf", "record", "-q", "-e", "cpu-clock", "-F", "3999", "-o", data,
                               "-p", ",".join(str(p) for p in pids), "--", "sleep", str(args.seconds + 0.5)])
    user0, sys0 = cpu_of(pids)
    argv, outputs = tls.client_argv(ctx, proxy, args.seconds)
    subprocess.run(ctx.server_cmd(argv, ctx.load_cpus), check=True)
    user1, sys1 = cpu_of(pids)
    recorder.wait(timeout=60)
    load = tls.parse_outputs(outputs)
    if load.get("error") or tls.wrong_routes(outputs):
        raise SystemExit(f"{proxy.name}: {load.get('error') or 'wrong routes'}")
    shares, other = profile(data)
    cpu_us = ((user1 - user0) + (sys1 - sys0)) * 1e6 / load["requests"]
    return {"proxy": proxy.name, "requests": load["requests"], "cpu_us_per_request": cpu_us,
            "buckets_us": {b: cpu_us * s for b, s in shares.items()}, "other_symbols": other}


class Ctx:
    """The little of run.py's Context that proxies.py needs."""

    def __init__(self, bin_dir, tmp, children):
        self.bin, self.tmpdir, self.children = bin_dir, tmp, children
        self.proxy_cpus, self.load_cpus, self.threads = [1], [0], 1
        self.nofile, self.listen_host, self.server_ns, self.client_ns = 20000, "127.0.0.1", None, None
        self.tls_routes = {}
        self.backend_host = "127.0.0.1"
        self._port = 30000

    def next_port(self):
        self._port += 1
        return self._port

    def server_cmd(self, argv, cpus):
        return ["taskset", "-c", ",".join(str(c) for c in cpus)] + argv


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bin", default=".build/release")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=4)
    parser.add_argument("--connections", type=int, default=100)
    parser.add_argument("--rate", type=int, default=10000)
    parser.add_argument("--stream", action="store_true", help="one bulk stream up to a sink (per GB) instead of rr")
    parser.add_argument("--tls", action="store_true", help="the SNI-routed TLS cell (per connection) instead of rr")
    parser.add_argument("--unpinned", action="store_true", help="everything on every CPU (the unpinned layout)")
    parser.add_argument("--out", help="also write the table (markdown) here")
    parser.add_argument("--verbose", action="store_true", help="print the top symbols of 'other kernel'")
    args = parser.parse_args()
    if not shutil.which("perf"):
        raise SystemExit("perf is missing: apt-get install linux-perf")
    raise_fd_limit(200000)
    children = Children()
    tmp = tempfile.mkdtemp(prefix="ringproxy-ceiling-")
    ctx = Ctx(os.path.abspath(args.bin), tmp, children)
    if args.unpinned:
        ctx.proxy_cpus = ctx.load_cpus = sorted(os.sched_getaffinity(0))
    ringload = os.path.join(ctx.bin, "ringload")
    try:
        backends = {}
        for name, mode in (("echo", "echo-server"), ("sink", "sink-server")):
            port = free_port()
            server = children.start(ctx.server_cmd([ringload, mode, "--listen", f"127.0.0.1:{port}"], ctx.load_cpus),
                                    stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
            if not wait_line(server, "listening on", timeout=15):
                raise SystemExit(f"{mode} did not start")
            backends[name] = ("127.0.0.1", port)
        if args.tls:
            started = tls.start_tls_backends(ctx, print)
            if not started:
                raise SystemExit("the TLS cell needs nginx, openssl and wrk")
            ctx.tls_routes = started[0]
            backends["tls"] = next(iter(ctx.tls_routes.values()))
        proxies = [proxymod.RingProxy(), proxymod.HAProxy()]
        for proxy in proxies:
            if not proxy.start(ctx, backends):
                raise SystemExit(f"{proxy.name}: {proxy.error}")
        samples = []
        for round_index in range(args.rounds):
            for proxy in (proxies if round_index % 2 == 0 else list(reversed(proxies))):
                sample = measure(proxy, ringload, args, tmp, children, ctx)
                samples.append(sample)
                print(f"  other kernel: {sample['other_symbols'][:6]}") if args.verbose else None
                print(f"[round {round_index + 1}] {proxy.name:<10} {sample['cpu_us_per_request']:.2f} per unit  "
                      + "  ".join(f"{b} {v:.2f}" for b, v in sorted(sample["buckets_us"].items())), flush=True)
    finally:
        children.stop_all()
        shutil.rmtree(tmp, ignore_errors=True)
    table = report(samples, args)
    print(table)
    if args.out:
        with open(args.out, "w") as f:
            f.write(table + "\n")


def report(samples, args):
    names = ["ringproxy", "haproxy"]
    med = lambda name, f: statistics.median(f(s) for s in samples if s["proxy"] == name)
    buckets = sorted({b for s in samples for b in s["buckets_us"]},
                     key=lambda b: -med("haproxy", lambda s: s["buckets_us"].get(b, 0.0)))
    unit = "CPU-ms per GB" if args.stream else "CPU-µs per connection" if args.tls else "CPU-µs per request"
    load = "one stream up to a sink, closed loop" if args.stream else \
        "new TLS connections routed by SNI (make bench's tls-sni cell)" if args.tls else \
        f"rr 64 B, {args.connections} connections, open loop at {args.rate} req/s"
    load += ", everything on every CPU" if args.unpinned else ", one worker on CPU 1"
    lines = [f"{load}, {args.rounds} interleaved rounds of {args.seconds:g} s; {unit}, median", "",
             "| bucket | RingProxy | HAProxy |", "|---|---:|---:|"]
    for b in buckets:
        lines.append(f"| {b} | " + " | ".join(f"{med(n, lambda s: s['buckets_us'].get(b, 0.0)):.2f}" for n in names) + " |")
    totals = {n: med(n, lambda s: s["cpu_us_per_request"]) for n in names}
    lines.append("| **total** | " + " | ".join(f"**{totals[n]:.2f}**" for n in names) + " |")
    floor = med("ringproxy", lambda s: s["buckets_us"].get("TCP/IP + loopback", 0.0)
                + s["buckets_us"].get("copy user <-> socket, splice", 0.0))
    lines += ["", f"RingProxy ÷ HAProxy, {unit}: {totals['ringproxy'] / totals['haproxy']:.2f}×. "
              f"Ceiling (RingProxy's TCP/IP + copy alone, everything else at zero): "
              f"{floor / totals['haproxy']:.2f}× HAProxy's total."]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
