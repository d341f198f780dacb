"""`lessor audit report` on the audit log of a real run: AWS leases issued, renewed and
revoked against moto, one lease renewed and never revoked, and a root rotation whose old
key could not be deleted (the credentials' own policy denies iam:DeleteAccessKey)."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import hvac
import hvac.exceptions
import pytest

from conftest import ROOT_TOKEN, hvac_client, server_binary
from moto_fixture import moto  # noqa: F401

pytestmark = pytest.mark.lessor_only

READ_ONLY = "arn:aws:iam::aws:policy/ReadOnlyAccess"
NO_KEY_DELETION = {
    "Version": "2012-10-17",
    "Statement": [
        {"Effect": "Allow", "Action": "*", "Resource": "*"},
        {"Effect": "Deny", "Action": "iam:DeleteAccessKey", "Resource": "*"},
    ],
}


def configure(client: hvac.Client, mount: str, moto, ak: str, sk: str) -> None:
    client.sys.enable_secrets_engine("aws", path=mount)
    client.adapter.post(
        f"/v1/{mount}/config/root",
        json={"access_key": ak, "secret_key": sk, "region": "us-east-1",
              "iam_endpoint": moto.url, "sts_endpoint": moto.url},
    )


def report(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([server_binary(), "audit", "report", *args], capture_output=True, text=True, timeout=60)


def test_report_finds_unrevoked_renewals_and_rotations(dev_server, moto, tmp_path: Path):
    client = hvac_client(dev_server.url, ROOT_TOKEN)
    log = tmp_path / "audit.log"
    client.sys.enable_audit_device("file", path="report", options={"file_path": str(log)})

    ak, sk = moto.admin_key()
    configure(client, "awsr", moto, ak, sk)
    client.adapter.post("/v1/awsr/roles/app", json={"credential_type": "iam_user", "policy_arns": [READ_ONLY]})
    kept = client.adapter.get("/v1/awsr/creds/app")
    gone = client.adapter.get("/v1/awsr/creds/app")
    client.sys.renew_lease(kept["lease_id"], increment=3600)
    client.sys.revoke_lease(gone["lease_id"])

    # A clean root rotation: the engine deletes the old key before it answers.
    ok_ak, ok_sk = moto.new_admin("report-rot-ok")
    configure(client, "awsok", moto, ok_ak, ok_sk)
    client.adapter.post("/v1/awsok/config/rotate-root")

    # A rotation that creates a new key but cannot delete the old one.
    moto.iam.create_user(UserName="report-rot-stuck")
    moto.iam.put_user_policy(UserName="report-rot-stuck", PolicyName="nodelete",
                             PolicyDocument=json.dumps(NO_KEY_DELETION))
    key = moto.iam.create_access_key(UserName="report-rot-stuck")["AccessKey"]
    configure(client, "awsstuck", moto, key["AccessKeyId"], key["SecretAccessKey"])
    with pytest.raises(hvac.exceptions.InvalidRequest, match="deleting the old one failed"):
        client.adapter.post("/v1/awsstuck/config/rotate-root")
    keys = moto.iam.list_access_keys(UserName="report-rot-stuck")["AccessKeyMetadata"]
    assert len(keys) == 2  # what the report must reveal: the old key is still valid

    time.sleep(2)
    client.sys.list_mounted_secrets_engines()  # the log's last entry, 2 s after the issues

    out = report("-format=json", "-bound=1s", str(log))
    assert out.returncode == 0, out.stderr
    doc = json.loads(out.stdout)
    rows = {(m["mount"], m["role"]): m for m in doc["mounts"]}
    app = rows[("awsr/", "app")]
    assert (app["issued"], app["renewed"], app["revoked"], app["live"]) == (2, 1, 1, 1)
    assert app["renewed_never_revoked"] == 1 and app["over_bound"] == 1
    assert [l["lease_id"] for l in doc["renewed_never_revoked"]] == [kept["lease_id"]]
    assert kept["lease_id"] in [l["lease_id"] for l in doc["over_bound"]]
    assert gone["lease_id"] not in [l["lease_id"] for l in doc["over_bound"]]
    assert rows[("awsok/", "root")]["rotations"] == 1
    assert rows[("awsok/", "root")]["rotations_without_revocation"] == 0
    assert rows[("awsstuck/", "root")]["rotations_without_revocation"] == 1
    [stuck] = doc["rotations_without_revocation"]
    assert stuck["mount"] == "awsstuck/" and "deleting the old one failed" in stuck["reason"]

    table = report("-bound=1s", str(log))
    assert table.returncode == 0, table.stderr
    assert "Leases renewed but never revoked:" in table.stdout and kept["lease_id"] in table.stdout
    assert "Rotations that issued a new credential without revoking the old one:" in table.stdout
    assert report(str(log), "-bound=1s").returncode == 1  # flags go first, as everywhere
    client.sys.disable_audit_device("report")
