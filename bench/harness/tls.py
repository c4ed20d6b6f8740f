"""The SNI-routed TLS cell (issue 12): new TLS connections per second through each proxy, routed by server name
to three TLS servers, and the proxy's CPU per connection.

Servers: nginx (http) with `listen ... ssl`, one port per name (api, www, mail.example.com), certificates made here
(ECDSA P-256), session cache and tickets off, so every connection is a full TLS 1.3 handshake. Each port answers
200 only for its own name (`server_name`) and 421 to any other Host, so a connection routed to the wrong server
is counted as an error by the client.

Client: wrk, one process per name (wrk sends the URL's host as SNI and Host), `Connection: close`, so each request
is a new connection and a new handshake. The names are not in DNS: a small wrk script resolves every one to the
proxy's address.

In front, one at a time, each told to route by the ClientHello's server name without terminating TLS:
RingProxy `routes = [{ sni = [...], pool = ... }]`, HAProxy `req.ssl_sni` after `tcp-request inspect-delay`,
nginx `ssl_preread` with a map of `$ssl_preread_server_name`. Direct: each name straight to its own server.
"""
import os
import subprocess

import thirdparty
from procs import child_pids, free_port, wait_port

NAMES = ["api.example.com", "www.example.com", "mail.example.com"]
CONNECTIONS_PER_NAME = 8

RESOLVE_SCRIPT = """-- The cell's names are not in DNS: every one resolves to the address under test (wrk still sends the
-- URL's host as SNI and Host).
function wrk.resolve(host, service)
  wrk.addrs = wrk.lookup("{host}", service)
end
"""


def pool_of(name):
    return name.split(".")[0]


def start_tls_backends(ctx, log):
    """nginx with `ssl` on one port per name; ({name: (host, port)}, pids) or None when nginx or openssl is missing."""
    if not (thirdparty.available("nginx") and thirdparty.available("openssl") and thirdparty.available("wrk")):
        log("nginx, openssl or wrk not installed: the TLS cell is skipped")
        return None
    prefix = os.path.join(ctx.tmpdir, "tls-backends")
    os.makedirs(prefix, exist_ok=True)
    routes = {}
    conf = ["worker_processes 1;", f"worker_rlimit_nofile {ctx.nofile};", f"pid {prefix}/nginx.pid;",
            f"error_log {prefix}/error.log warn;", "events { worker_connections 4096; multi_accept on; }",
            "http {", "    access_log off;", "    ssl_session_cache off;", "    ssl_session_tickets off;"]
    for name in NAMES:
        subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                        "-nodes", "-keyout", f"{prefix}/{name}.key", "-out", f"{prefix}/{name}.pem", "-days", "2",
                        "-subj", f"/CN={name}", "-addext", f"subjectAltName=DNS:{name}"],
                       check=True, capture_output=True)
        port = ctx.next_port() if ctx.server_ns else free_port(ctx.backend_host)
        routes[name] = (ctx.backend_host, port)
        certs = [f"ssl_certificate {prefix}/{name}.pem;", f"ssl_certificate_key {prefix}/{name}.key;"]
        conf += [f"    server {{ listen {ctx.backend_host}:{port} ssl default_server backlog=4096; "
                 + " ".join(certs) + " return 421; }",
                 f"    server {{ listen {ctx.backend_host}:{port} ssl; server_name {name}; " + " ".join(certs)
                 + f' location / {{ return 200 "{name}\\n"; }} }}']
    conf.append("}")
    path = os.path.join(prefix, "nginx.conf")
    with open(path, "w") as f:
        f.write("\n".join(conf) + "\n")
    argv = ["nginx", "-p", prefix, "-e", f"{prefix}/error.log", "-c", path, "-g", "daemon off;"]
    proc = ctx.children.start(ctx.server_cmd(argv, ctx.load_cpus))
    for host, port in routes.values():
        if not wait_port(host, port, timeout=15, proc=proc, netns=ctx.client_ns):
            log(f"the nginx TLS backends did not start (see {prefix}/error.log): the TLS cell is skipped")
            return None
    return routes, lambda: [proc.pid] + child_pids(proc.pid)


