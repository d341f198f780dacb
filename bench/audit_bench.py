#!/usr/bin/env python3
"""The cost of auditing: `token-create` throughput with one file audit device on and off.

Runs `lessor-loadgen --workload token-create` against a fresh `lessor server -dev` (release
build) twice per round, once without audit devices and once with a `file` device writing
every request and response entry to a file in the run's scratch directory, alternating the
order each round so background load falls on both. Prints one JSON document: each run, the
median throughput, p50/p99 latency and server CPU per request of each side, and the cost
(`1 - on/off`), checked against the target (15 % by default).

Reuses the server and load-generator plumbing of `run.py` (same binaries, same overrides:
LESSOR_BIN, LESSOR_LOADGEN_BIN). Standard library only.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import run as bench  # noqa: E402

TARGET = bench.TARGETS["lessor-dev"]
WORKLOAD = "token-create"


def one_run(audit: bool, opts: bench.Options, scratch: Path) -> dict:
    with bench.running(TARGET, scratch) as server:
        log = None
        if audit:
            log = Path(tempfile.mkdtemp(prefix="audit-", dir=scratch)) / "audit.log"
            status, body = bench.http(server.addr, "PUT", "sys/audit/file", server.token,
                                      {"type": "file", "options": {"file_path": str(log)}})
            if status != 204:
                return {"audit": audit, "error": f"enabling the audit device answered {status}: {body}"}
        result = bench.run_workload(server, WORKLOAD, opts)
        result["audit"] = audit
        if log is not None and log.exists():
            result["audit_log_bytes"] = log.stat().st_size
        return result


def side(runs: list[dict]) -> dict:
    ok = [r for r in runs if "error" not in r and r.get("throughput")]
    if not ok:
        return {"error": "no successful run"}
    med = lambda f: round(statistics.median(f(r) for r in ok), 3)  # noqa: E731
    cpu = [r["server"]["cpu_ms_per_request"] for r in ok if r.get("server", {}).get("cpu_ms_per_request")]
    return {
        "runs": len(ok),
        "throughput": med(lambda r: r["throughput"]),
        "p50_ms": med(lambda r: r["latency_ms"]["p50"]),
        "p99_ms": med(lambda r: r["latency_ms"]["p99"]),
        "server_cpu_ms_per_request": round(statistics.median(cpu), 4) if cpu else None,
    }


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--duration", type=float, default=10)
    p.add_argument("--warmup", type=float, default=2)
    p.add_argument("--concurrency", type=int, default=16)
    p.add_argument("--rounds", type=int, default=3, help="off/on pairs; medians are reported")
    p.add_argument("--target-cost", type=float, default=0.15)
    p.add_argument("--smoke", action="store_true", help="one short round (CI)")
    p.add_argument("--output")
    a = p.parse_args()
    if a.smoke:
        a.duration, a.warmup, a.rounds, a.concurrency = 2, 0, 1, 4
    opts = bench.Options([WORKLOAD], a.duration, a.warmup, a.concurrency, None, reuse=False)
    runs: list[dict] = []
    with tempfile.TemporaryDirectory(prefix="lessor-audit-bench-") as tmp:
        scratch = Path(tmp)
        for i in range(a.rounds):
            order = (False, True) if i % 2 == 0 else (True, False)
            for audit in order:
                bench.log(f"round {i + 1}/{a.rounds}: audit {'on' if audit else 'off'}")
                try:
                    runs.append(one_run(audit, opts, scratch))
                except bench.StartError as e:
                    runs.append({"audit": audit, "error": f"failed to start: {e}"})
    off, on = side([r for r in runs if not r["audit"]]), side([r for r in runs if r["audit"]])
    doc = {
        "workload": WORKLOAD,
        "machine": bench.machine_info(),
        "options": {"duration": a.duration, "warmup": a.warmup, "concurrency": a.concurrency, "rounds": a.rounds},
        "off": off,
        "on": on,
        "runs": runs,
    }
    if "error" not in off and "error" not in on:
        cost = 1 - on["throughput"] / off["throughput"]
        doc["throughput_cost"] = round(cost, 4)
        if off["server_cpu_ms_per_request"] and on["server_cpu_ms_per_request"]:
            doc["cpu_cost"] = round(on["server_cpu_ms_per_request"] / off["server_cpu_ms_per_request"] - 1, 4)
        doc["target_cost"] = a.target_cost
        doc["within_target"] = cost <= a.target_cost
    text = json.dumps(doc, indent=2)
    print(text)
    if a.output:
        Path(a.output).write_text(text + "\n")
    return 0 if doc.get("within_target", False) or a.smoke else 1


if __name__ == "__main__":
    import signal

    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, bench.on_signal)
    try:
        sys.exit(main())
    finally:
        bench.stop_all()
