"""Results as JSON, Markdown tables and one PNG chart; the targets, met or missed."""

from __future__ import annotations

import importlib.util
import json
import os
import sys
from collections.abc import Iterable
from typing import Any

ROUTE_LABELS = {
    "untouched": "untouched (no cookie)",
    "untouched+cookie": "untouched (cookie)",
    "read": "read",
    "write": "write",
}


def _rps(rows: Iterable[dict[str, Any]], variant: str, route: str, c: int) -> float | None:
    for row in rows:
        if (row["variant"], row["route"], row["concurrency"]) == (variant, route, c):
            return float(row["rps"])
    return None


def _ratio(a: float | None, b: float | None) -> float | None:
    return None if a is None or not b else a / b


def _fmt_ratio(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}x"


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    return lines + ["| " + " | ".join(row) + " |" for row in rows]


PEER_TARGETS = (
    ("ours-redis", "starsessions-redis", "write", 1.25),
    ("ours-redis", "starsessions-redis", "read", 2.5),
    ("ours-memory", "starsessions-memory", "write", 1.25),
    ("ours-memory", "starlette-cookie", "read", 1.5),
)
"""(ours, peer, route, at least): how far ahead of each peer we mean to be."""


def targets(results: dict[str, Any]) -> list[dict[str, Any]]:
    """Each target with its measured ratio and whether it was met (never asserted)."""
    out: list[dict[str, Any]] = []

    def add(name: str, value: float | None, bound: float, *, at_most: bool = False) -> None:
        if value is not None:
            met = value <= bound if at_most else value >= bound
            sign = "≤" if at_most else "≥"
            out.append(
                {"target": name, "value": round(value, 3), "bound": f"{sign} {bound}x", "met": met}
            )

    direct = results.get("throughput", {}).get("direct", [])
    concurrencies = sorted({row["concurrency"] for row in direct})
    for c in concurrencies:
        bare = _rps(direct, "bare", "untouched", c)
        for store in ("memory", "sqlite", "postgres", "redis"):
            value = _ratio(_rps(direct, f"ours-{store}", "untouched", c), bare)
            add(f"{store}: untouched (no cookie) vs bare, c={c}", value, 0.85)
        bare = _rps(direct, "bare", "untouched+cookie", c)
        for store in ("sqlite", "postgres", "redis"):
            lazy = _rps(direct, f"ours-{store}-lazy", "untouched+cookie", c)
            value = _ratio(lazy, bare)
            add(f"{store} (autoload=False): untouched (cookie) vs bare, c={c}", value, 0.85)
        for store in ("sqlite", "postgres", "redis"):
            for route, bound in (("read", 0.8), ("write", 0.75)):
                value = _ratio(
                    _rps(direct, f"ours-{store}", route, c),
                    _rps(direct, f"floor-{store}", route, c),
                )
                add(f"{store}: {route} vs the raw-driver floor, c={c}", value, bound)
        for ours, peer, route, bound in PEER_TARGETS:
            value = _ratio(_rps(direct, ours, route, c), _rps(direct, peer, route, c))
            add(f"{ours} vs {peer}: {route}, c={c}", value, bound)
        value = _ratio(
            _rps(direct, "ours-tiered", "read", c), _rps(direct, "ours-redis", "read", c)
        )
        add(f"tiered (Redis before PostgreSQL): read vs Redis alone, c={c}", value, 0.9)
        for route in ("read", "write"):
            value = _ratio(
                _rps(direct, "ours-redis-sealed", route, c), _rps(direct, "ours-redis", route, c)
            )
            add(f"redis sealed (KeyRing) vs unsealed: {route}, c={c}", value, 0.9)
        for route in ("untouched", "read"):
            value = _ratio(
                _rps(direct, "ours-memory-otel", route, c), _rps(direct, "ours-memory", route, c)
            )
            add(f"memory with telemetry (API only) vs without: {route}, c={c}", value, 0.95)
    growth = results.get("growth", [])
    for store in dict.fromkeys(row["store"] for row in growth):
        levels = [row for row in growth if row["store"] == store]
        first, last = levels[0], levels[-1]
        for metric in ("read_p50_us", "request_p50_us"):
            what = "store.read" if metric.startswith("read") else "/read request"
            name = f"{store}: {what} p50 at {last['sessions']:,} vs {first['sessions']:,} sessions"
            add(name, _ratio(last[metric], first[metric]), 1.2, at_most=True)
    e2e = results.get("e2e", [])
    for stack in dict.fromkeys(row.get("stack", "asyncio+h11") for row in e2e):
        rps = {
            row["variant"]: row["rps"] for row in e2e if row.get("stack", "asyncio+h11") == stack
        }
        value = _ratio(rps.get("ours-redis"), rps.get("starsessions-redis"))
        add(f"end to end on {stack}: redis /read vs starsessions Redis", value, 1.5)
    for row in results.get("cleanup", []):
        value = _ratio(row["during"]["p99_ms"], row["idle"]["p99_ms"])
        add(
            f"{row['store']}: read p99 during a {row['rows']:,}-row sweep vs idle",
            value,
            2.0,
            at_most=True,
        )
    return out


