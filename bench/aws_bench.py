#!/usr/bin/env python3
"""AWS engine benchmark against moto (loopback only, bounded in count and time).

1. Issuance: N `aws/creds/<role>` reads through lessor (CreateUser, AttachUserPolicy,
   CreateAccessKey per credential) against the same three IAM calls made directly with
   boto3 in the same run, at the same concurrency: latency percentiles, throughput and
   the overhead ratio lessor/direct.
2. Revocation: `sys/leases/revoke-prefix` (sync) of U users: wall time, users/s and IAM
   calls/s (counted exactly by a relay in front of moto: moto closes each connection after
   one response).

Prints one JSON document (and writes it with --out).

    .venv/bin/python bench/aws_bench.py --lessor-bin target/release/lessor --issue 200 --users 1000
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "clients"))

from moto_fixture import MotoServer, aws_client  # noqa: E402

READ_ONLY = "arn:aws:iam::aws:policy/ReadOnlyAccess"
TOKEN = "root"


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def percentile(xs: list[float], p: float) -> float:
    xs = sorted(xs)
    if not xs:
        return 0.0
    k = min(len(xs) - 1, max(0, round(p / 100 * (len(xs) - 1))))
    return xs[k]


def summary(latencies: list[float], wall: float) -> dict:
    ms = [x * 1000 for x in latencies]
    return {
        "count": len(ms),
        "wall_s": round(wall, 3),
        "throughput_per_s": round(len(ms) / wall, 1) if wall else 0.0,
        "p50_ms": round(percentile(ms, 50), 2),
        "p90_ms": round(percentile(ms, 90), 2),
        "p99_ms": round(percentile(ms, 99), 2),
        "mean_ms": round(statistics.fmean(ms), 2) if ms else 0.0,
    }


def run_parallel(n: int, concurrency: int, fn) -> tuple[list[float], float]:
    latencies: list[float] = []
    lock = threading.Lock()

    def one(i: int) -> None:
        t0 = time.perf_counter()
        fn(i)
        dt = time.perf_counter() - t0
        with lock:
            latencies.append(dt)

    start = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool:
        list(pool.map(one, range(n)))
    return latencies, time.perf_counter() - start


class Lessor:
    def __init__(self, binary: str, log: Path):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc = subprocess.Popen(
            [binary, "server", "-dev", f"-dev-root-token-id={TOKEN}", f"-dev-listen-address=127.0.0.1:{self.port}"],
            stdout=open(log, "ab"),
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env={k: v for k, v in os.environ.items() if not k.startswith(("VAULT_", "BAO_"))},
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if requests.get(f"{self.url}/v1/sys/health", timeout=1).status_code == 200:
                    return
            except requests.RequestException:
                pass
            time.sleep(0.05)
        self.stop()
        raise RuntimeError("lessor did not start")

    def call(self, method: str, path: str, session=None, **kw) -> requests.Response:
        r = (session or requests).request(method, f"{self.url}/v1/{path}", headers={"X-Vault-Token": TOKEN}, timeout=600, **kw)
        if r.status_code >= 400:
            raise RuntimeError(f"{method} {path}: {r.status_code} {r.text[:300]}")
        return r

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--lessor-bin", default=str(ROOT / "target" / "release" / "lessor"))
    ap.add_argument("--issue", type=int, default=200, help="credentials issued per side")
    ap.add_argument("--users", type=int, default=1000, help="users revoked by one revoke-prefix")
    ap.add_argument("--concurrency", type=int, default=4)
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()
    if not (1 <= args.issue <= 5000 and 1 <= args.users <= 5000 and 1 <= args.concurrency <= 64):
        ap.error("bounds: issue and users 1..5000, concurrency 1..64")

    logs = Path(tempfile.mkdtemp(prefix="aws-bench-"))
    moto = MotoServer(logs / "moto.log")
    lessor = None
    try:
        lessor = Lessor(args.lessor_bin, logs / "lessor.log")
        ak, sk = moto.admin_key()
        endpoint = moto.proxy.url
        lessor.call("POST", "sys/mounts/aws", json={"type": "aws"})
        lessor.call(
            "POST",
            "aws/config/root",
            json={"access_key": ak, "secret_key": sk, "region": "us-east-1", "iam_endpoint": endpoint, "sts_endpoint": endpoint},
        )
        lessor.call("POST", "aws/roles/bench", json={"credential_type": "iam_user", "policy_arns": READ_ONLY})
        lessor.call("POST", "aws/config/lease", json={"lease": "1h", "lease_max": "2h"})

        # Warm both paths (moto's first IAM call loads its managed policies).
        lessor.call("GET", "aws/creds/bench")
        local = threading.local()

        def iam():
            if not hasattr(local, "iam"):
                local.iam = aws_client("iam", endpoint, ak, sk)
            return local.iam

        def direct(i: int) -> None:
            name = f"direct-{uuid.uuid4().hex[:20]}"
            c = iam()
            c.create_user(UserName=name, Path="/")
            c.attach_user_policy(UserName=name, PolicyArn=READ_ONLY)
            c.create_access_key(UserName=name)

        def via_lessor(i: int) -> None:
            if not hasattr(local, "session"):
                local.session = requests.Session()
            lessor.call("GET", "aws/creds/bench", session=local.session)

        direct(0)
        # Alternate rounds so neither side gets a quieter machine.
        lat_d: list[float] = []
        lat_l: list[float] = []
        wall_d = wall_l = 0.0
        rounds = 2
        for _ in range(rounds):
            part = max(1, args.issue // rounds)
            l, w = run_parallel(part, args.concurrency, direct)
            lat_d += l
            wall_d += w
            l, w = run_parallel(part, args.concurrency, via_lessor)
            lat_l += l
            wall_l += w
        direct_s = summary(lat_d, wall_d)
        lessor_s = summary(lat_l, wall_l)
        issuance = {
            "iam_calls_per_credential": 3,
            "concurrency": args.concurrency,
            "direct_boto3": direct_s,
            "lessor": lessor_s,
            "overhead_ratio_p50": round(lessor_s["p50_ms"] / direct_s["p50_ms"], 2) if direct_s["p50_ms"] else None,
            "overhead_ratio_throughput": round(direct_s["throughput_per_s"] / lessor_s["throughput_per_s"], 2)
            if lessor_s["throughput_per_s"]
            else None,
        }

        # Top up to --users leases, then one synchronous revoke-prefix.
        have = len(lessor.call("LIST", "sys/leases/lookup/aws/creds/bench/").json()["data"]["keys"])
        missing = max(0, args.users - have)
        fill_start = time.perf_counter()
        run_parallel(missing, args.concurrency, via_lessor)
        fill_s = time.perf_counter() - fill_start
        users = len(lessor.call("LIST", "sys/leases/lookup/aws/creds/bench/").json()["data"]["keys"])
        calls_before = moto.proxy.accepted
        t0 = time.perf_counter()
        lessor.call("PUT", "sys/leases/revoke-prefix/aws/creds/bench", json={"sync": True})
        revoke_s = time.perf_counter() - t0
        calls = moto.proxy.accepted - calls_before
        left = [u for u in moto.users("vault-") if "-bench-" in u]
        revocation = {
            "users": users,
            "fill_s": round(fill_s, 2),
            "revoke_prefix_s": round(revoke_s, 3),
            "users_per_s": round(users / revoke_s, 1) if revoke_s else None,
            "iam_calls": calls,
            "iam_calls_per_user": round(calls / users, 2) if users else None,
            "iam_calls_per_s": round(calls / revoke_s, 1) if revoke_s else None,
            "users_left": len(left),
        }
        result = {
            "benchmark": "aws_engine",
            "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "lessor_bin": args.lessor_bin,
            "issuance": issuance,
            "revocation": revocation,
        }
        text = json.dumps(result, indent=2)
        print(text)
        if args.out:
            args.out.write_text(text + "\n")
        return 0 if not left else 1
    finally:
        if lessor is not None:
            lessor.stop()
        moto.stop()


if __name__ == "__main__":
    sys.exit(main())
