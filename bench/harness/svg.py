"""A hand-written SVG chart of a run: one small panel of bars per cell, and rr-100 latency."""
from xml.sax.saxutils import escape

from procs import describe_cpus, meta_cpus

COLORS = {"ringproxy": "#d9480f", "haproxy": "#1c7ed6", "nginx": "#2f9e44", "direct": "#868e96"}
EXTRA = ["#ae3ec9", "#f08c00", "#0c8599", "#5f3dc4"]
PANEL_W, PANEL_H, COLS = 250, 210, 5


def color(proxy, proxies):
    if proxy in COLORS:
        return COLORS[proxy]
    extras = [p for p in proxies if p not in COLORS]
    return EXTRA[extras.index(proxy) % len(EXTRA)]


def short_number(v):
    if v >= 1e6:
        return f"{v / 1e6:.2f}M"
    if v >= 1e4:
        return f"{v / 1e3:.0f}k"
    if v >= 1e3:
        return f"{v / 1e3:.1f}k"
    if v >= 10:
        return f"{v:.0f}"
    return f"{v:.2f}"


def panel(x0, y0, title, subtitle, bars, proxies, groups=False):
    """bars: [(label, proxy, median, min, max)]; returns SVG elements for one panel. With groups, runs of bars
    of the same proxy get its name below their labels."""
    out = [f'<g transform="translate({x0},{y0})">',
           f'<text x="{PANEL_W / 2}" y="16" text-anchor="middle" font-weight="bold">{escape(title)}</text>',
           f'<text x="{PANEL_W / 2}" y="30" text-anchor="middle" fill="#555" font-size="10">{escape(subtitle)}</text>']
    top, bottom, left, right = 44, PANEL_H - 30, 14, PANEL_W - 8
    values = [b[4] for b in bars if b[2] is not None]
    if not values:
        out += [f'<text x="{PANEL_W / 2}" y="{PANEL_H / 2}" text-anchor="middle" fill="#999">no data</text>', "</g>"]
        return out
    peak = max(values) * 1.12 or 1
    height = bottom - top
    slot = (right - left) / len(bars)
    width = slot * 0.7
    out.append(f'<line x1="{left}" y1="{bottom}" x2="{right}" y2="{bottom}" stroke="#333"/>')
    for i, (label, proxy, median, low, high) in enumerate(bars):
        x = left + i * slot + (slot - width) / 2
        cx = x + width / 2
        if median is None:
            out.append(f'<text x="{cx}" y="{bottom - 4}" text-anchor="middle" font-size="9" fill="#c00">fail</text>')
        else:
            h = height * median / peak
            out.append(f'<rect x="{x:.1f}" y="{bottom - h:.1f}" width="{width:.1f}" height="{h:.1f}" '
                       f'fill="{color(proxy, proxies)}"><title>{escape(proxy)} {escape(label)}: {median:,.2f}</title></rect>')
            if high > low:
                y1, y2 = bottom - height * low / peak, bottom - height * high / peak
                out.append(f'<line x1="{cx:.1f}" y1="{y1:.1f}" x2="{cx:.1f}" y2="{y2:.1f}" stroke="#222"/>')
            out.append(f'<text x="{cx:.1f}" y="{bottom - h - 3 - (0 if high <= median else height * (high - median) / peak):.1f}" '
                       f'text-anchor="middle" font-size="9">{short_number(median)}</text>')
        out.append(f'<text x="{cx:.1f}" y="{bottom + 12}" text-anchor="middle" font-size="9">{escape(label)}</text>')
    if groups:
        i = 0
        while i < len(bars):
            j = i
            while j < len(bars) and bars[j][1] == bars[i][1]:
                j += 1
            cx = left + (i + j) / 2 * slot
            out.append(f'<text x="{cx:.1f}" y="{bottom + 24}" text-anchor="middle" font-size="9" fill="#444">'
                       f'{escape(bars[i][1].replace("ringproxy-", "rp-"))}</text>')
            i = j
    out.append("</g>")
    return out


def headline(meta):
    """The chart's title: workers per proxy and where the proxies and the load ran."""
    proxy_cpus, load_cpus, threads = meta_cpus(meta)
    if threads == 1 and len(proxy_cpus) == 1 and len(load_cpus) == 1:
        return (f"RingProxy, HAProxy, nginx: one worker each, pinned to CPU {proxy_cpus[0]}; "
                f"load and backends on CPU {load_cpus[0]}")
    workers = "one worker thread each" if threads == 1 else f"{threads} worker threads each"
    return (f"RingProxy, HAProxy, nginx: {workers}, proxies on {describe_cpus(proxy_cpus)}; "
            f"load and backends on {describe_cpus(load_cpus)}")


