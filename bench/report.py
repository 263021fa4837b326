#!/usr/bin/env python3
"""Turns the raw dnsperf outputs of bench/run.sh into a Markdown report: medians of the repeats,
and ratios of dot-proxy to the best peer and to the upstream's own DoT ceiling."""
import re
import statistics
import sys
from collections import defaultdict
from pathlib import Path

raw = Path(sys.argv[1])
# Each family: dot-proxy as configured for it, and its peers configured alike (see run.sh's header).
FAMILIES = {
    "engine": ("dot-proxy", ["dnsdist", "kresd", "unbound", "stubby"]),
    "deployed": ("dot-proxy-cached", ["dnsdist-cached", "kresd-cached", "unbound-cached"]),
}
PEERS = FAMILIES["engine"][1] + FAMILIES["deployed"][1]
SCENARIOS = {
    "miss-udp": ("Engine (caches off): cache misses, UDP, maximum throughput (unique names)", "engine"),
    "miss-tcp": ("Engine (caches off): cache misses, TCP, maximum throughput (unique names)", "engine"),
    "rate-udp": ("Engine (caches off): fixed 2,000 q/s over UDP, latency (unique A names, 1 in 10 a "
                 "700/1,700/3,300-octet TXT)", "engine"),
    "hot-udp": ("As deployed (caches on): cache hits, UDP, maximum throughput (1,000 names)", "deployed"),
    "zipf-udp": ("As deployed (caches on): Zipf mix, UDP, maximum throughput (names drawn with s = 1 from "
                 "100,000 new to the run)", "deployed"),
    "rate-zipf": ("As deployed (caches on): fixed 2,000 q/s over UDP, latency (Zipf mix: names drawn with "
                  "s = 1 from 100,000 new to the cell)", "deployed"),
}


def parse(path):
    text = path.read_text(errors="replace")
    def number(pattern, default=0.0):
        m = re.search(pattern, text)
        return float(m.group(1)) if m else default
    run = {
        "qps": number(r"Queries per second:\s+([\d.]+)"),
        "sent": number(r"Queries sent:\s+(\d+)"),
        "lost": number(r"Queries lost:\s+(\d+)"),
        "avg_ms": number(r"Average Latency \(s\):\s+([\d.]+)") * 1000,
        "completed": number(r"Queries completed:\s+(\d+)"),
    }
    latencies = sorted(float(m.group(1)) for m in re.finditer(r"^> \S+ \S+ \S+ ([\d.]+)$", text, re.M))
    if latencies:
        run["p50_ms"] = latencies[len(latencies) // 2] * 1000
        run["p99_ms"] = latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))] * 1000
        run["p999_ms"] = latencies[min(len(latencies) - 1, int(len(latencies) * 0.999))] * 1000
    m = re.search(r"^proxy_cpu_seconds (\d+) (\d+)$", text, re.M)
    if m and float(m.group(1)) > 0:
        run["per_cpu_s"] = run["completed"] / (float(m.group(1)) / float(m.group(2)))
    m = re.search(r"^rss_kib (\d+)$", text, re.M)
    if m:
        run["rss_mib"] = int(m.group(1)) / 1024
    codes = re.search(r"Response codes:\s+(.*)", text)
    run["codes"] = codes.group(1).strip() if codes else "none"
    # A SERVFAIL is an answer but not a resolution: throughput ratios count NOERROR answers only.
    noerror = re.search(r"NOERROR \d+ \(([\d.]+)%\)", run["codes"])
    run["ok_qps"] = run["qps"] * (float(noerror.group(1)) / 100 if noerror else 0.0)
    # Queries that got no NOERROR answer (lost, or another rcode), as a share of those sent.
    if run["sent"]:
        ok = run["completed"] * (float(noerror.group(1)) / 100 if noerror else 0.0)
        run["error_pct"] = 100 * (run["sent"] - ok) / run["sent"]
    m = re.search(r"^handshakes (\d+|NA)$", text, re.M)
    if m:
        run["handshakes"] = int(m.group(1)) if m.group(1) != "NA" else None
    # dot-proxy's connection errors by kind and timed-out upstream queries during the run, when any.
    run["upstream_trouble"] = {name: int(count) for name, count in
                               re.findall(r"^upstream_(errors_\w+|timeouts) (\d+)$", text, re.M)}
    m = re.search(r"^connections (\d+) (\d+)$", text, re.M)
    if m:
        run["connections"] = (int(m.group(1)), int(m.group(2)))
    m = re.search(r"^upstream_queries (\d+)$", text, re.M)
    if m and run["completed"]:
        run["upstream_share"] = float(m.group(1)) / run["completed"]
    return run


runs = defaultdict(list)
for path in sorted(raw.glob("*.txt")):
    if path.name == "meta.txt":
        continue
    proxy, scenario, repeat = path.name.rsplit(".", 3)[:3]
    run = parse(path)
    run["repeat"] = int(repeat)
    runs[(proxy, scenario)].append(run)