def markdown(results: dict[str, Any]) -> str:
    """Every section that ran, as Markdown tables."""
    meta = results["meta"]
    lines = [
        f"Run: {meta['date']}, `{meta['command']}` ({meta['size']} size, {meta['seconds']:.0f} s), "
        f"Python {meta['python']}, {meta['cpus']} CPUs, load average {meta['load']} at start.",
        "",
    ]
    lines += [f"- {note}" for note in results.get("notes", [])]
    throughput = results.get("throughput", {})
    if direct := throughput.get("direct"):
        lines += _throughput(direct)
    if round_trips := results.get("round_trips"):
        lines += _round_trips(round_trips)
    if rows := throughput.get("httpx"):
        lines += ["", "### Through httpx's ASGITransport (secondary): `/read`, req/s", ""]
        lines += _simple_rates(rows)
    if rows := results.get("e2e"):
        lines += _e2e(rows)
    if rows := results.get("cleanup"):
        lines += _cleanup(rows)
    if rows := results.get("growth"):
        lines += _growth(rows)
    if checks := results.get("targets"):
        lines += ["", "### Targets", ""]
        body = [
            [t["target"], f"{t['value']:.2f}x", t["bound"], "met" if t["met"] else "**missed**"]
            for t in checks
        ]
        lines += _table(["target", "measured", "wanted", ""], body)
    return "\n".join(lines).strip() + "\n"


def _throughput(direct: list[dict[str, Any]]) -> list[str]:
    lines: list[str] = []
    variants = list(
        dict.fromkeys(row["variant"] for row in direct if not row["variant"].startswith("floor-"))
    )
    for c in sorted({row["concurrency"] for row in direct}):
        lines += [
            "",
            f"### Requests/s, direct ASGI calls, {c} concurrent client{'s' * (c > 1)}",
            "",
        ]
        lines += ["Each cell: median req/s (ratio to the bare app on the same route).", ""]
        body = []
        for variant in variants:
            cells = [variant]
            for route in ROUTE_LABELS:
                rps = _rps(direct, variant, route, c)
                ratio = _ratio(rps, _rps(direct, "bare", route, c))
                cells.append("-" if rps is None else f"{rps:,.0f} ({_fmt_ratio(ratio)})")
            body.append(cells)
        lines += _table(["variant", *ROUTE_LABELS.values()], body)
    lines += ["", "### Against peers (same run, same routes)", ""]
    pairs = [
        ("ours-memory", "starlette-cookie"),
        ("ours-memory", "starsessions-memory"),
        ("ours-redis", "starsessions-redis"),
        ("ours-redis-sealed", "ours-redis"),
        ("ours-sentinel", "ours-redis"),
        ("ours-sentinel-wait", "ours-sentinel"),
        ("ours-memory-otel", "ours-memory"),
    ]
    body = []
    measured = {row["variant"] for row in direct}
    for ours, peer in pairs:
        if not {ours, peer} <= measured:  # left out by --variants, or its server was down
            continue
        for route in ("read", "write", "untouched+cookie"):
            cells = [f"{ours} / {peer}", ROUTE_LABELS[route]]
            for c in sorted({row["concurrency"] for row in direct}):
                cells.append(
                    _fmt_ratio(_ratio(_rps(direct, ours, route, c), _rps(direct, peer, route, c)))
                )
            body.append(cells)
    cs = sorted({row["concurrency"] for row in direct})
    lines += _table(["ours / peer", "route", *(f"c={c}" for c in cs)], body)
    lines += ["", "### Against the raw-driver floor (one round trip; read+write for /write)", ""]
    body = []
    for store in ("sqlite", "postgres", "redis", "mysql"):
        for route in ("read", "write"):
            for c in cs:
                base = _rps(direct, f"floor-{store}", route, c)
                mine = _rps(direct, f"ours-{store}", route, c)
                if base is None or mine is None:
                    continue
                row = [f"{base:,.0f}", f"{mine:,.0f}", _fmt_ratio(mine / base)]
                body.append([store, route, str(c), *row])
    lines += _table(
        ["store", "route", "clients", "floor req/s", "ours req/s", "ours / floor"], body
    )
    return lines


