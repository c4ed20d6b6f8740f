"""The proxies under test: RingProxy (and opt-in variants), HAProxy, nginx stream, and "direct".

Each proxy gets `ctx.threads` workers (threads; nginx: worker processes), is started pinned to the proxy
CPUs (taskset), and forwards one listener
per backend (echo, sink). `start` returns the frontend address of each backend; `cpu_pids` are the processes
whose CPU time is charged to it, `rss_pids` those whose memory is reported (nginx: the worker).
"""
import copy
import os
import shutil
import subprocess
import time

import tls
from procs import child_pids, format_cpu_list, free_port, wait_port

NGINX_STREAM_MODULE = "/usr/lib/nginx/modules/ngx_stream_module.so"


class Proxy:
    """A proxy process (or none, for direct) in front of the backends."""

    name = "?"
    binary = None

    def __init__(self):
        self.proc = None
        self.error = None
        self.frontends = {}
        self.wrap = None  # argv -> argv: how to start it (inside a memory cgroup, say)

    def available(self):
        """None when this proxy can run here, else why not."""
        if self.binary and not shutil.which(self.binary):
            return f"{self.binary} not installed"
        return None

    def version(self):
        return None

    def argv(self, ctx, backends):
        raise NotImplementedError

    def start(self, ctx, backends):
        """Start the proxy in front of backends {name: (host, port)}; True when every listener is up."""
        why = self.available()
        if why:
            self.error = why
            return False
        self.frontends = {name: (ctx.listen_host, free_port_for(ctx)) for name in backends}
        argv = self.argv(ctx, backends)
        if self.wrap:
            argv = self.wrap(argv)
        log = open(os.path.join(ctx.tmpdir, f"{self.name}.log"), "wb")
        self.proc = ctx.children.start(ctx.server_cmd(argv, ctx.proxy_cpus), stdout=log, stderr=subprocess.STDOUT)
        for host, port in self.frontends.values():
            if not wait_port(host, port, timeout=15, proc=self.proc, netns=ctx.client_ns):
                status = self.proc.poll()
                self.error = (f"{self.name} did not open {host}:{port}"
                              + (f" (exited with status {status})" if status is not None else "") + ": " + tail(log.name))
                return False
        return self.settle()

    def settle(self):
        return True

    def fresh(self):
        """A new, not yet started instance with the same settings (for measurements that need a clean process)."""
        other = copy.copy(self)
        other.proc, other.error, other.frontends = None, None, {}
        return other

    def cpu_pids(self):
        return [self.proc.pid] if self.proc else []

    def rss_pids(self):
        return self.cpu_pids()

    def alive(self):
        return self.proc is not None and self.proc.poll() is None


class Direct(Proxy):
    """No proxy: the load goes straight to the backend."""

    name = "direct"

    def start(self, ctx, backends):
        self.frontends = dict(backends)
        return True

    def cpu_pids(self):
        return []

    def alive(self):
        return True


class RingProxy(Proxy):
    """RingProxy with `ctx.threads` worker threads, left unpinned inside the taskset unless `extra` pins them
    (`cpus`); `extra` adds configuration keys (sqpoll, zerocopy, cpus)."""

    def __init__(self, name="ringproxy", extra=None, binary_path=None):
        super().__init__()
        self.name = name
        self.extra = extra or {}
        self.binary_path = binary_path  # another build of ringproxy (a lever under test), else --bin's

    def available(self):
        return None

    def version(self):
        return "this tree"

    def argv(self, ctx, backends):
        extra = {key: (value(ctx) if callable(value) else value) for key, value in self.extra.items()}
        lines = [f"threads = {ctx.threads}", 'log_level = "warning"', f"max_connections = {ctx.nofile}"]
        lines += [] if "cpus" in extra else ["pin = false"]
        lines += [f"{key} = {value}" for key, value in extra.items()]
        for name, (host, port) in backends.items():
            fhost, fport = self.frontends[name]
            if name == "tls":
                lines += tls.ringproxy_listener((fhost, fport), ctx.tls_routes)
                continue
            lines += ["", "[[listeners]]", f'name = "{name}"', f'bind = "{fhost}:{fport}"',
                      "[[listeners.backends]]", f'host = "{host}"', f"port = {port}"]
        path = os.path.join(ctx.tmpdir, f"{self.name}.toml")
        with open(path, "w") as f:
            f.write("\n".join(lines) + "\n")
        return [self.binary_path or os.path.join(ctx.bin, "ringproxy"), "--config", path]


