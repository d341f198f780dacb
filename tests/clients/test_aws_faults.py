"""The AWS engine when things break: the AWS endpoint unreachable during revocations, and
lessor killed with SIGKILL in the middle of an issuance storm."""

from __future__ import annotations

import os
import random
import threading
import time
from pathlib import Path

import hvac.exceptions
import pytest
import requests

from conftest import ROOT_TOKEN, FileServer, hvac_client
from moto_fixture import moto, wait_for  # noqa: F401

pytestmark = pytest.mark.lessor_only

READ_ONLY = "arn:aws:iam::aws:policy/ReadOnlyAccess"


def configure(client, mount: str, moto, endpoint: str) -> None:
    client.sys.enable_secrets_engine("aws", path=mount)
    ak, sk = moto.admin_key()
    client.adapter.post(
        f"/v1/{mount}/config/root",
        json={
            "access_key": ak,
            "secret_key": sk,
            "region": "us-east-1",
            "iam_endpoint": endpoint,
            "sts_endpoint": endpoint,
            "max_retries": 1,
        },
    )


def lease_ids(client, prefix: str) -> list[str]:
    try:
        keys = client.adapter.request("LIST", f"/v1/sys/leases/lookup/{prefix}/")["data"]["keys"]
    except hvac.exceptions.InvalidPath:
        return []
    return [f"{prefix}/{k}" for k in keys]


def test_endpoint_down_during_revocation_then_back(dev_server, moto):
    """Expired leases whose revocation fails stay recorded and are retried with backoff;
    once AWS answers again every user is deleted and no lease is lost."""
    client = hvac_client(dev_server.url, ROOT_TOKEN)
    configure(client, "awsfault", moto, moto.proxy.url)
    client.adapter.post("/v1/awsfault/config/lease", json={"lease": "2s", "lease_max": "1h"})
    client.adapter.post("/v1/awsfault/roles/flaky", json={"credential_type": "iam_user", "policy_arns": READ_ONLY})
    for _ in range(2):
        client.adapter.get("/v1/awsfault/creds/flaky")
    users = moto.users("vault-root-flaky-")
    assert len(users) == 2

    moto.proxy.close()
    try:
        # Past expiry: the first revocation attempt fails; the leases are still there.
        time.sleep(4)
        assert len(lease_ids(client, "awsfault/creds/flaky")) == 2
        assert len(moto.users("vault-root-flaky-")) == 2
    finally:
        moto.proxy.open()
    # The retry comes 10-30 s after the failure (10 s x 2^1, +-50 %).
    wait_for(lambda: not moto.users("vault-root-flaky-"), 60, interval=0.5, what="users deleted on retry")
    wait_for(lambda: not lease_ids(client, "awsfault/creds/flaky"), 10, what="leases forgotten")


def test_sigkill_during_issuance_storm(tmp_path: Path, moto):
    """SIGKILL at random points of an issuance storm, round after round (20 by default, about
    200 credentials in all); after the last restart and the pending deadline, the IAM users in
    moto are exactly the users of active leases: nothing leaked, nothing handed out lost."""
    rounds = int(os.environ.get("LESSOR_CRASH_ROUNDS", "20"))
    rng = random.Random(int(os.environ.get("LESSOR_CRASH_SEED", "7")))
    server = FileServer(tmp_path / "crash")
    with open(server.config_path, "a") as f:
        f.write("pending_lease_deadline = 2\n")
    server.start()
    init = server.init_and_unseal()
    token = init["root_token"]
    client = hvac_client(server.url, token)
    configure(client, "aws", moto, moto.url)
    client.adapter.post("/v1/aws/roles/storm", json={"credential_type": "iam_user", "policy_arns": READ_ONLY})

    handed_out: list[str] = []
    for _ in range(rounds):
        stop = threading.Event()
        this_round: list[str] = []

        def issue() -> None:
            s = requests.Session()
            while not stop.is_set():
                try:
                    r = s.get(f"{server.url}/v1/aws/creds/storm", headers={"X-Vault-Token": token}, timeout=10)
                except requests.RequestException:
                    return
                if r.status_code == 200:
                    this_round.append(r.json()["data"]["access_key"])

        threads = [threading.Thread(target=issue) for _ in range(6)]
        for t in threads:
            t.start()
        # Kill at a random point: after a random number of answers, plus a random delay so
        # the kill also lands between reserve and activate of requests in flight.
        target = rng.randint(2, 18)
        wait_for(lambda: len(this_round) >= target, 30, interval=0.01, what="issuance under way")
        time.sleep(rng.random() * 0.05)
        server.kill()
        stop.set()
        for t in threads:
            t.join(timeout=15)
        handed_out.extend(this_round)
        server.start()
        server.unseal(init["keys"])

    client = hvac_client(server.url, token)

    def converged():
        users = moto.users("vault-root-storm-")
        leases = lease_ids(client, "aws/creds/storm")
        return len(users) == len(leases) and (users, leases)

    time.sleep(2.5)  # the pending deadline of the last round's reservations
    users, leases = wait_for(converged, 60, interval=0.5, what="IAM users == active leases")
    keys = {
        k["AccessKeyId"]
        for u in users
        for k in moto.iam.list_access_keys(UserName=u)["AccessKeyMetadata"]
    }
    # Every credential a client received is still covered by a lease and still exists.
    assert set(handed_out) <= keys
    assert len(users) >= len(handed_out)
    # And revoking them all leaves nothing behind.
    client.sys.revoke_prefix("aws/creds/storm")
    wait_for(lambda: not moto.users("vault-root-storm-"), 120, what="all storm users revoked")
    server.stop()
