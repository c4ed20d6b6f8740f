"""--netns: the rr cells again, across two network namespaces joined by a veth pair.

Loopback copies and has no NIC queues; a veth pair at least puts a device and its softirq path between the
load (client namespace, 10.77.0.1) and the proxies and backends (server namespace, 10.77.0.2). The
namespaces and the pair are made here and removed at the end.
"""
import atexit
import os
import subprocess

import proxies as proxymod
import report

CLIENT_IP, SERVER_IP = "10.77.0.1", "10.77.0.2"


def ip(*argv, check=True):
    return subprocess.run(["ip"] + list(argv), check=check, capture_output=True, text=True, timeout=30)


def create(tag):
    """Make the two namespaces and the veth pair; (client_ns, server_ns)."""
    client, server = f"rpb-cli-{tag}", f"rpb-srv-{tag}"
    veth_c, veth_s = f"rpbc{tag}"[:15], f"rpbs{tag}"[:15]
    for ns in (client, server):
        ip("netns", "add", ns)
    atexit.register(destroy, client, server)
    ip("link", "add", veth_c, "type", "veth", "peer", "name", veth_s)
    ip("link", "set", veth_c, "netns", client)
    ip("link", "set", veth_s, "netns", server)
    for ns, dev, addr in ((client, veth_c, CLIENT_IP), (server, veth_s, SERVER_IP)):
        ip("-n", ns, "addr", "add", f"{addr}/24", "dev", dev)
        ip("-n", ns, "link", "set", dev, "up")
        ip("-n", ns, "link", "set", "lo", "up")
    return client, server


def destroy(*namespaces):
    for ns in namespaces:
        ip("netns", "del", ns, check=False)  # removes the veth end inside it, and so the pair


def run(ctx, args, cells, log, start_backends, start_proxies, run_rounds, warm_up, meta, samples):
    """The rr cells for every proxy with the load in one namespace and proxies + backends in the other."""
    if os.geteuid() != 0:
        log("--netns needs root (ip netns add); skipped")
        meta["notes"].append("--netns skipped: not root")
        return []
    try:
        client, server = create(str(os.getpid() % 100000))
    except (subprocess.CalledProcessError, OSError) as e:
        log(f"--netns: cannot create namespaces: {getattr(e, 'stderr', e)}")
        meta["notes"].append("--netns skipped: cannot create namespaces")
        return []
    ctx.client_ns, ctx.server_ns = client, server
    ctx.third_party = False  # the rr cells only
    ctx.listen_host = ctx.backend_host = SERVER_IP
    ctx.backend_pids = {}
    meta["netns"] = f"client namespace {client} ({CLIENT_IP}) — veth — server namespace {server} ({SERVER_IP})"
    log(f"--netns: {meta['netns']}")
    meta.setdefault("layouts", []).append({"name": "netns", "title": "across a veth pair: " + meta["netns"],
                                           "threads": ctx.threads, "proxy_cpus": ctx.proxy_cpus,
                                           "load_cpus": ctx.load_cpus, "cells": [c.name for c in cells]})
    proxies = proxymod.build([p for p in args.proxies.split(",") if p],
                             [v for v in args.variants.split(",") if v])
    try:
        backends = start_backends(ctx)
        start_proxies(ctx, proxies, backends)
        warm_up(ctx, proxies, args.warmup)
        return run_rounds(ctx, proxies, cells, args.rounds, args.duration, tag="netns", samples=samples)
    finally:
        ctx.children.stop_all()
        destroy(client, server)


def markdown(meta, cells, proxies, summary):
    """The rr rows of the namespace run."""
    lines = ["## Across a veth pair (two network namespaces)", "", f"{meta.get('netns', '')}", "",
             "| cell | proxy | rate | vs HAProxy (rate; open loop: CPU-µs/req) | proxy CPU % | CPU-µs/req | p50 ms | p99 ms |",
             "|---|---|---:|---:|---:|---:|---:|---:|"]
    for cell in cells:
        for proxy in proxies:
            e = summary[cell.name][proxy]
            if not e["ok"]:
                lines.append(f"| {cell.title} | {proxy} | failed: {report.short(e['errors'])} | | | | | |")
                continue
            key = "cpu_us_per_request" if cell.metric == "cpu_us_per_request" else "requests_per_s"
            lines.append(f"| {cell.title} | {proxy} | {report.med(e, 'requests_per_s', spread=True)} req/s "
                         f"| {report.ratio(e, summary[cell.name].get('haproxy'), key)} | {report.med(e, 'cpu_percent', 0)} "
                         f"| {report.med(e, 'cpu_us_per_request', 2) if proxy != 'direct' else '–'} "
                         f"| {report.med(e, 'p50_ms', 3)} | {report.med(e, 'p99_ms', 3)} |")
    return "\n".join(lines) + "\n"
