"""AppRole logins per second: lessor (file storage) against OpenBao (pebbledb and raft) in the
same run, through `bench/run.py`'s targets and the load generator's `approle-login` workload.

Prints one JSON document: the machine, each target's result (as run.py reports it), and the
throughput ratio of lessor-file to the faster durable OpenBao target against the goal (3x).

    cargo build --release -p lessor-loadgen -p lessor-cli
    .venv/bin/python bench/approle_bench.py [--duration 10] [--repeat 3] [--output F]

Binaries and servers as in run.py (`LESSOR_BIN`, `LESSOR_LOADGEN_BIN`, `BAO_BIN`); every
server is stopped before it exits. Exit 1 with `--strict` when a target failed.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import run  # noqa: E402  (bench/run.py: targets, server lifecycle, load generator driver)

WORKLOAD = "approle-login"
TARGETS = ["lessor-file", "openbao-pebbledb", "openbao-raft"]
GOAL = 3.0


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--targets", default=",".join(TARGETS))
    p.add_argument("--duration", type=float, default=10.0, help="measured seconds per run")
    p.add_argument("--warmup", type=float, default=2.0)
    p.add_argument("--concurrency", type=int, default=32)
    p.add_argument("--requests", type=int, default=None, help="cap on measured requests")
    p.add_argument("--repeat", type=int, default=1, help="runs per target; the median is reported")
    p.add_argument("--output", help="also write the JSON document to this file")
    p.add_argument("--strict", action="store_true", help="exit 1 if a target failed")
    args = p.parse_args(argv)
    args.targets = [t for t in args.targets.split(",") if t]
    unknown = [t for t in args.targets if t not in run.TARGETS]
    if unknown:
        p.error(f"unknown targets {unknown}; known: {', '.join(run.TARGETS)}")
    return args


def summary(results: dict) -> dict:
    """Logins/s per target, and lessor-file against the faster durable OpenBao target."""
    rates = {
        name: (r.get("workloads", {}).get(WORKLOAD) or {}).get("throughput")
        for name, r in results.items()
    }
    durable = {n: v for n, v in rates.items() if n.startswith("openbao-") and n != "openbao-dev"}
    out: dict = {"logins_per_second": rates, "goal_ratio": GOAL}
    ours = run.ok_result(results, "lessor-file", WORKLOAD)
    theirs = [(n, run.ok_result(results, n, WORKLOAD)) for n in durable]
    theirs = [(n, r) for n, r in theirs if r]
    if ours and theirs:
        name, best = max(theirs, key=lambda c: c[1]["throughput"])
        ratio = run.ratio(ours["throughput"], best["throughput"])
        out["compared_with"] = name
        out["ratio"] = ratio
        out["meets_goal"] = ratio is not None and ratio >= GOAL
    else:
        out["ratio"] = None
        out["meets_goal"] = None
    return out


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, run.on_signal)
    opts = run.Options(
        [WORKLOAD],
        args.duration,
        args.warmup,
        args.concurrency,
        args.requests,
        False,
        max(1, args.repeat),
    )
    document: dict = {
        "benchmark": "approle-login",
        "started_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": run.machine_info(),
        "versions": run.versions(),
        "settings": {
            "targets": args.targets,
            "duration_seconds": opts.duration,
            "warmup_seconds": opts.warmup,
            "concurrency": opts.concurrency,
            "requests_cap": opts.requests,
            "repeat": opts.repeat,
        },
        "results": {},
    }
    if not Path(run.loadgen_binary()).exists():
        document["error"] = f"load generator not found at {run.loadgen_binary()}"
    else:
        try:
            with tempfile.TemporaryDirectory(prefix="lessor-approle-bench-") as scratch:
                document["results"] = run.run_all(args.targets, opts, Path(scratch))
        finally:
            run.stop_all()
        document["summary"] = summary(document["results"])
    failed = "error" in document or any(
        "error" in r or any("error" in w for w in r.get("workloads", {}).values())
        for r in document["results"].values()
    )
    text = json.dumps(document, indent=2)
    print(text)
    if args.output:
        Path(args.output).write_text(text + "\n")
    return 1 if failed and args.strict else 0


if __name__ == "__main__":
    sys.exit(main())