def ringproxy_listener(frontend, routes):
    """RingProxy: a pool per name and a listener routing by SNI (no default route: an unknown name is closed)."""
    host, port = frontend
    lines = []
    for name, (bhost, bport) in routes.items():
        lines += ["", f"[pools.{pool_of(name)}]", f'backends = [{{ host = "{bhost}", port = {bport} }}]']
    lines += ["", "[[listeners]]", 'name = "tls"', f'bind = "{host}:{port}"', "routes = ["]
    lines += [f'  {{ sni = ["{name}"], pool = "{pool_of(name)}" }},' for name in routes]
    return lines + ["]"]


def haproxy_frontend(binds, routes):
    """HAProxy: wait for the ClientHello (inspect-delay), then a backend per `req.ssl_sni`."""
    conf = ["frontend fe_tls"] + binds + ["    tcp-request inspect-delay 5s",
                                          "    tcp-request content accept if { req.ssl_hello_type 1 }"]
    conf += [f"    use_backend be_tls_{pool_of(name)} if {{ req.ssl_sni -i {name} }}" for name in routes]
    conf.append("")
    for name, (host, port) in routes.items():
        conf += [f"backend be_tls_{pool_of(name)}", f"    server s1 {host}:{port}", ""]
    return conf


def nginx_server(listen, routes):
    """nginx stream: `ssl_preread on` and a map from `$ssl_preread_server_name` to the server."""
    conf = ["    map $ssl_preread_server_name $tls_route {"]
    conf += [f"        {name} {host}:{port};" for name, (host, port) in routes.items()]
    conf += ["    }", "    server {", f"        listen {listen} reuseport backlog=65535;", "        ssl_preread on;",
             "        proxy_pass $tls_route;", "        proxy_timeout 1h;", "    }"]
    return conf


def client_argv(ctx, proxy, duration):
    """One wrk per name, all at once, each writing to its own file; (argv, [output paths])."""
    seconds = max(1, round(duration))
    commands, outputs = [], []
    for name in NAMES:
        host, port = ctx.tls_routes[name] if proxy.name == "direct" else proxy.frontends["tls"]
        script = os.path.join(ctx.tmpdir, f"resolve-{host}.lua")
        if not os.path.exists(script):
            with open(script, "w") as f:
                f.write(RESOLVE_SCRIPT.format(host=host))
        out = os.path.join(ctx.tmpdir, f"wrk-tls-{pool_of(name)}.out")
        outputs.append(out)
        commands.append(f"wrk -t 1 -c {CONNECTIONS_PER_NAME} -d {seconds}s --latency --timeout 5s "
                        f"-H 'Connection: close' -s {script} https://{name}:{port}/ > {out} 2>&1 &")
    return ["sh", "-c", " ".join(commands) + " wait"], outputs


def parse_outputs(paths):
    """The three wrk runs as one: requests and rate summed, errors summed, `wrong_routes` the answers that said a
    name reached another name's server (421s), p50 and p99 the worst of the three."""
    total = {"requests": 0, "requests_per_s": 0.0, "errors_total": 0, "wrong_routes": 0, "latency_ms": {},
             "elapsed_s": 0.0}
    for path in paths:
        try:
            with open(path) as f:
                text = f.read()
        except OSError:
            return {"error": f"{path} missing"}
        one = thirdparty.parse_wrk(text)
        if "requests" not in one:
            return {"error": "wrk: " + text.strip()[-200:]}
        total["requests"] += one["requests"]
        total["requests_per_s"] += one.get("requests_per_s", 0.0)
        total["errors_total"] += one.get("errors_total", 0)
        total["wrong_routes"] += one["non_2xx"]  # each server answers 421 to another name's Host
        total["elapsed_s"] = max(total["elapsed_s"], one.get("elapsed_s", 0.0))
        for key, value in one["latency_ms"].items():
            total["latency_ms"][key] = max(total["latency_ms"].get(key, 0.0), value)
    return total

