"""The side-by-side table of benches/load/run.sh, from loadgen's JSON lines (one per run)."""

import json
import sys

LEGS = ["direct", "litellm", "paygo", "paygo-postgres", "paygo-redis"]


def load(path):
    runs = {}
    with open(path, encoding="utf-8") as f:
        for line in f:
            line = line.strip()
            if line:
                r = json.loads(line)
                leg, kind = r["label"].split("/", 1)
                runs[(leg, kind)] = r
    return runs


def fmt(v):
    if v is None:
        return "-"
    return f"{v:,.0f}" if v >= 100 else f"{v:.2f}"


def main(path):
    runs = load(path)
    legs = [leg for leg in LEGS if any(k[0] == leg for k in runs)]

    def get(leg, kind, *keys):
        r = runs.get((leg, kind))
        for k in keys:
            if r is None:
                return None
            r = r.get(k)
        return r

    rows = []
    some = next(iter(runs.values()), None)
    for kind, title in [("closed", "closed loop"), ("open-low", "open loop"), ("open-high", "open loop"),
                        ("stream", "streams")]:
        sample = next((runs[(leg, kind)] for leg in legs if (leg, kind) in runs), None)
        if sample is None:
            continue
        where = f"{title} {sample['connections']} conns" if kind == "closed" else f"{title} {sample['rate']:.0f}/s"
        rows.append((f"{where}: calls/s", [get(leg, kind, "rps") for leg in legs], "higher"))
        if kind == "stream":
            rows.append((f"{where}: TTFB p50 ms", [get(leg, kind, "ttfb_ms", "p50") for leg in legs], "lower"))
            rows.append((f"{where}: TTFB p99 ms", [get(leg, kind, "ttfb_ms", "p99") for leg in legs], "lower"))
        rows.append((f"{where}: p50 ms", [get(leg, kind, "latency_ms", "p50") for leg in legs], "lower"))
        rows.append((f"{where}: p99 ms", [get(leg, kind, "latency_ms", "p99") for leg in legs], "lower"))
        failures = [(get(leg, kind, "errors") or 0) + (get(leg, kind, "bad") or 0) + (get(leg, kind, "unsent") or 0)
                    for leg in legs]
        if any(failures):
            rows.append((f"{where}: errors+bad+unsent", failures, "lower"))

    ratio_cols = []
    if "direct" in legs:
        ratio_cols += [(leg, "direct") for leg in legs if leg != "direct"]
    if "litellm" in legs and "paygo" in legs:
        ratio_cols.append(("paygo", "litellm"))
    if "paygo" in legs and "paygo-postgres" in legs:
        ratio_cols.append(("paygo-postgres", "paygo"))
    if "paygo" in legs and "paygo-redis" in legs:
        ratio_cols.append(("paygo-redis", "paygo"))
    added_cols = [leg for leg in legs if leg != "direct"] if "direct" in legs else []

    head = ["metric"] + legs + [f"{a}/{b}" for a, b in ratio_cols] + [f"{leg} added ms" for leg in added_cols]
    table = [head]
    for name, values, _ in rows:
        by_leg = dict(zip(legs, values))
        line = [name] + [fmt(v) for v in values]
        for a, b in ratio_cols:
            x, y = by_leg.get(a), by_leg.get(b)
            line.append(f"{x / y:.2f}x" if x is not None and y else "-")
        for leg in added_cols:
            x, d = by_leg.get(leg), by_leg.get("direct")
            latency = " ms" in name and "calls/s" not in name
            line.append(f"{x - d:+.2f}" if latency and x is not None and d is not None else "")
        table.append(line)
    widths = [max(len(r[i]) for r in table) for i in range(len(head))]
    for i, r in enumerate(table):
        print("  ".join(c.ljust(widths[j]) if j == 0 else c.rjust(widths[j]) for j, c in enumerate(r)))
        if i == 0:
            print("  ".join("-" * w for w in widths))
    if some is not None:
        print("calls/s: higher is better; latencies in ms, lower is better; open-loop latency counts from the"
              " scheduled time when every connection was busy (queueing included).")


if __name__ == "__main__":
    main(sys.argv[1])
