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
from procs import Children, cpu_of, raise_fd_limit  # noqa: E402
from run import Context, start_backends  # noqa: E402

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


def measure(proxy, args, ctx):
    """One sample: the units of work done (requests, connections or MB), the proxy's CPU per unit and how it
    splits into buckets, from `perf record` on the proxy while the load runs."""
    data = os.path.join(ctx.tmpdir, f"perf-{proxy.name}.data")
    pids = proxy.cpu_pids()
    recorder = ctx.children.start(["perf", "record", "-q", "-e", "cpu-clock", "-F", "3999", "-o", data, "-p",
                                   ",".join(str(p) for p in pids), "--", "sleep", str(args.seconds + 0.5)])
    user0, sys0 = cpu_of(pids)
    units = run_tls_load(proxy, args, ctx) if args.tls else run_ringload(proxy, args, ctx)
    user1, sys1 = cpu_of(pids)
    recorder.wait(timeout=60)
    shares, other = profile(data)
    cpu_us = ((user1 - user0) + (sys1 - sys0)) * 1e6 / units
    return {"proxy": proxy.name, "units": units, "cpu_us_per_request": cpu_us,
            "buckets_us": {b: cpu_us * s for b, s in shares.items()}, "other_symbols": other}


def run_ringload(proxy, args, ctx):
    """ringload rr at the fixed rate, or one stream up to the sink; requests, or MB moved (so that CPU-µs per
    unit reads as CPU-ms per GB)."""
    host, port = proxy.frontends["sink" if args.stream else "echo"]
    load_json = os.path.join(ctx.tmpdir, "load.json")
    load = ["stream", "--connections", "1", "--direction", "up"] if args.stream else \
        ["rr", "--connections", str(args.connections), "--size", "64", "--rate", str(args.rate)]
    subprocess.run(ctx.client_cmd([ctx.ringload.path] + load + ["--target", f"{host}:{port}", "--duration",
                                                                 str(args.seconds), "--json", load_json, "--quiet"],
                                  ctx.load_cpus), check=True, stdout=subprocess.DEVNULL)
    with open(load_json) as f:
        result = json.load(f)
    if args.stream:
        return ((result.get("bytes_sent") or 0) + (result.get("bytes_received") or 0)) / 1e6
    return result["requests"]


def run_tls_load(proxy, args, ctx):
    """make bench's TLS cell (one wrk per name); the connections made, each through the right route."""
    argv, outputs = tls.client_argv(ctx, proxy, args.seconds)
    subprocess.run(ctx.client_cmd(argv, ctx.load_cpus), check=True)
    load = tls.parse_outputs(outputs)
    if load.get("error") or load["wrong_routes"]:
        raise SystemExit(f"{proxy.name}: {load.get('error') or str(load['wrong_routes']) + ' wrong routes'}")
    return load["requests"]


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
    cpus = sorted(os.sched_getaffinity(0))
    proxy_cpus, load_cpus = (cpus, cpus) if args.unpinned else ([1], [0])
    ctx = Context(os.path.abspath(args.bin), tmp, children, proxy_cpus, load_cpus)
    # make bench's backends: ringload's echo and sink servers, and with --tls its nginx TLS servers (which come
    # with the other third-party servers, idle here).
    ctx.third_party = ctx.wants_tls = args.tls
    try:
        backends = start_backends(ctx)
        if args.tls and "tls" not in backends:
            raise SystemExit("the TLS cell needs nginx, openssl and wrk")
        proxies = [proxymod.RingProxy(), proxymod.HAProxy()]
        for proxy in proxies:
            if not proxy.start(ctx, backends):
                raise SystemExit(f"{proxy.name}: {proxy.error}")
        samples = []
        for round_index in range(args.rounds):
            for proxy in (proxies if round_index % 2 == 0 else list(reversed(proxies))):
                sample = measure(proxy, args, ctx)
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