def _round_trips(round_trips: dict[str, dict[str, dict[str, float]]]) -> list[str]:
    labels = list(next(iter(round_trips.values())))
    body = []
    for variant, routes in round_trips.items():
        cells = [variant]
        for label in labels:
            calls = routes[label]
            detail = ", ".join(f"{name} {n:g}" for name, n in calls.items() if name != "total")
            cells.append(f"{calls['total']:g}" + (f" ({detail})" if detail else ""))
        body.append(cells)
    header = ["store", *(ROUTE_LABELS.get(label, label) for label in labels)]
    return ["", "### Store round trips per request (RecordingStore)", "", *_table(header, body)]


def _simple_rates(rows: list[dict[str, Any]]) -> list[str]:
    cs = sorted({row["concurrency"] for row in rows})
    body = []
    for variant in dict.fromkeys(row["variant"] for row in rows):
        cells = [variant]
        for c in cs:
            rps = _rps(rows, variant, "read", c)
            ratio = _ratio(rps, _rps(rows, "bare", "read", c))
            cells.append("-" if rps is None else f"{rps:,.0f} ({_fmt_ratio(ratio)})")
        body.append(cells)
    return _table(["variant", *(f"c={c}" for c in cs)], body)


def _e2e(rows: list[dict[str, Any]]) -> list[str]:
    tool = rows[0]["tool"]
    lines = ["", f"### End to end: uvicorn, 1 worker, {tool} with 50 connections on `/read`", ""]
    body = []
    for stack in dict.fromkeys(row.get("stack", "asyncio+h11") for row in rows):
        on_stack = [row for row in rows if row.get("stack", "asyncio+h11") == stack]
        bare = next((row["rps"] for row in on_stack if row["variant"] == "bare"), None)
        body += [
            [
                stack,
                row["variant"],
                f"{row['rps']:,.0f}",
                _fmt_ratio(_ratio(row["rps"], bare)),
                f"{row.get('p50_ms', 0):.2f}",
                f"{row.get('p99_ms', 0):.2f}",
            ]
            for row in on_stack
        ]
    header = ["uvicorn loop+http", "variant", "req/s", "x bare", "p50 ms", "p99 ms"]
    return lines + _table(header, body)


def _cleanup(rows: list[dict[str, Any]]) -> list[str]:
    body = [
        [
            row["store"],
            f"{row['removed']:,}",
            f"{row['seconds']:.1f}",
            f"{row['rows_per_s']:,}",
            f"{row['idle']['p50_ms']:.3f} / {row['idle']['p99_ms']:.3f}",
            f"{row['during']['p50_ms']:.3f} / {row['during']['p99_ms']:.3f}",
            _fmt_ratio(_ratio(row["during"]["p99_ms"], row["idle"]["p99_ms"])),
        ]
        for row in rows
    ]
    header = ["store", "expired rows swept", "seconds", "rows/s", "idle read p50 / p99 ms",
              "read during sweep p50 / p99 ms", "p99 during / idle"]  # fmt: skip
    return ["", "### Cleanup: sweeping expired rows (batches of 1000)", "", *_table(header, body)]