def median(proxy, scenario, key):
    values = [r[key] for r in runs.get((proxy, scenario), []) if key in r]
    return statistics.median(values) if values else None


meta = defaultdict(list)
for line in (raw / "meta.txt").read_text().splitlines():
    key, _, value = line.partition(" ")
    meta[key].append(value)
# "name rss_kib hwm_kib"; a proxy that died before the end has no numbers on its line.
rss = {fields[0]: (int(fields[1]) / 1024, int(fields[2]) / 1024)
       for fields in (v.split() for v in meta["rss"]) if len(fields) == 3}
ready = {fields[0]: int(fields[1]) for fields in (v.split() for v in meta["ready"])}
# "name breakdown...": bench/footprint.py's line for that proxy (run.sh asks it for dot-proxy only).
footprint = dict(v.split(" ", 1) for v in meta["footprint"])
GUARDED = "dot-proxy-guarded"  # dot-proxy with a rate limit no client reaches: the guard's cost
LANES = "dot-proxy-2lanes"  # dot-proxy with two lanes on its one CPU: what lanes cost per answer
proxies = [p for p in ["dot-proxy", GUARDED, LANES, "dot-proxy-cached"] + PEERS if any(k[0] == p for k in runs)]


def paired(scenario, key, peer, us="dot-proxy"):
    """Median over the repeats of our value / the given peer's value in the same repeat: the
    cells of one repeat ran minutes apart at most, so this ratio shares the machine's noise.
    Returns the median and how many repeats had both."""
    ratios = []
    for ours in runs.get((us, scenario), []):
        theirs = [r[key] for r in runs.get((peer, scenario), []) if r["repeat"] == ours["repeat"] and r.get(key)]
        if ours.get(key) and theirs:
            ratios.append(ours[key] / theirs[0])
    return (statistics.median(ratios) if ratios else None), len(ratios)


def fmt(value, digits=1):
    return "—" if value is None else f"{value:,.{digits}f}"


out = []
out.append("# dot-proxy benchmark\n")
out.append(f"Run {meta['date'][0]} on {meta['machine'][0]}; pinning: {meta['pinning'][0]}; "
           f"{meta['repeats'][0]} runs of {meta['seconds'][0]} s per cell, medians shown.\n")
out.append("Versions: " + "; ".join(meta["version"]) + ".\n")
ceiling = median("ceiling", "miss-dot", "ok_qps")
out.append(f"Ceiling (dnsperf -m dot straight at the upstream, unique names, NOERROR): **{fmt(ceiling, 0)} q/s**.\n")
out.append("Answers per CPU-second (NOERROR answers per second of the proxy's own CPU time, its core "
           "pinned) rank the proxies first: on two cores the load generator and the upstream share "
           "the other core, so the best reach the rig's ceiling and q/s alone cannot separate them. "
           "Ratios are dot-proxy's to the best peer's, and paired per repeat. \"Upstream queries per "
           "answer\" is what the upstream counted during the run per answer: about 1 for a cache miss, "
           "near 0 for a hit. \"Not NOERROR\" counts lost queries and other rcodes, as a share of those sent.\n")