def chart(meta, cells, proxies, summary):
    """The SVG document (a string)."""
    panels = []
    for cell in cells:
        if cell.mode == "idle":
            shown = [p for p in proxies if p != "direct"]
        else:
            shown = proxies
        key = cell.metric
        bars = []
        for p in shown:
            stat = summary[cell.name][p].get(key)
            if key in ("cpu_us_per_request", "kib_per_connection") and p == "direct":
                continue
            bars.append((p.replace("ringproxy-", "rp-"), p, stat["median"] if stat else None,
                         stat["min"] if stat else 0, stat["max"] if stat else 0))
        note = {"requests_per_s": "higher is better", "mb_per_s": "higher is better",
                "cpu_us_per_request": "lower is better", "kib_per_connection": "lower is better"}.get(key, "")
        panels.append((cell.short, f"{cell.unit}, {note}", bars, False))
    if "rr-100" in summary:
        bars = []
        for p in proxies:
            for q in ("p50_ms", "p99_ms"):
                stat = summary["rr-100"][p].get(q)
                bars.append((q[:3], p, stat["median"] if stat else None, stat["min"] if stat else 0,
                             stat["max"] if stat else 0))
        panels.append(("rr 100 conns: latency", "ms, p50 and p99, lower is better", bars, True))
    rows = (len(panels) + COLS - 1) // COLS
    width, height = COLS * PANEL_W + 20, rows * PANEL_H + 90
    body = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" viewBox="0 0 {width} {height}" '
            'font-family="Helvetica, Arial, sans-serif" font-size="11">',
            f'<rect width="{width}" height="{height}" fill="white"/>',
            f'<text x="10" y="20" font-size="14" font-weight="bold">{escape(headline(meta))}</text>',
            f'<text x="10" y="36" fill="#555">{escape(meta["date"])} · {escape(meta["cpu_model"])} · Linux '
            f'{escape(meta["kernel"])} · {meta["rounds"]} round(s) × {meta["duration_s"]:g} s, medians, whiskers min–max</text>']
    lx = 10
    for p in proxies:
        body.append(f'<rect x="{lx}" y="46" width="10" height="10" fill="{color(p, proxies)}"/>'
                    f'<text x="{lx + 14}" y="55">{escape(p)}</text>')
        lx += 24 + 7 * len(p)
    for i, (title, subtitle, bars, grouped) in enumerate(panels):
        x0, y0 = 10 + (i % COLS) * PANEL_W, 66 + (i // COLS) * PANEL_H
        body += panel(x0, y0, title, subtitle, bars, proxies, grouped)
    body.append("</svg>")
    return "\n".join(body) + "\n"


NOTES = {"requests_per_s": "higher is better", "mb_per_s": "higher is better", "gbit_per_s": "higher is better",
         "cpu_us_per_request": "lower is better", "total_kib_per_connection": "lower is better"}


def document(meta, cells, analysis):
    """The chart of a run with layouts: a row of panels per layout, one panel per cell (its rate; the
    fixed-rate cells their CPU per request; memory the RSS + slab per connection), medians over the rounds
    kept, whiskers min–max."""
    sections = []
    for layout in meta["layouts"]:
        result = analysis.get(layout["name"])
        if not result:
            continue
        panels = []
        for cell in [c for c in cells if c.name in layout["cells"]]:
            key = "total_kib_per_connection" if cell.mode == "idle" else cell.metric
            unit = "KiB/conn (RSS + slab)" if cell.mode == "idle" else cell.unit
            bars = []
            for p in result["proxies"]:
                if p == "direct" and key in ("cpu_us_per_request", "total_kib_per_connection"):
                    continue
                stat = result["summary"][cell.name][p].get(key)
                bars.append((p.replace("ringproxy-", "rp-"), p, stat["median"] if stat else None,
                             stat["min"] if stat else 0, stat["max"] if stat else 0))
            panels.append((cell.short, f"{unit}, {NOTES.get(key, '')}", bars))
        sections.append((f"{layout['name']}: {layout['title']}", panels))
    proxies = sorted({p for r in analysis.values() for p in r["proxies"]}, key=lambda n: (
        {"ringproxy": 0, "haproxy": 2, "nginx": 3, "direct": 4}.get(n, 1), n))
    height = 90 + sum(24 + ((len(panels) + COLS - 1) // COLS) * PANEL_H for _, panels in sections)
    width = COLS * PANEL_W + 20
    body = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" viewBox="0 0 {width} {height}" '
            'font-family="Helvetica, Arial, sans-serif" font-size="11">',
            f'<rect width="{width}" height="{height}" fill="white"/>',
            '<text x="10" y="20" font-size="14" font-weight="bold">RingProxy, HAProxy, nginx and direct: ringload, '
            'wrk + nginx, iperf3</text>',
            f'<text x="10" y="36" fill="#555">{escape(meta["date"])} · {escape(meta["cpu_model"])} · Linux '
            f'{escape(meta["kernel"])} · {meta["rounds"]} round(s) × {meta["duration_s"]:g} s, balanced random order, '
            'medians of the rounds kept, whiskers min–max</text>']
    lx = 10
    for p in proxies:
        body.append(f'<rect x="{lx}" y="46" width="10" height="10" fill="{color(p, proxies)}"/>'
                    f'<text x="{lx + 14}" y="55">{escape(p)}</text>')
        lx += 24 + 7 * len(p)
    y = 70
    for title, panels in sections:
        body.append(f'<text x="10" y="{y + 14}" font-size="13" font-weight="bold">{escape(title)}</text>')
        y += 24
        for i, (name, subtitle, bars) in enumerate(panels):
            body += panel(10 + (i % COLS) * PANEL_W, y + (i // COLS) * PANEL_H, name, subtitle, bars, proxies)
        y += ((len(panels) + COLS - 1) // COLS) * PANEL_H
    body.append("</svg>")
    return "\n".join(body) + "\n"
