"""Medians over rounds, paired ratios, and the Markdown report."""
import statistics

import stats
from procs import describe_cpus, meta_cpus

SUMMARY_KEYS = ["requests_per_s", "mb_per_s", "cpu_us_per_request", "cpu_s_per_gb", "cpu_percent", "user_percent",
                "p50_ms", "p99_ms", "rss_kib_peak", "kib_per_connection", "rss_kib_before", "rss_kib_after",
                "backend_cpu_s", "foreign_on_proxy_cpu_percent", "gbit_per_s", "load_cpu_us_per_request",
                "load_cpu_s_per_gb", "proxy_cpu_busy_percent", "steal_percent", "client_cpu_s",
                "slab_kib_per_connection", "total_kib_per_connection", "cgroup_kib_per_connection",
                "other_work_percent"]


def summarize(samples, cells, proxies):
    """{cell: {proxy: {key: {median, min, max, n}, failed: [errors]}}} over the samples."""
    out = {}
    for cell in cells:
        out[cell.name] = {}
        for proxy in proxies:
            mine = [s for s in samples if s["cell"] == cell.name and s["proxy"] == proxy]
            good = [s for s in mine if s.get("ok")]
            entry = {"samples": len(mine), "ok": len(good),
                     "unsupported": bool(mine) and all(s.get("unsupported") for s in mine),
                     "errors": sorted({s.get("error", "") for s in mine if not s.get("ok")})}
            for key in SUMMARY_KEYS:
                values = [s[key] for s in good if s.get(key) is not None]
                if values:
                    entry[key] = {"median": statistics.median(values), "min": min(values), "max": max(values),
                                  "n": len(values)}
            out[cell.name][proxy] = entry
    return out


def fmt(value, digits=None):
    """A number for a table cell: thousands separators for big ones, a few significant digits otherwise."""
    if value is None:
        return "–"
    if digits is None:
        digits = 0 if abs(value) >= 100 else 1 if abs(value) >= 10 else 2 if abs(value) >= 1 else 3
    return f"{value:,.{digits}f}"


def med(entry, key, digits=None, spread=False):
    stat = entry.get(key)
    if not stat:
        return "–"
    text = fmt(stat["median"], digits)
    if spread and stat["n"] > 1:
        text += f" ({fmt(stat['min'], digits)}–{fmt(stat['max'], digits)})"
    return text


def ratio(entry, base, key):
    a, b = entry.get(key), (base or {}).get(key)
    if not a or not b or not b["median"]:
        return "–"
    return f"{a['median'] / b['median']:.2f}×"