for scenario, (title, family) in SCENARIOS.items():
    us, peers_of_family = FAMILIES[family]
    present = [p for p in proxies if (p, scenario) in runs]
    if not present:
        continue
    out.append(f"\n## {title}\n")
    out.append("| proxy | answers per CPU-s | q/s | NOERROR q/s | upstream queries per answer | p50 ms | p99 ms "
               "| p99.9 ms | lost | not NOERROR % | RSS MiB | codes |")
    out.append("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|")
    for proxy in present:
        cells = runs.get((proxy, scenario), [])
        codes = cells[len(cells) // 2]["codes"] if cells else "—"
        out.append(f"| {proxy} | {fmt(median(proxy, scenario, 'per_cpu_s'), 0)} | {fmt(median(proxy, scenario, 'qps'), 0)} "
                   f"| {fmt(median(proxy, scenario, 'ok_qps'), 0)} "
                   f"| {fmt(median(proxy, scenario, 'upstream_share'), 2)} "
                   f"| {fmt(median(proxy, scenario, 'p50_ms'), 3)} | {fmt(median(proxy, scenario, 'p99_ms'), 3)} "
                   f"| {fmt(median(proxy, scenario, 'p999_ms'), 2)} "
                   f"| {fmt(median(proxy, scenario, 'lost'), 0)} | {fmt(median(proxy, scenario, 'error_pct'), 2)} "
                   f"| {fmt(median(proxy, scenario, 'rss_mib'), 0)} | {codes} |")
    lines = []
    for key, what in (("per_cpu_s", "answers per CPU-second"), ("ok_qps", "NOERROR q/s")):
        peers = [(median(p, scenario, key), p) for p in peers_of_family if median(p, scenario, key)]
        ours = median(us, scenario, key)
        if peers and ours:
            best, who = max(peers)
            ratio, pairs = paired(scenario, key, who, us)
            lines.append(f"{what}: **{ours / best:.2f}×** the best peer ({who}; paired per repeat: median "
                         f"{fmt(ratio, 2)}× over {pairs})")
    ours = median(us, scenario, "ok_qps")
    if scenario.startswith("miss") and ceiling and ours:
        lines.append(f"NOERROR q/s / the upstream's ceiling: **{ours / ceiling:.2f}×**")
    if scenario.startswith("rate"):
        p99s = [(median(p, scenario, "p99_ms"), p) for p in peers_of_family if median(p, scenario, "p99_ms")]
        our_p99 = median(us, scenario, "p99_ms")
        if p99s and our_p99:
            best_p99, who99 = min(p99s)
            ratio, pairs = paired(scenario, "p99_ms", who99, us)
            lines.append(f"p99 {our_p99:.3f} ms against the best peer's {best_p99:.3f} ms ({who99}): "
                         f"**{our_p99 / best_p99:.2f}×**, lower is better (paired: median {fmt(ratio, 2)}× over {pairs})")
    failing = [f"{p} {median(p, scenario, 'error_pct'):.2f}%" for p in present
               if (median(p, scenario, "error_pct") or 0) >= 0.1]
    if failing:
        lines.append("not NOERROR in this cell (lost or another rcode; a ratio against such a proxy flatters "
                     "neither side): " + ", ".join(failing))
    if lines:
        out.append("\n" + "; ".join(lines) + ".")
    guarded = median(GUARDED, scenario, "per_cpu_s")
    plain = median("dot-proxy", scenario, "per_cpu_s")
    if guarded and plain:
        ratio, pairs = paired(scenario, "per_cpu_s", GUARDED)
        out.append(f"\nThe guard's cost: dot-proxy answers per CPU-second with a rate limit / without: "
                   f"**{guarded / plain:.2f}×** (paired in each repeat: without / with, median {fmt(ratio, 2)}× over {pairs}).")
    laned = median(LANES, scenario, "per_cpu_s")
    if laned and plain:
        ratio, pairs = paired(scenario, "per_cpu_s", LANES)
        out.append(f"\nWhat lanes cost: dot-proxy answers per CPU-second with two lanes on its one CPU / one lane: "
                   f"**{laned / plain:.2f}×** (paired in each repeat: one / two, median {fmt(ratio, 2)}× over {pairs}).")

out.append("\n## Footprint and steady state\n")
out.append("RSS under load: read halfway through each measured run, median and highest over all of a "
           "proxy's runs (the tables above show the median per scenario); peak is the kernel's high-water mark.\n")
for proxy in proxies:
    under_load = [r["rss_mib"] for (p, _), cells in runs.items() if p == proxy for r in cells if "rss_mib" in r]
    parts = []
    if under_load:
        parts.append(f"RSS under load {statistics.median(under_load):.0f} MiB (highest {max(under_load):.0f})")
    if proxy in rss:
        parts.append(f"after the runs {rss[proxy][0]:.0f} MiB, peak {rss[proxy][1]:.0f} MiB")
    if parts or proxy in ready:
        out.append(f"- {proxy}: {', '.join(parts) or 'no memory reading'}; answering {ready.get(proxy, '—')} ms after start.")
    if proxy in footprint:
        out.append(f"- {proxy} after the runs, by mapping (`bench/footprint.py`): {footprint[proxy]}.")
recorded = [(scenario, r) for (proxy, scenario), cells in runs.items() if proxy == "dot-proxy"
            for r in cells if "handshakes" in r]
counted = [(scenario, r) for scenario, r in recorded if r["handshakes"] is not None]
if recorded:
    uncounted = len(recorded) - len(counted)
    line = (f"- dot-proxy: TLS handshakes during the {len(counted)} measured runs: "
            f"{sum(r['handshakes'] for _, r in counted)} (counted from its metrics around each run"
            + (f"; {uncounted} run{'s' if uncounted != 1 else ''} not counted, a scrape failed" if uncounted else "")
            + "; the unrecorded second before each run may reconnect)")
    # Where a run reconnected or saw connection errors or timeouts, say which run and what.
    troubled = []
    for scenario, r in sorted(counted, key=lambda c: (c[1]["repeat"], c[0])):
        n = r["handshakes"]
        what = [f"{n} handshake{'s' if n != 1 else ''}"] if n else []
        what += [f"{name.replace('errors_', 'errors ')} {count}" for name, count in sorted(r["upstream_trouble"].items())]
        if what and "connections" in r:
            what.append("open connections {} before, {} after".format(*r["connections"]))
        if what:
            troubled.append(f"{scenario} {r['repeat']}: {', '.join(what)}")
    out.append(line + (f"; by run: {'; '.join(troubled)}." if troubled else "."))


def footprint_cell(path):
    """One proxy's footprint cell (run.sh, footprint_cell): fill passes, RSS samples, the load."""
    text = path.read_text(errors="replace")
    cell = {"proxy": path.stem, "load": parse(path)}
    for key in ("settings", "held_before", "held_after", "upstream_queries", "cache_bytes", "footprint"):
        m = re.search(rf"^{key} ?(.*)$", text, re.M)
        cell[key] = m.group(1).strip() if m else ""
    cell["fills"] = re.findall(r"^fill\d upstream (\S+) codes (.*)$", text, re.M)
    samples = [list(map(int, m.groups())) for m in
               re.finditer(r"^sample (\d+) (\d+) (\d+) (\d+) (\d+)$", text, re.M)]
    # Columns: VmRSS, RssAnon, RssFile, RssShmem, Pss (KiB); the median of each, and the highest RSS.
    if samples:
        cell["median"] = [statistics.median(column) / 1024 for column in zip(*samples)]
        cell["highest"] = max(s[0] for s in samples) / 1024
        cell["count"] = len(samples)
    m = re.search(r"^idle sample (\d+)", text, re.M)
    cell["idle"] = int(m.group(1)) / 1024 if m else None
    return cell


cells = [footprint_cell(p) for p in sorted((raw / "footprint").glob("*.txt"))] if (raw / "footprint").is_dir() else []
if cells:
    names = int(meta["footprint_names"][0]) if meta["footprint_names"] else 0
    out.append(f"\n## Footprint with {names:,} names cached\n")
    out.append(f"Each \"-cached\" proxy again, fresh and alone: two paced passes over the same {names:,} distinct "
               "names (10,000 q/s, `-c 4 -q 50`; the second asks again whatever the first did not get kept), then "
               "a steady 20,000 q/s of hits on them (UDP, `-c 4 -q 100`) with the RSS read each second. "
               "\"Upstream queries\" is what the upstream counted: every name once in the first pass, none after, "
               "when a proxy holds them all. Entries: the proxy's own count where it gives one (dot-proxy's "
               "`dotproxy_cache_entries`; kresd's `cache.count()`, its records and packets), before and after the load. "
               "RSS columns are medians of the samples (MiB); anonymous and file-backed are `RssAnon` and "
               "`RssFile` + `RssShmem`; idle is the RSS just after start, before any name.\n")
    out.append("| proxy | settings | upstream queries, fill 1 / fill 2 / load | entries | load q/s | lost | RSS | highest "
               "| anonymous | file-backed | PSS | idle | RSS − idle |")
    out.append("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for c in cells:
        fills = " / ".join(f for f, _ in c["fills"])
        med = c.get("median")
        entries = c["held_before"] + (f" → {c['held_after']}" if c["held_after"] != c["held_before"] else "")
        out.append(f"| {c['proxy']} | {c['settings'] or 'as in the cells above'} | {fills} / {c['upstream_queries']} "
                   f"| {entries or '—'} | {fmt(c['load']['qps'], 0)} | {fmt(c['load']['lost'], 0)} "
                   f"| {fmt(med and med[0])} | {fmt(c.get('highest'))} | {fmt(med and med[1])} "
                   f"| {fmt(med and med[2] + med[3])} | {fmt(med and med[4])} | {fmt(c['idle'])} "
                   f"| {fmt(med and c['idle'] and med[0] - c['idle'])} |")
    ours = next((c for c in cells if c["proxy"] == "dot-proxy-cached" and c.get("median")), None)
    if ours:
        ratios = [f"{c['proxy']} {ours['median'][0] / c['median'][0]:.2f}× (PSS {ours['median'][4] / c['median'][4]:.2f}×)"
                  for c in cells if c is not ours and c.get("median")]
        if ratios:
            out.append("\ndot-proxy's RSS under this load / each peer's: " + "; ".join(ratios)
                       + " (the target: at most 1.00× kresd-cached's).")
        if ours["cache_bytes"]:
            per = int(ours["cache_bytes"]) / max(1, int(ours["held_after"] or 1))
            out.append(f"\ndot-proxy's cache weighed {int(ours['cache_bytes']) / 2**20:.1f} MiB by its own count "
                       f"(`dotproxy_cache_bytes`, the figure `max-size` bounds): {per:.0f} octets per entry.")
        if ours["footprint"]:
            out.append(f"\ndot-proxy after the load, by mapping (`bench/footprint.py`): {ours['footprint']}.")
out.append("\nCommand: `bash bench/run.sh` (see its header for the dnsperf arguments of each scenario).")
print("\n".join(out))