def _growth(rows: list[dict[str, Any]]) -> list[str]:
    body = [
        [
            row["store"],
            f"{row['sessions']:,}",
            f"{row['read_p50_us']:.0f} / {row['read_p99_us']:.0f}",
            f"{row['request_p50_us']:.0f} / {row['request_p99_us']:.0f}",
        ]
        for row in rows
    ]
    header = ["store", "live sessions", "store.read p50 / p99 µs", "/read request p50 / p99 µs"]
    return ["", "### Read latency as sessions grow (random sessions)", "", *_table(header, body)]


FLOORED = ("sqlite", "postgres", "redis", "mysql")
PEER_PAIRS = (
    ("ours-redis", "starsessions-redis"),
    ("ours-memory", "starsessions-memory"),
    ("ours-memory", "starlette-cookie"),
)


def chart(results: dict[str, Any], path: str) -> None:
    """One PNG that answers "how close to the limit is each store": on the left, each
    store's req/s as a share of its raw-driver floor (1.0 is the driver alone) per route
    and concurrency; on the right, ours against each peer (above 1.0: ours is faster).

    Needs matplotlib (the ``bench`` extra); ``write`` skips the chart without it.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    direct = results.get("throughput", {}).get("direct", [])
    if not direct:
        return
    cs = sorted({row["concurrency"] for row in direct})
    series = [(route, c) for route in ("read", "write") for c in cs]
    figure, (floors, peers) = plt.subplots(1, 2, figsize=(13, 5.5))
    height = 0.8 / len(series)

    def bars(axis: Any, labels: list[str], ratio: Any) -> None:
        for index, (route, c) in enumerate(series):
            values = [ratio(label, route, c) or 0.0 for label in labels]
            positions = [i + index * height for i in range(len(labels))]
            axis.barh(positions, values, height=height, label=f"/{route}, {c} client(s)")
        axis.set_yticks([i + 0.4 - height / 2 for i in range(len(labels))], labels)
        axis.invert_yaxis()
        axis.axvline(1.0, color="black", linewidth=1)
        axis.grid(axis="x", alpha=0.3)
        axis.legend(loc="lower right", fontsize="small")

    stores = [s for s in FLOORED if any(r["variant"] == f"floor-{s}" for r in direct)]
    bars(
        floors,
        stores,
        lambda store, route, c: _ratio(
            _rps(direct, f"ours-{store}", route, c), _rps(direct, f"floor-{store}", route, c)
        ),
    )
    floors.axvline(0.8, color="grey", linestyle="--", linewidth=1)
    floors.set_xlabel("ours / raw driver doing the same round trips (1.0 = the limit)")
    floors.set_title("How close to the driver")
    pairs = [f"{ours} / {peer}" for ours, peer in PEER_PAIRS]
    bars(
        peers,
        pairs,
        lambda pair, route, c: _ratio(
            _rps(direct, pair.split(" / ")[0], route, c),
            _rps(direct, pair.split(" / ")[1], route, c),
        ),
    )
    peers.set_xlabel("ours / peer, same run (above 1.0: ours is faster)")
    peers.set_title("Against the peers")
    figure.suptitle(
        f"asgi_sessions benchmarks ({results['meta']['size']} run, {results['meta']['date']},"
        " direct ASGI calls, medians)"
    )
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def write(results: dict[str, Any], out: str) -> str:
    """Write latest.json, latest.md and latest.png into ``out``; return the Markdown.

    Without matplotlib the tables are written and the chart is skipped with a note.
    """
    os.makedirs(out, exist_ok=True)
    results["targets"] = targets(results)
    text = markdown(results)
    with open(os.path.join(out, "latest.json"), "w") as file:
        json.dump(results, file, indent=2)
        file.write("\n")
    with open(os.path.join(out, "latest.md"), "w") as file:
        file.write(text)
    png = os.path.join(out, "latest.png")
    if importlib.util.find_spec("matplotlib") is None:
        if os.path.exists(png):
            os.remove(png)  # a chart of an older run must not pass for this one's
        print(
            f"note: matplotlib is not installed, so no chart was drawn ({png});"
            " pip install 'asgi-server-sessions[bench]' for one",
            file=sys.stderr,
        )
    else:
        chart(results, png)
    return text
