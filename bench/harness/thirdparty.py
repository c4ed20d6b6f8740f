"""Other people's clients and servers: wrk against an nginx HTTP server (a 1 KiB page), iperf3 client and server.

They are epoll programs from Debian, used the way a new user would: nginx serves a static 1 KiB file with
Debian's stock settings (sendfile on, tcp_nopush on), and wrk and iperf3 run with their usual options. The
backends start beside the ringload ones (on the load CPUs); every proxy gets a listener in front of each.
"""
import json
import os
import re
import shutil
import signal
import subprocess
import threading

from procs import child_pids, free_port, wait_port

PAGE_BYTES = 1024


def available(tool):
    return shutil.which(tool) is not None


def start_http_backend(ctx, log):
    """nginx (http) serving /1k, a 1024-byte file, with one worker per load CPU; (host, port, [pids]) or None."""
    if not available("nginx"):
        log("nginx not installed: the wrk cells are skipped")
        return None
    prefix = os.path.join(ctx.tmpdir, "http-backend")
    os.makedirs(os.path.join(prefix, "www"), exist_ok=True)
    with open(os.path.join(prefix, "www", "1k"), "wb") as f:
        f.write(b"x" * (PAGE_BYTES - 1) + b"\n")
    port = ctx.next_port() if ctx.server_ns else free_port(ctx.backend_host)
    # keepalive_requests high so that a keep-alive cell measures keep-alive (nginx closes after 1000 by default).
    conf = [f"worker_processes {len(ctx.load_cpus)};", f"worker_rlimit_nofile {ctx.nofile};",
            f"pid {prefix}/nginx.pid;", f"error_log {prefix}/error.log warn;",
            f"events {{ worker_connections {ctx.nofile - 100}; multi_accept on; }}",
            "http {", "    access_log off;", "    sendfile on;", f"    tcp_nopush {'on' if getattr(ctx, 'http_nopush', True) else 'off'};", "    keepalive_timeout 65;",
            "    keepalive_requests 1000000;", "    default_type application/octet-stream;",
            f"    server {{ listen {ctx.backend_host}:{port} reuseport backlog=65535; root {prefix}/www; }}", "}"]
    path = os.path.join(prefix, "nginx.conf")
    with open(path, "w") as f:
        f.write("\n".join(conf) + "\n")
    argv = ["nginx", "-p", prefix, "-e", f"{prefix}/error.log", "-c", path, "-g", "daemon off;"]
    proc = ctx.children.start(ctx.server_cmd(argv, ctx.load_cpus))
    if not wait_port(ctx.backend_host, port, timeout=15, proc=proc, netns=ctx.client_ns):
        log(f"the nginx HTTP backend did not start (see {prefix}/error.log): the wrk cells are skipped")
        return None
    return ctx.backend_host, port, lambda: [proc.pid] + child_pids(proc.pid)


def start_iperf_server(ctx, log):
    """iperf3 -s on the load CPUs; (host, port, pids) or None."""
    if not available("iperf3"):
        log("iperf3 not installed: the iperf3 cells are skipped")
        return None
    port = ctx.next_port() if ctx.server_ns else free_port(ctx.backend_host)
    argv = ["iperf3", "-s", "-B", ctx.backend_host, "-p", str(port)]
    proc = ctx.children.start(ctx.server_cmd(argv, ctx.load_cpus))
    if not wait_port(ctx.backend_host, port, timeout=15, proc=proc, netns=ctx.client_ns):
        log("iperf3 -s did not start: the iperf3 cells are skipped")
        return None
    return ctx.backend_host, port, lambda: [proc.pid]


def wrk_argv(host, port, cell, duration, load_threads):
    connections = int(cell.args[cell.args.index("--connections") + 1])
    threads = max(1, min(load_threads, connections))
    argv = ["wrk", "-t", str(threads), "-c", str(connections), "-d", f"{max(1, round(duration))}s", "--latency",
            "--timeout", "5s"]
    if "--close" in cell.args:
        argv += ["-H", "Connection: close"]
    return argv + [f"http://{host}:{port}/1k"]


UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3}


def parse_wrk(text):
    """requests, requests_per_s, latency_ms {p50, p99}, errors (non_2xx among them) from wrk --latency output."""
    out = {"latency_ms": {}}
    m = re.search(r"(\d+) requests in ([\d.]+)(us|ms|s|m)", text)
    if m:
        out["requests"] = int(m[1])
        out["elapsed_s"] = float(m[2]) * UNITS[m[3]] / 1e3
    m = re.search(r"Requests/sec:\s+([\d.]+)", text)
    if m:
        out["requests_per_s"] = float(m[1])
    for pct, value, unit in re.findall(r"^\s+(50|99)%\s+([\d.]+)(us|ms|s|m)\s*$", text, re.M):
        out["latency_ms"][f"p{pct}"] = float(value) * UNITS[unit]
    errors = 0
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text)
    if m:
        errors += sum(int(v) for v in m.groups())
    m = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
    out["non_2xx"] = int(m[1]) if m else 0
    out["errors_total"] = errors + out["non_2xx"]
    return out


def iperf_argv(host, port, cell, duration):
    streams = cell.args[cell.args.index("--streams") + 1]
    return ["iperf3", "-c", host, "-p", str(port), "-t", f"{max(1, round(duration))}", "-P", streams, "-J"]


def parse_iperf(text):
    """bytes, gbit_per_s, the client's own CPU share (iperf3's figure) from iperf3 -J output."""
    try:
        data = json.loads(text)
    except ValueError:
        return {"error": "iperf3 wrote no JSON: " + text.strip()[-200:]}
    if data.get("error"):
        return {"error": "iperf3: " + data["error"]}
    received = data.get("end", {}).get("sum_received", {})
    return {"bytes_received": received.get("bytes"), "elapsed_s": received.get("seconds"),
            "gbit_per_s": (received.get("bits_per_second") or 0) / 1e9,
            "retransmits": data.get("end", {}).get("sum_sent", {}).get("retransmits")}


def run_client(ctx, argv, timeout):
    """Run a load client on the load CPUs; (exit status, output text, its CPU seconds from wait4's rusage)."""
    out_path = os.path.join(ctx.tmpdir, "client.out")
    with open(out_path, "wb") as out:
        proc = ctx.children.start(ctx.client_cmd(argv, ctx.load_cpus), stdout=out, stderr=subprocess.STDOUT)
        status, cpu = wait_with_rusage(ctx, proc, timeout)
    with open(out_path, "rb") as f:
        return status, f.read().decode(errors="replace"), cpu


def wait_with_rusage(ctx, proc, timeout):
    """(exit status or None on timeout, user+system CPU seconds) of a child we started, reaped with wait4."""
    fired = []

    def kill():
        fired.append(True)
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass

    timer = threading.Timer(timeout, kill)
    timer.start()
    try:
        _, status, usage = os.wait4(proc.pid, 0)
    finally:
        timer.cancel()
    proc.returncode = os.waitstatus_to_exitcode(status)
    ctx.children.forget(proc)
    return (None if fired else proc.returncode), usage.ru_utime + usage.ru_stime
