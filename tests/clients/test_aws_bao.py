"""The AWS engine through the `bao` CLI, with the commands users type, against moto with
authentication enforced: issue, use, renew, revoke, STS, rotate-root."""

from __future__ import annotations

import json

import pytest

from conftest import ROOT_TOKEN, bao
from moto_fixture import caller_identity, moto, refused_code, wait_for  # noqa: F401

pytestmark = pytest.mark.lessor_only


@pytest.fixture(scope="module")
def cli(dev_server):
    def run(*args: str):
        return bao(*args, url=dev_server.url, token=ROOT_TOKEN)

    return run


@pytest.fixture(scope="module")
def aws_mount(cli, moto):
    """`bao secrets enable aws` + config/root with a root user of its own (rotate-root
    replaces its key)."""
    ak, sk = moto.new_admin("bao-root")
    cli("secrets", "enable", "aws").check()
    cli(
        "write",
        "aws/config/root",
        f"access_key={ak}",
        f"secret_key={sk}",
        "region=us-east-1",
        f"iam_endpoint={moto.url}",
        f"sts_endpoint={moto.url}",
    ).check()
    return {"access_key": ak, "secret_key": sk}


def read_json(cli, *args: str) -> dict:
    """Runs a command with -format=json placed after the command words, before the flags
    and arguments (the CLI stops reading flags at the first argument)."""
    words = 2 if args[0] in ("lease", "secrets") else 1
    return cli(*args[:words], "-format=json", *args[words:]).check().json()


def test_iam_user_issue_use_renew_revoke(cli, moto, aws_mount):
    cli(
        "write",
        "aws/roles/developer-access",
        "policy_arns=arn:aws:iam::aws:policy/ReadOnlyAccess",
        "credential_type=iam_user",
    ).check()
    cli("write", "aws/config/lease", "lease=30m", "lease_max=50m").check()

    # The plain command prints the table users see.
    table = cli("read", "aws/creds/developer-access").check().stdout
    assert "access_key" in table and "secret_key" in table and "lease_id" in table

    creds = read_json(cli, "read", "aws/creds/developer-access")
    assert creds["renewable"] is True
    assert creds["lease_duration"] == 1800
    assert creds["data"]["security_token"] is None
    ak, sk = creds["data"]["access_key"], creds["data"]["secret_key"]
    ident = caller_identity(moto.url, ak, sk)
    user = ident["Arn"].rsplit("/", 1)[1]
    assert user.startswith("vault-root-developer-access-"), user
    attached = moto.iam.list_attached_user_policies(UserName=user)["AttachedPolicies"]
    assert [p["PolicyArn"] for p in attached] == ["arn:aws:iam::aws:policy/ReadOnlyAccess"]

    # -increment=3600 asks past lease_max (50m from issue): cut to the max, with a warning.
    renewed = read_json(cli, "lease", "renew", "-increment=3600", creds["lease_id"])
    assert renewed["lease_id"] == creds["lease_id"]
    assert 2990 <= renewed["lease_duration"] <= 3000
    assert any("exceeded the effective max_ttl" in w for w in renewed.get("warnings") or [])

    cli("lease", "revoke", "-prefix", "aws/creds/developer-access").check()
    wait_for(lambda: not moto.users("vault-root-developer-access-"), 20, what="users deleted")
    assert refused_code(moto.url, ak, sk) == "InvalidClientTokenId"
    listing = cli("list", "-format=json", "sys/leases/lookup/aws/creds/")
    assert listing.code != 0 or "developer-access/" not in listing.json()


def test_sts_assumed_role(cli, moto, aws_mount):
    arn = moto.create_role("ec2-admin-role")
    cli("write", "aws/roles/ec2-admin", "credential_type=assumed_role", f"role_arns={arn}").check()
    out = read_json(cli, "write", "aws/sts/ec2-admin", "ttl=15m")
    assert out["renewable"] is False
    assert 890 <= out["lease_duration"] <= 900
    d = out["data"]
    assert d["security_token"] and d["session_token"] == d["security_token"]
    assert d["arn"].startswith("arn:aws:sts::123456789012:assumed-role/ec2-admin-role/")
    ident = caller_identity(moto.url, d["access_key"], d["secret_key"], d["security_token"])
    assert "assumed-role/ec2-admin-role" in ident["Arn"]
    # Not renewable; revoking is a no-op that succeeds.
    assert cli("lease", "renew", out["lease_id"]).code != 0
    cli("lease", "revoke", out["lease_id"]).check()


def test_rotate_root(cli, moto, aws_mount):
    old_ak, old_sk = aws_mount["access_key"], aws_mount["secret_key"]
    out = read_json(cli, "write", "-force", "aws/config/rotate-root")
    new_ak = out["data"]["access_key"]
    assert new_ak and new_ak != old_ak
    assert refused_code(moto.url, old_ak, old_sk) == "InvalidClientTokenId"
    keys = moto.iam.list_access_keys(UserName="bao-root")["AccessKeyMetadata"]
    assert [k["AccessKeyId"] for k in keys] == [new_ak]
    cfg = read_json(cli, "read", "aws/config/root")["data"]
    assert cfg["access_key"] == new_ak and "secret_key" not in cfg
    # The engine keeps working with the new key.
    cli("write", "aws/roles/after-rotate", "credential_type=iam_user", "policy_arns=arn:aws:iam::aws:policy/ReadOnlyAccess").check()
    creds = read_json(cli, "read", "aws/creds/after-rotate")
    caller_identity(moto.url, creds["data"]["access_key"], creds["data"]["secret_key"])
    cli("lease", "revoke", "-sync", creds["lease_id"]).check()
