#!/usr/bin/env python3
"""Lease-manager benchmarks: lessor on durable `file` storage, OpenBao (pebbledb, its faster
durable backend) in the same run where it has the same workload. Prints one JSON document.

Scenarios (`--scenarios`, all by default):

* `issue`   token create (`lessor-loadgen --workload token-create`): issuances per second,
            lessor vs OpenBao pebbledb.
* `restore` (in-process, `lessor-leasebench`) N leases (1M) on file storage: RSS per lease
            (index alone, and total), unseal -> first request served, all scheduled.
* `revoke`  `lessor-test-server`: revoke-prefix of 100k test-engine leases, timed to the job's
            end, with the p99 of other requests (KV v2 reads) during it vs before it.
* `renew`   token renew (`--workload token-renew`) offered at 5k/s (open loop, `--rate`, 64
            in flight at most): p99 and whether the server kept up, lessor vs OpenBao
            pebbledb; and `sys/leases/renew` of test-engine leases (`lease-renew`) on lessor.
* `expiry`  `lessor-test-server`: 100k test-engine leases all expiring in the same second
            (each at its own millisecond); per-lease lateness percentiles as the engine saw
            them, and time to drain.

`--smoke` runs everything tiny (well under a minute of measuring). Each scenario is bounded in
time and recorded as an error in the document if it fails; the run goes on.

Binaries (built by nothing here): target/release/{lessor, lessor-test-server, lessor-loadgen,
lessor-leasebench}; override with LESSOR_BIN, LESSOR_TEST_SERVER_BIN, LESSOR_LOADGEN_BIN,
LESSOR_LEASEBENCH_BIN, BAO_BIN. Reuses bench/run.py's server and load helpers.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import run  # noqa: E402  (bench/run.py)

SCENARIOS = ["issue", "restore", "revoke", "renew", "expiry"]


def test_server_binary() -> str:
    return os.environ.get("LESSOR_TEST_SERVER_BIN", str(run.REPO / "target" / "release" / "lessor-test-server"))


def leasebench_binary() -> str:
    return os.environ.get("LESSOR_LEASEBENCH_BIN", str(run.REPO / "target" / "release" / "lessor-leasebench"))


def lessor_test_file(workdir: Path, port: int, _cluster: int) -> run.Launch:
    config = f'storage "file" {{\n  path = "{workdir / "data"}"\n}}\n' + run.listener(port)
    return run.Launch([test_server_binary(), "server", "-config", "CONFIG"], config, needs_init=True)


LESSOR_TEST = run.Target("lessor-test-file", "lessor", "durable", lessor_test_file)


def log(message: str) -> None:
    run.log(f"leases: {message}")


class Sizes:
    """How big each scenario runs: full figures or `--smoke`."""

    def __init__(self, smoke: bool, leases: int | None):
        self.smoke = smoke
        self.restore_leases = leases or (10_000 if smoke else 1_000_000)
        self.prefix_leases = 2_000 if smoke else 100_000
        self.expiry_leases = 2_000 if smoke else 100_000
        self.duration = 2.0 if smoke else 10.0
        self.warmup = 0.0 if smoke else 2.0
        self.concurrency = 4 if smoke else 32
        # Renewals are offered at a fixed rate (open loop); the concurrency only caps what is in
        # flight, high enough that a server keeping up never hits it.
        self.renew_rate = 500 if smoke else 5000
        self.renew_concurrency = 64


def options(
    duration: float, warmup: float, concurrency: int, requests: int | None = None, rate: float | None = None
) -> run.Options:
    return run.Options(
        workloads=[],
        duration=duration,
        warmup=warmup,
        concurrency=concurrency,
        requests=requests,
        reuse=True,
        rate=rate,
    )


def summary(result: dict) -> dict:
    """The fields of a load generator report worth keeping here."""
    if "error" in result and "throughput" not in result:
        return {"error": result["error"]}
    keep = {k: result.get(k) for k in ("requests", "ok", "errors", "throughput", "latency_ms")}
    if result.get("mode") == "open":
        keep["target_rate"] = result.get("target_rate")
        keep["rate_reached"] = rate_reached(result, result.get("target_rate"))
    server = result.get("server") or {}
    keep["cpu_ms_per_request"] = server.get("cpu_ms_per_request")
    keep["other_cpu_share"] = server.get("other_cpu_share")
    if result.get("error"):
        keep["error"] = result["error"]
    return keep


def against_both(workload: str, opts: run.Options, scratch: Path) -> dict:
    """One workload on lessor (file) and OpenBao (pebbledb), each on a fresh server."""
    out: dict = {}
    for name in ("lessor-file", "openbao-pebbledb"):
        try:
            with run.running(run.TARGETS[name], scratch) as server:
                out[name] = summary(run.run_workload(server, workload, opts))
        except run.StartError as e:
            out[name] = {"error": f"failed to start: {e}"}
    return out


def throughput(r: dict) -> float | None:
    return r.get("throughput") if isinstance(r, dict) else None


def p99(r: dict) -> float | None:
    return ((r or {}).get("latency_ms") or {}).get("p99")


def rate_reached(r: dict, rate: float | None) -> bool:
    """Whether the server kept up with an offered rate: successful requests per second within
    5 % of it. One that falls behind answers fewer (and its p99 then includes the queue)."""
    got = throughput(r)
    return bool(rate and got is not None and abs(got - rate) <= 0.05 * rate)


# --- scenarios ---------------------------------------------------------------------------------


def scenario_issue(sizes: Sizes, scratch: Path) -> dict:
    opts = options(sizes.duration, sizes.warmup, sizes.concurrency)
    both = against_both("token-create", opts, scratch)
    lessor, bao = throughput(both.get("lessor-file", {})), throughput(both.get("openbao-pebbledb", {}))
    return {
        "workload": "token-create",
        "concurrency": opts.concurrency,
        "results": both,
        "lessor_per_s": lessor,
        "ratio_vs_openbao_pebbledb": run.ratio(lessor, bao),
        "target": ">= 10000/s and >= 3x OpenBao pebbledb",
        "met": bool(lessor and bao and lessor >= 10_000 and lessor >= 3 * bao),
    }


def leasebench(args: list[str], timeout: float) -> dict:
    binary = leasebench_binary()
    if not Path(binary).exists():
        raise RuntimeError(f"{binary} not found: cargo build --release -p lessor-leasebench")
    proc = subprocess.run([binary, *args], capture_output=True, text=True, timeout=timeout, check=False)
    try:
        out = json.loads(proc.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        raise RuntimeError(f"leasebench {args[0]} exit {proc.returncode}: {proc.stderr[-800:]}") from None
    if proc.returncode != 0 or "error" in out:
        raise RuntimeError(f"leasebench {args[0]}: {out.get('error')} {proc.stderr[-400:]}")
    return out


def scenario_restore(sizes: Sizes, scratch: Path) -> dict:
    n = sizes.restore_leases
    workdir = Path(tempfile.mkdtemp(prefix="leasebench-", dir=scratch))
    try:
        # Populating 1M leases takes minutes on 2 cores; bounded at 30 min.
        populate = leasebench(["populate", "--dir", str(workdir), "--leases", str(n)], timeout=1800)
        restore = leasebench(["restore", "--dir", str(workdir), "--leases", str(n)], timeout=600)
        disk = sum(f.stat().st_size for f in workdir.rglob("*") if f.is_file())
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return {
        "leases": n,
        "populate": populate,
        "restore": restore,
        "disk_bytes": disk,
        "targets": {
            "index_bytes_per_lease": "<= 200",
            "first_request_ms": "<= 1000",
            "all_scheduled_ms": "<= 2000",
        },
        "met": {
            "index_bytes_per_lease": restore["index_bytes_per_lease"] <= 200,
            "first_request_ms": restore["first_request_ms"] <= 1000,
            "all_scheduled_ms": restore["all_scheduled_ms"] <= 2000,
        },
    }


def populate_leases(server: run.Server, count: int, expire_at: int | None = None, budget: float = 600) -> dict:
    """Issues `count` test-engine leases with the load generator (`lease-issue`)."""
    env_key = "LESSOR_LOADGEN_EXPIRE_AT"
    previous = os.environ.get(env_key)
    if expire_at is not None:
        os.environ[env_key] = str(expire_at)
    try:
        opts = options(budget, 0.0, 32, requests=count)
        return summary(run.run_workload(server, "lease-issue", opts))
    finally:
        if previous is None:
            os.environ.pop(env_key, None)
        else:
            os.environ[env_key] = previous


def mount_test_engine(server: run.Server, **config) -> None:
    status, body = run.http(server.addr, "POST", "sys/mounts/test", token=server.token, body={"type": "lessor-test"})
    if status not in (200, 204):
        raise RuntimeError(f"mounting the test engine: {status} {body}")
    if config:
        status, body = run.http(server.addr, "POST", "test/config", token=server.token, body=config)
        if status not in (200, 204):
            raise RuntimeError(f"configuring the test engine: {status} {body}")


def engine_stats(server: run.Server) -> dict:
    status, body = run.http(server.addr, "GET", "test/stats", token=server.token, timeout=10)
    if status != 200:
        raise RuntimeError(f"test/stats: {status} {body}")
    return body["data"]


def resources(server: run.Server) -> int:
    status, body = run.http(server.addr, "GET", "test/resources", token=server.token, timeout=60)
    if status != 200:
        raise RuntimeError(f"test/resources: {status} {body}")
    return body["data"]["count"]


def kv_versions(server: run.Server, keys: range) -> list[int]:
    out = []
    for k in keys:
        status, body = run.http(server.addr, "GET", f"secret/metadata/bench/{k}", token=server.token, timeout=10)
        out.append(((body or {}).get("data") or {}).get("current_version", 0) if status == 200 else 0)
    return out


def wait_kv_setup(server: run.Server, width: int, before: list[int], keys: int = 1000, timeout: float = 60) -> None:
    """kv2-read's setup writes keys 0..keys-1 in `width` sequential lanes: once each lane's
    last key has a newer version than `before`, setup is over and the warm-up has begun."""
    last = range(keys - width, keys)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if all(now > then for now, then in zip(kv_versions(server, last), before)):
            return
        time.sleep(0.02)
    raise RuntimeError("kv2-read setup did not finish")


def scenario_revoke(sizes: Sizes, scratch: Path) -> dict:
    n = sizes.prefix_leases
    window = 3.0 if not sizes.smoke else 1.0
    with run.running(LESSOR_TEST, scratch) as server:
        mount_test_engine(server, ttl="24h", max_ttl="24h")
        issued = populate_leases(server, n)
        live = resources(server)
        # The other requests: KV v2 reads at low concurrency, before and during the job.
        other = options(window, 0.5, 2)
        baseline = summary(run.run_workload(server, "kv2-read", other))
        done: dict = {}

        def revoke() -> None:
            started = time.monotonic()
            status, body = run.http(
                server.addr, "PUT", "sys/leases/revoke-prefix/test/creds/bench", token=server.token, body={"sync": False}
            )
            if status not in (200, 202, 204):
                done["error"] = f"revoke-prefix: {status} {body}"
                return
            deadline = started + 300
            while time.monotonic() < deadline:
                status, body = run.http(server.addr, "LIST", "sys/leases/jobs", token=server.token, timeout=10)
                for job_id in (body or {}).get("data", {}).get("keys", []):
                    s, job = run.http(server.addr, "GET", f"sys/leases/jobs/{job_id}", token=server.token, timeout=10)
                    job = (job or {}).get("data") or {}
                    if job.get("prefix") == "test/creds/bench" and job.get("state") == "done":
                        done.update(seconds=round(time.monotonic() - started, 3), job=job)
                        return
                time.sleep(0.02)
            done["error"] = "job not done within 300 s"

        # The job starts during the reads' warm-up, so their measured span covers it.
        reads: dict = {}
        before = kv_versions(server, range(1000 - other.concurrency, 1000))
        reader = threading.Thread(target=lambda: reads.update(run.run_workload(server, "kv2-read", other)))
        reader.start()
        wait_kv_setup(server, other.concurrency, before)
        time.sleep(0.3)
        revoke()
        reader.join()
        during = summary(reads)
        left = resources(server)
    seconds = done.get("seconds")
    ratio_p99 = run.ratio(p99(during), p99(baseline))
    return {
        "leases": n,
        "populate": issued,
        "resources_before": live,
        "resources_after": left,
        "revoke_seconds": seconds,
        "job": {k: done.get("job", {}).get(k) for k in ("total", "done", "failed")},
        "error": done.get("error"),
        "other_requests": {"workload": "kv2-read", "concurrency": 2, "baseline": baseline, "during": during},
        "other_p99_ratio": ratio_p99,
        "target": "<= 3 s; other requests' p99 < 2x baseline",
        "met": bool(seconds is not None and seconds <= 3 and ratio_p99 is not None and ratio_p99 < 2 and left == 0),
    }


def scenario_renew(sizes: Sizes, scratch: Path) -> dict:
    """Renewals offered at a fixed rate (5k/s): the p99 at that rate, queueing included, and
    whether the server kept up. With `--smoke` the rate is 500/s, though the keys still say 5k."""
    rate, c = sizes.renew_rate, sizes.renew_concurrency
    opts = options(sizes.duration, sizes.warmup, c, rate=rate)
    tokens = against_both("token-renew", opts, scratch)
    # The lease manager's own renew path (sys/leases/renew), which OpenBao has no engine for here.
    with run.running(LESSOR_TEST, scratch) as server:
        mount_test_engine(server, ttl="1h", max_ttl="24h")
        leases = {"lessor-test-file": summary(run.run_workload(server, "lease-renew", opts))}
    token, lease = tokens.get("lessor-file", {}), leases["lessor-test-file"]
    token_p99, lease_p99 = p99(token), p99(lease)
    kept_up = {"token_renew": rate_reached(token, rate), "lease_renew": rate_reached(lease, rate)}
    return {
        "workload": "token-renew; lease-renew (sys/leases/renew on test-engine leases)",
        "mode": "open loop",
        "rate_per_s": rate,
        "concurrency": c,
        "token_renew": tokens,
        "lease_renew": leases,
        "lessor_p99_ms_at_5k_per_s": token_p99,
        "lease_renew_p99_ms_at_5k_per_s": lease_p99,
        "rate_reached": kept_up,
        "target": "p99 <= 2 ms at 5k renews/s",
        "met": {
            "token_renew": bool(kept_up["token_renew"] and token_p99 is not None and token_p99 <= 2),
            "lease_renew": bool(kept_up["lease_renew"] and lease_p99 is not None and lease_p99 <= 2),
        },
    }


def scenario_expiry(sizes: Sizes, scratch: Path) -> dict:
    n = sizes.expiry_leases
    # Time to issue them all, generously (measured ~3-5k/s on 2 cores), plus a margin.
    budget = max(15.0, n / 1500)
    with run.running(LESSOR_TEST, scratch) as server:
        mount_test_engine(server, max_ttl="24h")
        base = engine_stats(server)["revoke_calls"]
        expire_at = int(time.time() + budget + 5)
        issued = populate_leases(server, n, expire_at=expire_at, budget=budget)
        count = issued.get("ok") or 0
        if time.time() >= expire_at:
            raise RuntimeError(f"issuing {n} leases overran the {budget:.0f} s budget")
        # Sample the revocation counter from just before the second to the end of the drain.
        samples: list[tuple[float, int]] = []
        deadline = expire_at + 60
        while time.time() < deadline:
            revoked = engine_stats(server)["revoke_calls"] - base
            now = time.time()
            if now >= expire_at - 0.5:
                samples.append((now, revoked))
            if count and revoked >= count:
                break
            time.sleep(0.01 if now >= expire_at - 0.5 else 0.1)
        # The counter moves when the engine is called; its resource is deleted in the same
        # durable batch as the lease's removal, a moment later. Drained means no resource is
        # left: polled (a listing, too heavy to sample during the burst) until none is.
        # Every 50 ms: a listing walks the removals' tombstones, and polled every 10 ms it
        # took half a core from the drain it was timing (by a profile).
        left = resources(server)
        while left and time.time() < deadline:
            time.sleep(0.05)
            left = resources(server)
        resources_gone_ms = round((time.time() - expire_at) * 1000, 1) if not left else None
        # Each lease's own lateness: the engine compares the moment it revoked the lease
        # with the lease's expiry (to the millisecond), as the lease manager told it.
        per_lease = engine_stats(server).get("lateness_ms") or {}

    def crossing(fraction: float) -> float | None:
        want = fraction * count
        for t, revoked in samples:
            if revoked >= want:
                return round((t - expire_at) * 1000, 1)
        return None

    since_second = {
        "p50": crossing(0.50),
        "p90": crossing(0.90),
        "p99": crossing(0.99),
        "max": crossing(1.0),
        "first": crossing(1 / max(count, 1)),
    }
    drained = None
    if since_second["max"] is not None and resources_gone_ms is not None:
        drained = max(since_second["max"], resources_gone_ms)
    p99 = per_lease.get("p99")
    return {
        "leases": count,
        "populate": issued,
        "expire_at_unix": expire_at,
        "lateness_ms": per_lease,
        "revoked_since_second_start_ms": since_second,
        "resources_gone_ms": resources_gone_ms,
        "drained_ms": drained,
        "resources_after": left,
        "samples": len(samples),
        "note": "each lease asks for the whole-second TTL that ends in the second expire_at, "
        "counted from the millisecond it is issued, so the leases' expiries spread over that "
        "second (a request crossing a second boundary lands in the next); lateness_ms is per "
        "lease, the engine's revocation time minus the lease's expiry (early = revoked before "
        "it, which must be 0); revoked_since_second_start_ms is the engine's revocation counter "
        "sampled every ~10 ms from the second's start; drained_ms is when the last revocation "
        "was durable (no engine resource left), from the second's start",
        "target": "p99 <= 100 ms, all drained <= 5 s",
        "met": bool(
            p99 is not None
            and p99 <= 100
            and not per_lease.get("early")
            and per_lease.get("count") == count
            and drained is not None
            and drained <= 5000
        ),
    }


RUNNERS = {
    "issue": scenario_issue,
    "restore": scenario_restore,
    "revoke": scenario_revoke,
    "renew": scenario_renew,
    "expiry": scenario_expiry,
}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--scenarios", default=",".join(SCENARIOS), help="comma-separated subset")
    p.add_argument("--smoke", action="store_true", help="everything tiny, for CI")
    p.add_argument("--leases", type=int, help="leases for the restore scenario (default 1M)")
    p.add_argument("--output", help="also write the document to this file")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    names = [s.strip() for s in args.scenarios.split(",") if s.strip()]
    unknown = [s for s in names if s not in RUNNERS]
    if unknown:
        print(f"unknown scenarios: {unknown}; known: {SCENARIOS}", file=sys.stderr)
        return 2
    signal.signal(signal.SIGTERM, run.on_signal)
    sizes = Sizes(args.smoke, args.leases)
    doc: dict = {
        "machine": run.machine_info(),
        "versions": run.versions(),
        "smoke": args.smoke,
        "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "scenarios": {},
    }
    scratch = Path(tempfile.mkdtemp(prefix="lessor-leases-bench-"))
    try:
        for name in names:
            log(f"scenario {name}")
            started = time.monotonic()
            try:
                result = RUNNERS[name](sizes, scratch)
            except Exception as e:  # noqa: BLE001 - one failed scenario must not lose the others
                result = {"error": f"{type(e).__name__}: {e}", "trace": traceback.format_exc()[-1500:]}
            result["elapsed_s"] = round(time.monotonic() - started, 1)
            doc["scenarios"][name] = result
    finally:
        run.stop_all()
        shutil.rmtree(scratch, ignore_errors=True)
    text = json.dumps(doc, indent=2)
    print(text)
    if args.output:
        Path(args.output).write_text(text + "\n")
    return 0


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        sys.exit(main())
