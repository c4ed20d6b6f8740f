#!/usr/bin/env python3
"""The SNI-routed TLS cell (issue 12): new TLS connections per second through each proxy, routed by server
name to three TLS servers, and the proxy's CPU per connection.

Each connection is a full TLS 1.3 handshake (ECDSA P-256, no session resumption) by a Python `ssl` client
with a server name, a request line, the server's answer, and a close. The TLS servers are nginx `stream`
with `ssl` (one per route, certificates made here with `openssl req -x509`). In front, one at a time:
- RingProxy: `routes = [{ sni = [...], pool = ... }]`;
- HAProxy: tcp mode, `tcp-request inspect-delay` + `req.ssl_sni`;
- nginx: `ssl_preread on` + a map of `$ssl_preread_server_name`.
Each proxy runs one worker (thread or process) pinned with the clients' processes beside it, as the rest of
the harness does; the figure is the proxy's own CPU time (user + system from /proc) over the connections it
carried.

Standalone (it shares no code with run.py, to keep the issue-14 rework of the harness free to move):
    make bench-tls, or python3 bench/harness/tls_cell.py --bin .build/release --seconds 10 --clients 4 [--out FILE.md]
"""
import argparse
import multiprocessing
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time

NGINX_STREAM_MODULE = "/usr/lib/nginx/modules/ngx_stream_module.so"
NAMES = ["api.example.com", "www.example.com", "mail.example.com"]


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, seconds=10):
    deadline = time.time() + seconds
    while time.time() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return True
        except OSError:
            time.sleep(0.05)
    return False


def cpu_seconds(pids):
    total = 0
    tick = os.sysconf("SC_CLK_TCK")
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / tick
        except OSError:
            pass
    return total


def children(pid):
    try:
        out = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout
        return [int(p) for p in out.split()]
    except OSError:
        return []


def make_certs(folder):
    for name in NAMES:
        subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
                        "-keyout", f"{folder}/{name}.key", "-out", f"{folder}/{name}.pem", "-days", "1",
                        "-subj", f"/CN={name}", "-addext", f"subjectAltName=DNS:{name}"],
                       check=True, capture_output=True)


def start_tls_servers(folder, cpus):
    """nginx stream with ssl: one server per name, answering "<name>\\n" after the handshake."""
    ports = {name: free_port() for name in NAMES}
    prefix = f"{folder}/backends"
    os.makedirs(prefix, exist_ok=True)
    conf = [f"load_module {NGINX_STREAM_MODULE};", "worker_processes 1;", f"pid {prefix}/nginx.pid;",
            f"error_log {prefix}/error.log warn;", "events { worker_connections 4096; }", "stream {"]
    for name, port in ports.items():
        conf += ["  server {", f"    listen 127.0.0.1:{port} ssl backlog=4096;",
                 f"    ssl_certificate {folder}/{name}.pem;", f"    ssl_certificate_key {folder}/{name}.key;",
                 "    ssl_session_cache off;", "    ssl_session_tickets off;", f'    return "{name}\\n";', "  }"]
    conf.append("}")
    with open(f"{prefix}/nginx.conf", "w") as f:
        f.write("\n".join(conf) + "\n")
    proc = subprocess.Popen(["taskset", "-c", cpus, "nginx", "-p", prefix, "-e", f"{prefix}/error.log",
                             "-c", f"{prefix}/nginx.conf", "-g", "daemon off;"], start_new_session=True)
    for port in ports.values():
        if not wait_port(port):
            raise SystemExit("TLS backends did not start")
    return proc, ports


def ringproxy_conf(folder, port, backends, binary):
    lines = ["threads = 1", "pin = false", 'log_level = "warning"', "max_connections = 20000", ""]
    for name, bport in backends.items():
        pool = name.split(".")[0]
        lines += [f"[pools.{pool}]", f'backends = [{{ host = "127.0.0.1", port = {bport} }}]', ""]
    lines += ["[[listeners]]", 'name = "front"', f'bind = "127.0.0.1:{port}"', "routes = ["]
    lines += [f'  {{ sni = ["{name}"], pool = "{name.split(".")[0]}" }},' for name in backends]
    lines += ["]"]
    path = f"{folder}/ringproxy.toml"
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")
    return [os.path.join(binary, "ringproxy"), "--config", path]


def haproxy_conf(folder, port, backends, _):
    conf = ["global", "    nbthread 1", "    maxconn 4000", "defaults", "    mode tcp", "    timeout connect 5s",
            "    timeout client 30s", "    timeout server 30s", "frontend front", f"    bind 127.0.0.1:{port}",
            "    tcp-request inspect-delay 5s", "    tcp-request content accept if { req.ssl_hello_type 1 }"]
    conf += [f"    use_backend be_{name.split('.')[0]} if {{ req.ssl_sni -i {name} }}" for name in backends]
    for name, bport in backends.items():
        conf += [f"backend be_{name.split('.')[0]}", f"    server s1 127.0.0.1:{bport}"]
    path = f"{folder}/haproxy.cfg"
    with open(path, "w") as f:
        f.write("\n".join(conf) + "\n")
    return ["haproxy", "-db", "-f", path]


