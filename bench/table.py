#!/usr/bin/env python3
"""Turns a `bench/run.py` JSON document into the Markdown results table of bench/README.md.

    python bench/table.py results.json

One row per target and workload; targets that were not run, or failed, get a row of dashes so
the table keeps its shape. Standard library only.
"""

from __future__ import annotations

import json
import sys

TARGETS = ["lessor-file", "openbao-raft", "openbao-pebbledb", "lessor-dev", "openbao-dev"]


def cell(value, digits: int = 1) -> str:
    return f"{value:,.{digits}f}" if isinstance(value, (int, float)) else "—"


def rows(document: dict) -> list[str]:
    results = document.get("results", {})
    workloads = document.get("settings", {}).get("workloads") or sorted(
        {w for r in results.values() for w in r.get("workloads", {})}
    )
    out = [
        "| workload | target | req/s | p50 ms | p90 ms | p99 ms | max ms | errors "
        "| server CPU ms/req | other CPU |",
        "|---|---|--:|--:|--:|--:|--:|--:|--:|--:|",
    ]
    for workload in workloads:
        for target in TARGETS + sorted(set(results) - set(TARGETS)):
            r = results.get(target, {}).get("workloads", {}).get(workload)
            if not r or "error" in r:
                out.append(f"| {workload} | {target} | — | — | — | — | — | — | — | — |")
                continue
            lat = r.get("latency_ms", {})
            server = r.get("server", {})
            errors = sum(r.get("errors", {}).values())
            share = server.get("other_cpu_share")
            out.append(
                f"| {workload} | {target} | {cell(r.get('throughput'), 0)} "
                f"| {cell(lat.get('p50'))} | {cell(lat.get('p90'))} | {cell(lat.get('p99'))} "
                f"| {cell(lat.get('max'))} | {errors} | {cell(server.get('cpu_ms_per_request'), 2)} "
                f"| {cell(share * 100, 0) + '%' if isinstance(share, (int, float)) else '—'} |"
            )
    return out


def main() -> int:
    if len(sys.argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    with open(sys.argv[1]) as f:
        document = json.load(f)
    print("\n".join(rows(document)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