class HAProxy(Proxy):
    """HAProxy in TCP mode, nbthread `ctx.threads`, in the foreground (-db), set up as its documentation
    advises: `option splice-auto` (kernel splicing once a transfer looks like bulk); with more than one thread
    the multi-core recipe, `cpu-map` (thread N on the proxy CPUs' Nth) and one bind per thread (each its own
    SO_REUSEPORT socket, as with RingProxy's and nginx's per-worker listeners)."""

    name = "haproxy"
    binary = "haproxy"

    def version(self):
        return first_line(["haproxy", "-v"])

    def argv(self, ctx, backends):
        # HAProxy wants its descriptors up front: 2 per connection, and with splicing a pipe (2 more) for up to a
        # quarter of them.
        maxconn = max(1000, (ctx.nofile - 300) // 3)
        conf = ["global", f"    nbthread {ctx.threads}", f"    maxconn {maxconn}"]
        if ctx.threads > 1:
            cpus = ctx.proxy_cpus
            conf.append(f"    cpu-map auto:1/1-{ctx.threads} {format_cpu_list(cpus)}" if len(cpus) >= ctx.threads
                        else f"    cpu-map 1/all {format_cpu_list(cpus)}")
        conf += ["", "defaults", "    mode tcp", "    option splice-auto", f"    maxconn {maxconn}",
                 "    timeout connect 5s", "    timeout client 1h", "    timeout server 1h", ""]
        for name, (host, port) in backends.items():
            fhost, fport = self.frontends[name]
            binds = [f"    bind {fhost}:{fport}"] if ctx.threads == 1 else \
                [f"    bind {fhost}:{fport} thread {t}" for t in range(1, ctx.threads + 1)]
            if name == "tls":
                conf += tls.haproxy_frontend(binds, ctx.tls_routes)
                continue
            conf += [f"frontend fe_{name}"] + binds + [f"    default_backend be_{name}", "",
                                                       f"backend be_{name}", f"    server s1 {host}:{port}", ""]
        path = os.path.join(ctx.tmpdir, "haproxy.cfg")
        with open(path, "w") as f:
            f.write("\n".join(conf))
        return ["haproxy", "-db", "-f", path]


class Nginx(Proxy):
    """nginx's stream module, `ctx.threads` worker processes, run by us in the foreground (never the system
    service), with `multi_accept on` and a `reuseport` listener per worker, as its documentation advises."""

    name = "nginx"
    binary = "nginx"

    def available(self):
        if not shutil.which("nginx"):
            return "nginx not installed"
        if not os.path.exists(NGINX_STREAM_MODULE):
            return f"{NGINX_STREAM_MODULE} missing (libnginx-mod-stream)"
        return None

    def version(self):
        return first_line(["nginx", "-v"])

    def argv(self, ctx, backends):
        prefix = os.path.join(ctx.tmpdir, "nginx")
        os.makedirs(prefix, exist_ok=True)
        conf = [f"load_module {NGINX_STREAM_MODULE};", f"worker_processes {ctx.threads};",
                f"worker_rlimit_nofile {ctx.nofile};",
                f"pid {prefix}/nginx.pid;", f"error_log {prefix}/error.log warn;",
                f"events {{ worker_connections {ctx.nofile - 100}; multi_accept on; }}", "stream {"]
        for name, (host, port) in backends.items():
            fhost, fport = self.frontends[name]
            if name == "tls":
                conf += tls.nginx_server(f"{fhost}:{fport}", ctx.tls_routes)
                continue
            conf += ["    server {", f"        listen {fhost}:{fport} reuseport backlog=65535;", f"        proxy_pass {host}:{port};",
                     "        proxy_timeout 1h;", "    }"]
        conf.append("}")
        path = os.path.join(prefix, "nginx.conf")
        with open(path, "w") as f:
            f.write("\n".join(conf) + "\n")
        return ["nginx", "-p", prefix, "-e", f"{prefix}/error.log", "-c", path, "-g", "daemon off;"]

    def settle(self):
        for _ in range(100):
            if self.workers():
                return True
            time.sleep(0.05)
        self.error = "nginx started no worker"
        return False

    def workers(self):
        return child_pids(self.proc.pid) if self.proc else []

    def cpu_pids(self):
        return ([self.proc.pid] if self.proc else []) + self.workers()

    def rss_pids(self):
        return self.workers()


def free_port_for(ctx):
    return free_port(ctx.listen_host) if not ctx.server_ns else ctx.next_port()


def tail(path, n=400):
    try:
        with open(path, "rb") as f:
            return f.read()[-n:].decode(errors="replace").strip()
    except OSError:
        return ""


def first_line(argv):
    try:
        out = subprocess.run(argv, capture_output=True, text=True, timeout=10)
        text = (out.stdout + out.stderr).strip()
        return text.splitlines()[0] if text else None
    except (OSError, subprocess.TimeoutExpired):
        return None


VARIANTS = {
    "sqpoll": lambda: RingProxy("ringproxy-sqpoll", {"sqpoll": "true"}),
    "zerocopy": lambda: RingProxy("ringproxy-zerocopy", {"zerocopy": '"on"'}),
    # Workers pinned to the proxy CPUs in turn (`--cpus`), beside the default (unpinned) one.
    "pinned": lambda: RingProxy("ringproxy-pinned", {"cpus": lambda ctx: f'"{format_cpu_list(ctx.proxy_cpus)}"'}),
}


def build(names, variants, builds=()):
    """Proxy objects for names (ringproxy, haproxy, nginx, direct) plus RingProxy variants (configuration) and
    builds ("NAME=PATH": another ringproxy binary, run as ringproxy-NAME)."""
    makers = {"ringproxy": RingProxy, "haproxy": HAProxy, "nginx": Nginx, "direct": Direct}
    out = [makers[n]() for n in names]
    out += [VARIANTS[v]() for v in variants]
    for spec in builds:
        name, path = spec.split("=", 1)
        out.append(RingProxy(f"ringproxy-{name}", binary_path=os.path.abspath(path)))
    return out


def ensure_packages(log=print):
    """apt-get install haproxy, nginx and its stream module, wrk and iperf3 when missing (root or sudo).

    Debian starts nginx as a service on install where the init policy lets it; that instance is stopped
    again (the harness runs its own nginx from a temporary folder)."""
    want = []
    if not shutil.which("haproxy"):
        want.append("haproxy")
    if not shutil.which("nginx"):
        want.append("nginx")
    if not os.path.exists(NGINX_STREAM_MODULE):
        want.append("libnginx-mod-stream")
    want += [tool for tool in ("wrk", "iperf3") if not shutil.which(tool)]
    if not want:
        return
    if not shutil.which("apt-get"):
        log(f"cannot install {' '.join(want)}: no apt-get; those proxies are skipped")
        return
    sudo = [] if os.geteuid() == 0 else ["sudo", "-n"]
    log(f"installing {' '.join(want)} with apt-get")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    had_nginx_pid = os.path.exists("/run/nginx.pid")
    try:
        subprocess.run(sudo + ["apt-get", "update", "-qq"], env=env, timeout=300, check=False)
        subprocess.run(sudo + ["apt-get", "install", "-y", "-qq"] + want, env=env, timeout=600, check=False)
    except (OSError, subprocess.TimeoutExpired) as e:
        log(f"apt-get failed: {e}")
    if "nginx" in want and not had_nginx_pid and os.path.exists("/run/nginx.pid"):
        # The package started the system service: stop it, and keep it from starting at boot.
        for argv in (["systemctl", "disable", "--now", "nginx"], ["service", "nginx", "stop"]):
            if shutil.which(argv[0]):
                subprocess.run(sudo + argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=60)