def nginx_conf(folder, port, backends, _):
    prefix = f"{folder}/nginx-front"
    os.makedirs(prefix, exist_ok=True)
    conf = [f"load_module {NGINX_STREAM_MODULE};", "worker_processes 1;", f"pid {prefix}/nginx.pid;",
            f"error_log {prefix}/error.log warn;", "events { worker_connections 20000; }", "stream {",
            "  map $ssl_preread_server_name $route {"]
    conf += [f"    {name} 127.0.0.1:{bport};" for name, bport in backends.items()]
    conf += ["  }", "  server {", f"    listen 127.0.0.1:{port} backlog=4096;", "    ssl_preread on;",
             "    proxy_pass $route;", "  }", "}"]
    with open(f"{prefix}/nginx.conf", "w") as f:
        f.write("\n".join(conf) + "\n")
    return ["nginx", "-p", prefix, "-e", f"{prefix}/error.log", "-c", f"{prefix}/nginx.conf", "-g", "daemon off;"]


def client_loop(port, seconds, index, results):
    """Full handshakes in a loop, rotating over the three names; counts and checks each answer."""
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    done = errors = wrong = 0
    deadline = time.time() + seconds
    turn = index
    while time.time() < deadline:
        name = NAMES[turn % 3]
        turn += 1
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:
                with context.wrap_socket(raw, server_hostname=name) as tls:
                    answer = tls.recv(64).decode().strip()
            if answer == name:
                done += 1
            else:
                wrong += 1
        except (OSError, ssl.SSLError):
            errors += 1
    results.put((done, errors, wrong))


def measure(label, argv, port, seconds, clients, proxy_cpus, client_cpus):
    proc = subprocess.Popen(["taskset", "-c", proxy_cpus] + argv, start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        if not wait_port(port):
            raise SystemExit(f"{label} did not start: {proc.stderr.read().decode()[-500:]}")
        time.sleep(0.3)
        pids = [proc.pid] + children(proc.pid)
        results = multiprocessing.Queue()
        before = cpu_seconds(pids)
        started = time.time()
        workers = []
        for index in range(clients):
            worker = multiprocessing.Process(target=client_loop, args=(port, seconds, index, results))
            worker.start()
            os.sched_setaffinity(worker.pid, {int(c) for c in client_cpus.split(",")})
            workers.append(worker)
        totals = [results.get() for _ in workers]
        for worker in workers:
            worker.join()
        elapsed = time.time() - started
        cpu = cpu_seconds(pids) - before
        done = sum(t[0] for t in totals)
        return {"proxy": label, "connections": done, "errors": sum(t[1] for t in totals), "wrong": sum(t[2] for t in totals),
                "conn_per_s": done / elapsed, "cpu_us_per_conn": cpu * 1e6 / max(1, done), "cpu_s": cpu, "seconds": elapsed}
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--bin", default=".build/release")
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--clients", type=int, default=4, help="client processes (closed loop)")
    parser.add_argument("--proxy-cpus", default="1")
    parser.add_argument("--load-cpus", default="0")
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--out", help="write a markdown table here")
    args = parser.parse_args()
    import resource
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    missing = [tool for tool in ("openssl", "nginx", "haproxy", "taskset") if not shutil.which(tool)]
    if missing or not os.path.exists(NGINX_STREAM_MODULE):
        raise SystemExit(f"missing: {missing or NGINX_STREAM_MODULE}")
    folder = tempfile.mkdtemp(prefix="ringproxy-tls-bench-")
    make_certs(folder)
    backends_proc, backends = start_tls_servers(folder, args.load_cpus)
    rows = []
    try:
        for round_index in range(args.rounds):
            for label, make in (("ringproxy", ringproxy_conf), ("haproxy", haproxy_conf), ("nginx", nginx_conf)):
                port = free_port()
                row = measure(label, make(folder, port, backends, args.bin), port, args.seconds, args.clients,
                              args.proxy_cpus, args.load_cpus)
                row["round"] = round_index + 1
                rows.append(row)
                print(f"{label:10} {row['conn_per_s']:8.0f} conn/s  {row['cpu_us_per_conn']:7.1f} CPU-µs/conn  "
                      f"({row['connections']} ok, {row['errors']} errors, {row['wrong']} wrong route)", flush=True)
    finally:
        os.killpg(backends_proc.pid, signal.SIGTERM)
        backends_proc.wait(timeout=5)
        shutil.rmtree(folder, ignore_errors=True)
    if args.out:
        with open(args.out, "w") as f:
            f.write("| round | proxy | new TLS conn/s | proxy CPU-µs/conn | connections | errors | wrong route |\n")
            f.write("|---|---|---|---|---|---|---|\n")
            for r in rows:
                f.write(f"| {r['round']} | {r['proxy']} | {r['conn_per_s']:.0f} | {r['cpu_us_per_conn']:.1f} | "
                        f"{r['connections']} | {r['errors']} | {r['wrong']} |\n")
    return 0 if all(r["wrong"] == 0 for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
