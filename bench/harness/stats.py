"""Figures that survive a shared machine: balanced random order, disturbed rounds left out, paired per-round
ratios with bootstrap confidence intervals.

A round runs every proxy once per cell. Within a block of as many rounds as there are proxies, each proxy takes
each position once (the rotations of a random order, in random order), so no proxy always follows the same
one. A round of a cell is disturbed when the hypervisor stole more than `steal_max` % of the machine's CPU time
during any of its samples, when the direct run (no proxy) fell more than `direct_drop` % below its own median
over the rounds, or (when `other_max` is given) other work on this machine (not the proxy, client or backend)
took more than `other_max` % of its CPU time: then something else slowed the machine, and that round is left out
of the ratios and the medians.
"""
import random
import statistics



def balanced_orders(names, rounds, rng):
    """`rounds` orders of names: each block of len(names) rounds holds every rotation of a fresh random order
    once, shuffled."""
    orders = []
    while len(orders) < rounds:
        base = list(names)
        rng.shuffle(base)
        block = [base[i:] + base[:i] for i in range(len(base))]
        rng.shuffle(block)
        orders += block
    return orders[:rounds]


def disturbed_rounds(samples, key, limits):
    """{round: reason} for one cell's samples (one layout); `key` is the cell's rate; limits: steal_max,
    direct_drop and other_max (None: not checked) in %."""
    out = {}
    direct_drop, other_max = limits["direct_drop"], limits.get("other_max")
    for s in samples:
        if (s.get("steal_percent") or 0) > limits["steal_max"]:
            out.setdefault(s["round"], f"steal {s['steal_percent']} %")
        if other_max is not None and (s.get("other_work_percent") or 0) > other_max:
            out.setdefault(s["round"], f"other work {s['other_work_percent']} %")
    direct = [s for s in samples if s["proxy"] == "direct" and s.get("ok") and s.get(key) is not None]
    if len(direct) >= 3:
        median = statistics.median(s[key] for s in direct)
        for s in direct:
            if s[key] < (1 - direct_drop / 100) * median:
                out.setdefault(s["round"], f"direct at {100 * s[key] / median:.0f} % of its median")
    return out


def bootstrap_median_ci(values, rng, resamples=2000, level=0.95):
    """(low, high): the percentile bootstrap interval of the median."""
    n = len(values)
    if n < 3:
        return None
    medians = sorted(statistics.median(rng.choices(values, k=n)) for _ in range(resamples))
    tail = (1 - level) / 2
    return medians[int(tail * resamples)], medians[min(resamples - 1, int((1 - tail) * resamples))]


def paired(samples, cell, numerator, denominator, key, rounds_out, rng):
    """Per-round ratios numerator ÷ denominator of `key` over the undisturbed rounds where both have a value:
    {median, low, high, n, ratios} or None."""
    by_round = {}
    for s in samples:
        if s["cell"] == cell and s.get("ok") and s.get(key) is not None and s["round"] not in rounds_out:
            by_round.setdefault(s["round"], {})[s["proxy"]] = s[key]
    ratios = [r[numerator] / r[denominator] for r in by_round.values()
              if numerator in r and denominator in r and r[denominator]]
    if not ratios:
        return None
    ci = bootstrap_median_ci(ratios, rng)
    return {"median": statistics.median(ratios), "low": ci[0] if ci else None, "high": ci[1] if ci else None,
            "n": len(ratios), "ratios": [round(r, 4) for r in ratios]}


def comparisons(samples, cells, proxies, limits, seed=1):
    """{cell: {"disturbed": {round: why}, "pairs": {"A÷B": {rate, per_unit, p99, p50}}}} for every RingProxy
    variant against HAProxy and nginx, and each variant against plain RingProxy."""
    rng = random.Random(seed)
    ours = [p for p in proxies if p.startswith("ringproxy")]
    theirs = [p for p in ("haproxy", "nginx") if p in proxies]
    against = lambda a: theirs + (["ringproxy"] if a != "ringproxy" and "ringproxy" in proxies else [])
    out = {}
    for cell in cells:
        mine = [s for s in samples if s["cell"] == cell.name]
        if not mine:
            continue
        out_rounds = disturbed_rounds(mine, cell.rate_key, limits)
        entry = {"disturbed": {str(r): why for r, why in sorted(out_rounds.items())},
                 "rounds": len({s["round"] for s in mine}), "pairs": {}}
        keys = {"rate": cell.rate_key, "per_unit": cell.per_unit_key, "p50": "p50_ms", "p99": "p99_ms"}
        if cell.mode == "idle":
            keys = {"rss": "kib_per_connection", "total": "total_kib_per_connection",
                    "cgroup": "cgroup_kib_per_connection"}
        for a in ours:
            for b in against(a):
                pair = {}
                for name, key in keys.items():
                    if key:
                        result = paired(mine, cell.name, a, b, key, out_rounds, rng)
                        if result:
                            pair[name] = result
                if pair:
                    entry["pairs"][f"{a}÷{b}"] = pair
        out[cell.name] = entry
    return out