def markdown(meta, cells, proxies, summary):
    """The report: how it was run, the throughput/latency table, the fixed-rate table and idle memory."""
    lines = [f"# RingProxy beside HAProxy and nginx — {meta['date']}", ""]
    proxy_cpus, load_cpus, threads = meta_cpus(meta)
    lines += [f"- Machine: {meta['cpu_model']}, {meta['nproc']} CPUs, Linux {meta['kernel']}",
              f"- Proxies: RingProxy ({meta['git']}), {meta['versions'].get('haproxy') or 'HAProxy n/a'}, "
              f"{meta['versions'].get('nginx') or 'nginx n/a'}; {workers_text(threads)}",
              f"- Pinning: {pinning_text(proxy_cpus, load_cpus)}; RLIMIT_NOFILE {meta['nofile']}",
              f"- Network: {meta['network']}",
              f"- {meta['rounds']} round(s) of {meta['duration_s']:g} s per cell, proxies interleaved in rotating "
              "order; medians, (min–max) over rounds when more than one",
              f"- Reproduce: `{meta['command']}`", ""]
    base_name = "haproxy"
    lines += ["## Closed loop: peak rates", "",
              ("Proxy CPU is the proxy process's utime+stime over the run (/proc/PID/stat); nginx counts master "
               "+ worker. " if threads == 1 else
               f"Proxy CPU is the proxy process's utime+stime over the run (/proc/PID/stat), all {threads} workers "
               f"together, so up to {threads * 100} %; nginx counts master + workers. ")
              + "`vs HAProxy` is the rate's ratio to HAProxy's.", "",
              "| cell | proxy | rate | vs HAProxy | proxy CPU % | proxy CPU per unit | user % | p50 ms | p99 ms "
              "| proxy RSS MiB |", "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for cell in cells:
        if cell.mode not in ("rr", "stream", "connect") or cell.metric == "cpu_us_per_request":
            continue
        if not_measured(lines, cell, proxies, summary, 10):
            continue
        for proxy in proxies:
            e = summary[cell.name][proxy]
            if not e["ok"]:
                lines.append(f"| {cell.title} | {proxy} | failed: {short(e['errors'])} | | | | | | | |")
                continue
            rate_key = cell.metric
            per_unit = (med(e, "cpu_s_per_gb", 2) + " CPU-s/GB") if cell.mode == "stream" else \
                (med(e, "cpu_us_per_request", 2) + " µs/" + ("conn" if cell.mode == "connect" else "req"))
            if proxy == "direct":
                per_unit = "–"
            rss = e.get("rss_kib_peak")
            lines.append(
                f"| {cell.title} | {proxy} | {med(e, rate_key, spread=True)} {cell.unit} | {ratio(e, summary[cell.name].get(base_name), rate_key)} "
                f"| {med(e, 'cpu_percent', 0)} | {per_unit} | {med(e, 'user_percent', 0)} "
                f"| {med(e, 'p50_ms', 3) if cell.mode == 'rr' else '–'} | {med(e, 'p99_ms', 3) if cell.mode == 'rr' else '–'} "
                f"| {fmt(rss['median'] / 1024, 1) if rss else '–'} |")
    fixed = [c for c in cells if c.metric == "cpu_us_per_request"]
    for cell in fixed:
        lines += ["", f"## Open loop: CPU at a fixed offered rate — {cell.title}", "",
                  "Same offered load for every proxy, so CPU per request compares the cost of the work itself.", "",
                  "| proxy | CPU-µs per request | vs HAProxy | proxy CPU % | user % | achieved req/s | p50 ms | p99 ms |",
                  "|---|---:|---:|---:|---:|---:|---:|---:|"]
        rate = meta.get("rate")
        saturated = []
        if not_measured(lines, cell, proxies, summary, 8, with_cell=False):
            continue
        for proxy in proxies:
            e = summary[cell.name][proxy]
            if not e["ok"]:
                lines.append(f"| {proxy} | failed: {short(e['errors'])} | | | | | | |")
                continue
            lines.append(f"| {proxy} | {med(e, 'cpu_us_per_request', 2, spread=True) if proxy != 'direct' else '–'} "
                         f"| {ratio(e, summary[cell.name].get(base_name), 'cpu_us_per_request') if proxy != 'direct' else '–'} "
                         f"| {med(e, 'cpu_percent', 0)} | {med(e, 'user_percent', 0)} | {med(e, 'requests_per_s')} "
                         f"| {med(e, 'p50_ms', 3)} | {med(e, 'p99_ms', 3)} |")
            achieved = e.get("requests_per_s")
            if rate and achieved and achieved["median"] < 0.95 * rate:
                saturated.append(proxy)
        if saturated:
            lines += ["", f"**Saturated**: {', '.join(saturated)} did not keep up with {rate:,} req/s (achieved under "
                      "95 %), so for them this is a closed-loop figure; rerun with a lower `--rate`."]
    for cell in [c for c in cells if c.mode == "idle"]:
        lines += ["", f"## Memory: {cell.title}", "",
                  f"RSS (VmRSS) of a freshly started proxy (nginx: its worker{'s' if threads > 1 else ''}) before the "
                  "connections and while they "
                  "are held; a new instance for each sample, since a proxy that has carried load keeps what it grew. "
                  "User-space memory only: the kernel's socket memory is not in RSS (it is the same for every proxy).", "",
                  "| proxy | RSS before MiB | RSS with connections MiB | KiB per idle connection | vs HAProxy |",
                  "|---|---:|---:|---:|---:|"]
        if not_measured(lines, cell, [p for p in proxies if p != "direct"], summary, 5, with_cell=False):
            continue
        for proxy in proxies:
            if proxy == "direct":
                continue
            e = summary[cell.name][proxy]
            if not e["ok"]:
                lines.append(f"| {proxy} | failed: {short(e['errors'])} | | | |")
                continue
            lines.append(f"| {proxy} | {fmt(e['rss_kib_before']['median'] / 1024, 1)} "
                         f"| {fmt(e['rss_kib_after']['median'] / 1024, 1)} "
                         f"| {med(e, 'kib_per_connection', 2, spread=True)} "
                         f"| {ratio(e, summary[cell.name].get(base_name), 'kib_per_connection')} |")
    if meta.get("notes"):
        lines += ["", "## Notes", ""] + [f"- {n}" for n in meta["notes"]]
    return "\n".join(lines) + "\n"


def workers_text(threads):
    """How many workers every proxy ran, for the report's header."""
    if threads == 1:
        return "each with ONE worker thread"
    return (f"each with {threads} worker threads (RingProxy threads = {threads}, HAProxy nbthread {threads}, "
            f"nginx worker_processes {threads})")


def pinning_text(proxy_cpus, load_cpus):
    """Where the proxies and the load ran (the wording of the one-CPU-each runs is kept as it was)."""
    if len(proxy_cpus) == 1 and len(load_cpus) == 1:
        return f"every proxy on CPU {proxy_cpus[0]} (taskset), backends and ringload on CPU {load_cpus[0]}"
    return f"proxies on {describe_cpus(proxy_cpus)} (taskset), load and backends on {describe_cpus(load_cpus)}"


def short(errors):
    text = "; ".join(e for e in errors if e) or "no sample"
    return text.replace("|", "/").replace("\n", " ")[:160]


def not_measured(lines, cell, proxies, summary, columns, with_cell=True):
    """One 'not measured' row (and True) when no proxy could run this cell at all (ringload lacks it)."""
    entries = [summary[cell.name][p] for p in proxies]
    if not entries or not all(e.get("unsupported") for e in entries):
        return False
    why = short(entries[0]["errors"])
    row = ([cell.title] if with_cell else []) + ["all", f"not measured: {why}"]
    lines.append("| " + " | ".join(row + [""] * (columns - len(row))) + " |")
    return True


def proxy_rank(name):
    """Report order: RingProxy, its variants, HAProxy, nginx, direct."""
    order = {"ringproxy": 0, "haproxy": 2, "nginx": 3, "direct": 4}
    return (order.get(name, 1), name)


def analyse(meta, cells, samples):
    """{layout: {proxies, summary (medians over the undisturbed rounds), comparisons (stats.comparisons)}}."""
    out = {}
    for layout in meta["layouts"]:
        mine = [s for s in samples if s.get("layout") == layout["name"]]
        if not mine:
            continue
        here = [c for c in cells if c.name in layout["cells"]]
        names = sorted({s["proxy"] for s in mine}, key=proxy_rank)
        comps = stats.comparisons(mine, here, names, {k: meta.get(k) for k in ("steal_max", "direct_drop", "other_max")},
                                  seed=meta["seed"])
        kept = [s for s in mine if str(s["round"]) not in comps.get(s["cell"], {}).get("disturbed", {})]
        out[layout["name"]] = {"proxies": names, "summary": summarize(kept, here, names), "comparisons": comps,
                               "idle_samples": [s for s in kept if s.get("slab_caches_bytes_per_connection")]}
    return out


def ci_text(result, digits=2):
    """"0.93× [0.88–1.01]" for a paired ratio (no interval under 3 rounds)."""
    if not result:
        return "–"
    text = f"{result['median']:.{digits}f}×"
    if result.get("low") is not None:
        text += f" [{result['low']:.{digits}f}–{result['high']:.{digits}f}]"
    return text


def verdict(result, higher_is_better):
    """How a paired ratio reads: better, worse, or within noise (its interval holds 1.0)."""
    if not result or result.get("low") is None:
        return ""
    if result["low"] <= 1.0 <= result["high"]:
        return "≈"
    better = result["low"] > 1.0 if higher_is_better else result["high"] < 1.0
    return "better" if better else "worse"


def unit_of(cell, key):
    per_request = "µs/conn" if cell.mode == "connect" or "--close" in cell.args else "µs/req"
    return {"cpu_us_per_request": per_request, "cpu_s_per_gb": "CPU-s/GB", "load_cpu_us_per_request": per_request,
            "load_cpu_s_per_gb": "CPU-s/GB"}[key]


def document(meta, cells, analysis):
    """The whole report of a run with layouts."""
    v = meta["versions"]
    lines = [f"# RingProxy beside HAProxy and nginx — {meta['date']}", "",
             f"- Machine: {meta['cpu_model']}, {meta['nproc']} CPUs, Linux {meta['kernel']}",
             f"- Proxies: RingProxy ({meta['git']}), {v.get('haproxy') or 'HAProxy n/a'}, {v.get('nginx') or 'nginx n/a'}",
             f"- Clients and servers: ringload (this tree), {v.get('wrk') or 'wrk n/a'}, {v.get('iperf3') or 'iperf3 n/a'}, "
             "nginx (HTTP, a 1 KiB file, Debian's sendfile on + tcp_nopush on); loopback",
             f"- {meta['rounds']} round(s) of {meta['duration_s']:g} s per cell; each round runs every proxy once per cell "
             f"in a balanced random order (seed {meta['seed']}); the memory cell in the first {meta['idle_rounds']}",
             f"- Rounds left out: any sample of the round with more than {meta['steal_max']:g} % of CPU time stolen "
             f"(/proc/stat steal), or the direct run more than {meta['direct_drop']:g} % below its median"
             + (f", or other work on the machine above {meta['other_max']:g} % of its CPU time"
                if meta.get("other_max") is not None else ""),
             f"- Steal over all samples: median {meta.get('steal_percent', {}).get('median', '–')} %, "
             f"max {meta.get('steal_percent', {}).get('max', '–')} %; other work on the machine (not the proxy, client or "
             f"backend): median {meta.get('other_work_percent', {}).get('median', '–')} %, max "
             f"{meta.get('other_work_percent', {}).get('max', '–')} % of its CPU time; load average {' '.join(meta.get('loadavg_start', []))} "
             f"at the start, {' '.join(meta.get('loadavg_end', []))} at the end",
             f"- Reproduce: `{meta['command']}` ({meta.get('elapsed_s', '?')} s)", "",
             "Ratios are RingProxy's per-round ratio to the peer in the same round (paired), median over the rounds "
             "kept, with a bootstrap 95 % interval in brackets; `≈` marks an interval that holds 1.0 (within noise). "
             "Proxy CPU is utime+stime of the proxy's processes (/proc/PID/stat; nginx: master + workers); load CPU is "
             "the client's own (wrk, iperf3, ringload: its rusage); `CPUs busy` is how busy the proxy's CPUs were in "
             "all (/proc/stat).", ""]
    lines += headline(meta, cells, analysis)
    for layout in meta["layouts"]:
        if layout["name"] in analysis:
            lines += layout_section(meta, layout, [c for c in cells if c.name in layout["cells"]], analysis[layout["name"]])
    if meta.get("notes"):
        lines += ["## Notes", ""] + [f"- {n}" for n in meta["notes"]] + [""]
    return "\n".join(lines)


def headline(meta, cells, analysis):
    """The fixed-offered-rate CPU ratios of every layout, first."""
    rows = []
    for layout in meta["layouts"]:
        comps = analysis.get(layout["name"], {}).get("comparisons", {})
        for cell in cells:
            if cell.metric != "cpu_us_per_request" or cell.name not in comps:
                continue
            for pair, result in comps[cell.name]["pairs"].items():
                per = result.get("per_unit")
                rows.append(f"| {layout['name']} | {cell.short} | {pair.replace('÷', ' ÷ ')} | {ci_text(per)} "
                            f"{verdict(per, False)} | {ci_text(result.get('p99'))} | {per['n'] if per else 0} |")
    if not rows:
        return []
    return ["## Headline: proxy CPU per request at a fixed offered rate", "",
            "The same offered load for every proxy (ringload --rate, open loop), so the client's CPU is the same for "
            "all and the proxy's CPU per request compares the cost of the work itself.", "",
            "| layout | cell | ratio | CPU-µs per request | p99 | rounds |", "|---|---|---|---:|---:|---:|"] + rows + [""]


def reasons(disturbed):
    """Why rounds were left out, briefly: "3 steal, 1 direct slow"."""
    steal = sum(1 for why in disturbed.values() if why.startswith("steal"))
    direct = sum(1 for why in disturbed.values() if why.startswith("direct"))
    other = len(disturbed) - steal - direct
    parts = [f"{steal} steal", f"{direct} direct slow", f"{other} other work"]
    return ", ".join(p for p, n in zip(parts, (steal, direct, other)) if n)


def layout_section(meta, layout, cells, result):
    names, summary, comps = result["proxies"], result["summary"], result["comparisons"]
    lines = [f"## Layout `{layout['name']}`: {layout['title']}", "",
             f"Proxies on {describe_cpus(layout['proxy_cpus'])}, load and backends on {describe_cpus(layout['load_cpus'])}"
             + (" (no taskset: the same CPUs)" if layout["proxy_cpus"] == layout["load_cpus"] else " (taskset)") + ".", "",
             "| cell | proxy | rate (min–max) | proxy CPU per unit | load CPU per unit | proxy CPU % | CPUs busy % "
             "| p50 ms | p99 ms |", "|---|---|---:|---:|---:|---:|---:|---:|---:|"]
    for cell in cells:
        if cell.mode == "idle":
            continue
        for proxy in names:
            e = summary[cell.name][proxy]
            if not e["ok"]:
                if e["samples"]:
                    lines.append(f"| {cell.short} | {proxy} | {'not run' if e['unsupported'] else 'failed'}: "
                                 f"{short(e['errors'])} | | | | | | |")
                continue
            rate_key = cell.rate_key
            per = cell.per_unit_key if e.get(cell.per_unit_key) else None
            load = cell.load_per_unit_key if e.get(cell.load_per_unit_key) else None
            unit = "req/s" if cell.metric == "cpu_us_per_request" else cell.unit
            lines.append(f"| {cell.short} | {proxy} | {med(e, rate_key, spread=True) if rate_key else '–'} {unit} "
                         f"| {med(e, per, 2) + ' ' + unit_of(cell, per) if per else '–'} "
                         f"| {med(e, load, 2) + ' ' + unit_of(cell, load) if load else '–'} "
                         f"| {med(e, 'cpu_percent', 0) if proxy != 'direct' else '–'} | {med(e, 'proxy_cpu_busy_percent', 0)} "
                         f"| {med(e, 'p50_ms', 3)} | {med(e, 'p99_ms', 3)} |")
    lines += ["", f"Paired ratios in layout `{layout['name']}` (rate: higher is better; CPU per unit and p99: lower is "
              "better):", "", "| cell | ratio | rate | CPU per unit | p50 | p99 | rounds kept (left out) |",
              "|---|---|---:|---:|---:|---:|---|"]
    for cell in cells:
        if cell.mode == "idle" or cell.name not in comps:
            continue
        entry = comps[cell.name]
        out = entry["disturbed"]
        for pair, r in entry["pairs"].items():
            kept = max((x["n"] for x in r.values()), default=0)
            lines.append(f"| {cell.short} | {pair.replace('÷', ' ÷ ')} "
                         f"| {ci_text(r.get('rate'))} {verdict(r.get('rate'), True)} "
                         f"| {ci_text(r.get('per_unit'))} {verdict(r.get('per_unit'), False)} "
                         f"| {ci_text(r.get('p50'))} | {ci_text(r.get('p99'))} {verdict(r.get('p99'), False)} "
                         f"| {kept} of {entry['rounds']}" + (f" ({len(out)}: {reasons(out)})" if out else "") + " |")
    for cell in [c for c in cells if c.mode == "idle"]:
        lines += ["", f"Memory, {cell.title}: a fresh proxy each sample, in a memory cgroup of its own where one can be "
                  "made. RSS is the proxy's user space; slab is the machine's /proc/meminfo Slab change (the kernel's "
                  "socket and io_uring objects, the client's and backend's sockets included, which are the same for "
                  "every proxy); cgroup is the proxy's memory cgroup charge (user space + the kernel memory charged to "
                  "it).", "",
                  "| proxy | RSS KiB/conn | slab KiB/conn | RSS + slab KiB/conn | cgroup KiB/conn | RSS + slab vs HAProxy "
                  "| cgroup vs HAProxy |", "|---|---:|---:|---:|---:|---:|---:|"]
        pairs = comps.get(cell.name, {}).get("pairs", {})
        for proxy in names:
            if proxy == "direct":
                continue
            e = summary[cell.name][proxy]
            if not e["ok"]:
                lines.append(f"| {proxy} | failed: {short(e['errors'])} | | | | | |")
                continue
            total = pairs.get(f"{proxy}÷haproxy", {}).get("total")
            cgroup = pairs.get(f"{proxy}÷haproxy", {}).get("cgroup")
            lines.append(f"| {proxy} | {med(e, 'kib_per_connection', 2, spread=True)} | {med(e, 'slab_kib_per_connection', 2, spread=True)} "
                         f"| {med(e, 'total_kib_per_connection', 2, spread=True)} | {med(e, 'cgroup_kib_per_connection', 2, spread=True)} "
                         f"| {ci_text(total) if total else '–'} | {ci_text(cgroup) if cgroup else '–'} |")
        lines += slab_by_cache([s for s in result.get("idle_samples", []) if s["cell"] == cell.name], names)
    return lines + [""]


def slab_by_cache(samples, names):
    """The slab caches that grew most per idle connection, for each proxy (its first sample that has them)."""
    lines = []
    for proxy in names:
        first = next((s for s in samples if s["proxy"] == proxy and s.get("slab_caches_bytes_per_connection")), None)
        if first:
            caches = ", ".join(f"{name} {size:,.0f}" for name, size in first["slab_caches_bytes_per_connection"].items())
            lines.append(f"- {proxy}, slab growth per connection by cache (bytes, round {first['round'] + 1}): {caches}")
    return [""] + lines if lines else []
