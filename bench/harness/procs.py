"""Child processes, ports and /proc readings for the benchmark harness.

Every process the harness starts goes through `Children.start`, which records it; `Children.stop_all`
(registered with atexit and called on SIGINT/SIGTERM) ends each of them, by its own process group.
"""
import os
import resource
import signal
import socket
import subprocess
import threading
import time

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


class Children:
    """The processes this harness started, each in its own session so that Ctrl-C reaches only us."""

    def __init__(self):
        self.procs = []
        self.lock = threading.Lock()

    def start(self, argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, **kw):
        """Start argv (a new session and process group of its own) and track it."""
        proc = subprocess.Popen(argv, stdout=stdout, stderr=stderr, stdin=subprocess.DEVNULL,
                                start_new_session=True, **kw)
        with self.lock:
            self.procs.append(proc)
        return proc

    def stop(self, proc, grace=3.0):
        """SIGTERM proc's group (it leads it), then SIGKILL after `grace` seconds."""
        if proc.poll() is None:
            _signal_group(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                _signal_group(proc.pid, signal.SIGKILL)
                try:
                    proc.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    pass
        else:
            # The leader is gone; children it left in its group (nginx workers) still get the signal.
            _signal_group(proc.pid, signal.SIGKILL)
        with self.lock:
            if proc in self.procs:
                self.procs.remove(proc)

    def forget(self, proc):
        """Stop tracking a child that has been reaped elsewhere (wait4)."""
        with self.lock:
            if proc in self.procs:
                self.procs.remove(proc)

    def stop_all(self):
        """End every tracked process (most recent first)."""
        with self.lock:
            procs = list(reversed(self.procs))
        for proc in procs:
            self.stop(proc, grace=2.0)


def _signal_group(pgid, sig):
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def raise_fd_limit(want=200000):
    """Raise RLIMIT_NOFILE (inherited by every child) to `want`, or as far as allowed."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    for limit in ((want, max(hard, want)), (min(want, hard), hard)):
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, limit)
            break
        except (ValueError, OSError):
            continue
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def free_port(host="127.0.0.1"):
    """A TCP port the kernel just handed out on host (free at the time of asking)."""
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def wait_port(host, port, timeout=10.0, proc=None, netns=None):
    """True once host:port accepts a connection; False on timeout or when proc exits first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            return False
        if netns:
            ok = subprocess.run(["ip", "netns", "exec", netns, "python3", "-c",
                                 f"import socket; socket.create_connection(('{host}', {port}), 0.5).close()"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=5).returncode == 0
            if ok:
                return True
        else:
            try:
                socket.create_connection((host, port), timeout=0.5).close()
                return True
            except OSError:
                pass
        time.sleep(0.05)
    return False


def wait_line(proc, needle, timeout):
    """Read proc.stdout lines until one contains needle; returns that line, or None (timeout/exit)."""
    found = []

    def reader():
        for raw in proc.stdout:
            line = raw.decode(errors="replace") if isinstance(raw, bytes) else raw
            if needle in line:
                found.append(line.strip())
                return

    thread = threading.Thread(target=reader, daemon=True)
    thread.start()
    thread.join(timeout)
    return found[0] if found else None


def cpu_seconds(pid):
    """(user, system) CPU seconds of a whole process (all its threads, live and exited)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]) / CLOCK_TICKS, int(fields[12]) / CLOCK_TICKS


def cpu_of(pids):
    """Summed (user, system) CPU seconds of pids; processes that vanished count as 0."""
    user = system = 0.0
    for pid in pids:
        try:
            u, s = cpu_seconds(pid)
        except (FileNotFoundError, ProcessLookupError, IndexError):
            continue
        user += u
        system += s
    return user, system


def cpu_busy(cpus):
    """(busy, total) seconds of a set of CPUs since boot, summed over their /proc/stat lines (busy: all but
    idle and iowait)."""
    wanted = {f"cpu{c}" for c in cpus}
    busy = total = 0
    with open("/proc/stat") as f:
        for line in f:
            fields = line.split()
            if fields and fields[0] in wanted:
                ticks = [int(v) for v in fields[1:9]]
                total += sum(ticks)
                busy += sum(ticks) - ticks[3] - ticks[4]
    return busy / CLOCK_TICKS, total / CLOCK_TICKS


def machine_ticks():
    """(steal, busy, total) seconds of all CPUs since boot (the /proc/stat "cpu" line): steal is time the
    hypervisor gave to other tenants while this machine wanted to run; busy is what ran here (not idle, iowait
    or steal)."""
    with open("/proc/stat") as f:
        fields = f.readline().split()
    ticks = [int(v) for v in fields[1:9]]
    total = sum(ticks)
    return ticks[7] / CLOCK_TICKS, (total - ticks[3] - ticks[4] - ticks[7]) / CLOCK_TICKS, total / CLOCK_TICKS


def meminfo_kib(key):
    """A /proc/meminfo figure in KiB (Slab, SUnreclaim, ...)."""
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    return None


def parse_cpu_list(text):
    """CPU numbers of a taskset-style list ("2-9", "0,2-3"), sorted and without repeats; ValueError if malformed."""
    cpus = set()
    for part in text.replace(" ", "").split(","):
        if not part:
            raise ValueError(f"empty item in CPU list {text!r}")
        lo, dash, hi = part.partition("-")
        if not lo.isdigit() or (dash and not hi.isdigit()):
            raise ValueError(f"bad CPU list item {part!r} in {text!r} (want e.g. 2-9 or 0,2-3)")
        first, last = int(lo), int(hi) if dash else int(lo)
        if last < first:
            raise ValueError(f"bad CPU range {part!r} in {text!r}")
        cpus.update(range(first, last + 1))
    return sorted(cpus)


def format_cpu_list(cpus):
    """The shortest taskset-style text for CPU numbers: [0, 2, 3, 4] -> "0,2-4"."""
    cpus = sorted(set(cpus))
    parts = []
    i = 0
    while i < len(cpus):
        j = i
        while j + 1 < len(cpus) and cpus[j + 1] == cpus[j] + 1:
            j += 1
        parts.append(str(cpus[i]) if i == j else f"{cpus[i]}-{cpus[j]}" if j > i + 1 else f"{cpus[i]},{cpus[j]}")
        i = j + 1
    return ",".join(parts)


def describe_cpus(cpus):
    """"CPU 1" or "CPUs 2-9" for report text."""
    cpus = list(cpus)
    return f"CPU {cpus[0]}" if len(cpus) == 1 else f"CPUs {format_cpu_list(cpus)}"


def meta_cpus(meta):
    """(proxy_cpus, load_cpus, threads) of a results' meta; old results have single "proxy_cpu"/"load_cpu"
    and one worker thread."""
    proxy = meta.get("proxy_cpus")
    load = meta.get("load_cpus")
    if proxy is None:
        proxy = [meta["proxy_cpu"]] if meta.get("proxy_cpu") is not None else []
    if load is None:
        load = [meta["load_cpu"]] if meta.get("load_cpu") is not None else []
    return list(proxy), list(load), int(meta.get("threads") or 1)


def rss_kib(pid):
    """VmRSS of pid in KiB, or None when it is gone."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except (FileNotFoundError, ProcessLookupError):
        return None
    return None


def child_pids(ppid):
    """Pids whose parent is ppid."""
    out = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            if int(fields[1]) == ppid:
                out.append(int(entry))
        except (FileNotFoundError, ProcessLookupError, IndexError):
            continue
    return out


class RSSSampler:
    """Samples the summed VmRSS of some pids every `interval` seconds in a thread; keeps the peak."""

    def __init__(self, pids, interval=0.25):
        self.pids = list(pids)
        self.interval = interval
        self.peak = 0
        self.last = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _sample(self):
        total = sum(v for v in (rss_kib(p) for p in self.pids) if v)
        self.last = total
        self.peak = max(self.peak, total)

    def _run(self):
        while not self._stop.is_set():
            self._sample()
            self._stop.wait(self.interval)

    def __enter__(self):
        if self.pids:
            self._thread.start()
        return self

    def __exit__(self, *exc):
        if self.pids:
            self._stop.set()
            self._thread.join()
            self._sample()
        return False


class MemoryCgroup:
    """A memory cgroup of our own (v2 under /sys/fs/cgroup, or v1's memory hierarchy), for a process's memory
    charge with the kernel's share included: v2 memory.current, v1 memory.usage_in_bytes (which counts kernel
    memory too)."""

    def __init__(self, path, usage_file):
        self.path = path
        self.usage_file = usage_file

    @staticmethod
    def create(name):
        """A new cgroup, or None where none can be made (not root, no memory controller)."""
        for root, usage in (("/sys/fs/cgroup", "memory.current"), ("/sys/fs/cgroup/memory", "memory.usage_in_bytes")):
            if not os.path.exists(os.path.join(root, usage if root.endswith("memory") else "cgroup.controllers")):
                continue
            if root == "/sys/fs/cgroup":
                try:
                    with open(os.path.join(root, "cgroup.subtree_control")) as f:
                        if "memory" not in f.read().split():
                            continue
                except OSError:
                    continue
            path = os.path.join(root, name)
            try:
                os.mkdir(path)
            except OSError:
                continue
            return MemoryCgroup(path, usage)
        return None

    def wrap(self, argv):
        """argv started inside this cgroup (a shell moves itself in, then execs it)."""
        return ["sh", "-c", f'echo $$ > {self.path}/cgroup.procs && exec "$@"', "sh"] + list(argv)

    def usage_kib(self):
        with open(os.path.join(self.path, self.usage_file)) as f:
            return int(f.read()) // 1024

    def remove(self):
        """rmdir, once its processes are gone (a few tries)."""
        for _ in range(50):
            try:
                os.rmdir(self.path)
                return
            except FileNotFoundError:
                return
            except OSError:
                time.sleep(0.1)
