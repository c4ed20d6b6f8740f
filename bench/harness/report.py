"""Medians over rounds and the Markdown report."""
import statistics

from procs import describe_cpus, meta_cpus

SUMMARY_KEYS = ["requests_per_s", "mb_per_s", "cpu_us_per_request", "cpu_s_per_gb", "cpu_percent", "user_percent",
                "p50_ms", "p99_ms", "rss_kib_peak", "kib_per_connection", "rss_kib_before", "rss_kib_after",
                "backend_cpu_s", "foreign_on_proxy_cpu_percent"]


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
