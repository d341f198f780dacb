"""The `bao` CLI against the server: the exact commands an operator and a user type."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from conftest import ROOT_TOKEN, CliResult, FileServer, bao

APP_POLICY = """
path "secret/data/app" {
  capabilities = ["read"]
}
path "kv1/*" {
  capabilities = ["read", "list"]
}
"""


def table(result: CliResult) -> dict[str, str]:
    """The CLI's two-column `Key  Value` table as a dict."""
    rows: dict[str, str] = {}
    seen_rule = False
    for line in result.stdout.splitlines():
        if line.startswith("---"):
            seen_rule = True
            continue
        if not seen_rule or not line.strip():
            continue
        parts = re.split(r"\s{2,}", line.strip(), maxsplit=1)
        rows[parts[0]] = parts[1] if len(parts) > 1 else ""
    return rows


# --- operator commands on a durable server ----------------------------------------------------


def test_operator_init_unseal_status(file_server):
    server: FileServer = file_server()
    before = bao("status", url=server.url)
    assert before.code == 2, before  # sealed (here: not even initialised) exits 2
    assert table(before)["Initialized"] == "false"
    assert table(before)["Sealed"] == "true"

    init = bao("operator", "init", url=server.url).check()
    keys = re.findall(r"^Unseal Key \d+: (\S+)$", init.stdout, re.M)
    root = re.search(r"^Initial Root Token: (\S+)$", init.stdout, re.M)
    assert len(keys) == 5
    assert root
    assert "key threshold of 3" in init.stdout

    sealed = table(bao("status", url=server.url))
    assert sealed["Initialized"] == "true"
    assert sealed["Sealed"] == "true"
    assert (sealed["Total Shares"], sealed["Threshold"]) == ("5", "3")

    for i, key in enumerate(keys[:3], start=1):
        out = bao("operator", "unseal", key, url=server.url).check()
        rows = table(out)
        if i < 3:
            assert rows["Sealed"] == "true"
            assert rows["Unseal Progress"] == f"{i}/3"
        else:
            assert rows["Sealed"] == "false"

    after = bao("status", url=server.url)
    assert after.code == 0, after
    assert table(after)["Sealed"] == "false"
    assert table(after)["Initialized"] == "true"

    me = bao("token", "lookup", "-format=json", url=server.url, token=root.group(1)).check().json()
    assert me["data"]["policies"] == ["root"]


def test_operator_init_json_single_share(file_server):
    server: FileServer = file_server()
    out = bao(
        "operator", "init", "-key-shares=1", "-key-threshold=1", "-format=json", url=server.url
    ).check().json()
    assert out["unseal_shares"] == 1
    assert out["unseal_threshold"] == 1
    assert len(out["unseal_keys_b64"]) == 1
    assert len(out["unseal_keys_hex"]) == 1
    assert out["root_token"]

    status = bao("operator", "unseal", "-format=json", out["unseal_keys_b64"][0], url=server.url)
    assert status.check().json()["sealed"] is False
    status = bao("status", "-format=json", url=server.url)
    assert status.code == 0
    js = status.json()
    assert js["initialized"] is True and js["sealed"] is False
    assert (js["t"], js["n"]) == (1, 1)

    again = bao("operator", "init", "-key-shares=1", "-key-threshold=1", url=server.url)
    assert again.code != 0
    assert "already initialized" in again.stderr


def test_operator_unseal_bad_key(file_server):
    server: FileServer = file_server()
    bao("operator", "init", "-key-shares=1", "-key-threshold=1", url=server.url).check()
    bad = bao("operator", "unseal", "not-a-key", url=server.url)
    assert bad.code == 2
    assert "Error unsealing" in bad.stderr
    assert bao("status", url=server.url).code == 2


# --- user commands on a dev server ------------------------------------------------------------


@pytest.fixture(scope="module")
def url(dev_server) -> str:
    bao("secrets", "enable", "-path=kv1", "kv", url=dev_server.url, token=ROOT_TOKEN).check()
    return dev_server.url


def test_secrets_enable_kv1(dev_server):
    out = bao("secrets", "enable", "-path=kv-extra", "kv", url=dev_server.url, token=ROOT_TOKEN).check()
    assert "Success! Enabled the kv secrets engine at: kv-extra/" in out.stdout
    again = bao("secrets", "enable", "-path=kv-extra", "kv", url=dev_server.url, token=ROOT_TOKEN)
    assert again.code == 2
    assert "path is already in use" in again.stderr


def test_kv_put_get_v2(url: str):
    put = bao("kv", "put", "secret/app", "user=x", url=url, token=ROOT_TOKEN).check()
    assert "secret/data/app" in put.stdout
    assert table(put)["version"] in ("1", "2")

    got = bao("kv", "get", "-format=json", "secret/app", url=url, token=ROOT_TOKEN).check().json()
    assert got["data"]["data"] == {"user": "x"}
    assert got["data"]["metadata"]["destroyed"] is False
    assert got["lease_duration"] == 0

    field = bao("kv", "get", "-field=user", "secret/app", url=url, token=ROOT_TOKEN).check()
    assert field.stdout == "x"


def test_kv_put_get_v1(url: str):
    put = bao("kv", "put", "kv1/foo", "a=b", url=url, token=ROOT_TOKEN).check()
    assert "Success! Data written to: kv1/foo" in put.stdout
    got = bao("kv", "get", "kv1/foo", url=url, token=ROOT_TOKEN).check()
    rows = table(got)
    assert rows["a"] == "b"
    js = bao("kv", "get", "-format=json", "kv1/foo", url=url, token=ROOT_TOKEN).check().json()
    assert js["data"] == {"a": "b"}
    assert js["lease_duration"] == 2764800
    assert js["lease_id"] == ""


def test_kv_get_missing(url: str):
    missing = bao("kv", "get", "secret/never-written", url=url, token=ROOT_TOKEN)
    assert missing.code == 2
    assert "No value found" in missing.stderr


def test_kv_list_and_delete(url: str):
    for key in ("a", "b"):
        bao("kv", "put", f"secret/listed/{key}", "v=1", url=url, token=ROOT_TOKEN).check()
    listed = bao("kv", "list", "-format=json", "secret/listed", url=url, token=ROOT_TOKEN).check().json()
    assert sorted(listed) == ["a", "b"]
    bao("kv", "delete", "secret/listed/a", url=url, token=ROOT_TOKEN).check()
    # A soft-deleted version still shows its metadata, without data.
    deleted = bao("kv", "get", "-format=json", "secret/listed/a", url=url, token=ROOT_TOKEN).check().json()
    assert deleted["data"]["data"] is None
    assert deleted["data"]["metadata"]["deletion_time"] != ""
    bao("kv", "undelete", "-versions=1", "secret/listed/a", url=url, token=ROOT_TOKEN).check()
    assert bao("kv", "get", "-field=v", "secret/listed/a", url=url, token=ROOT_TOKEN).check().stdout == "1"


def test_policy_token_use_and_revoke(url: str, tmp_path: Path):
    bao("kv", "put", "secret/app", "user=x", url=url, token=ROOT_TOKEN).check()
    bao("kv", "put", "secret/other", "user=z", url=url, token=ROOT_TOKEN).check()
    bao("kv", "put", "kv1/foo", "a=b", url=url, token=ROOT_TOKEN).check()

    (tmp_path / "policy.hcl").write_text(APP_POLICY)
    wrote = bao("policy", "write", "app", "policy.hcl", url=url, token=ROOT_TOKEN, cwd=tmp_path).check()
    assert "Success! Uploaded policy: app" in wrote.stdout
    read = bao("policy", "read", "app", url=url, token=ROOT_TOKEN).check()
    assert 'path "secret/data/app"' in read.stdout
    assert "app" in bao("policy", "list", url=url, token=ROOT_TOKEN).check().stdout.split()

    created = bao("token", "create", "-policy=app", "-format=json", url=url, token=ROOT_TOKEN).check().json()
    token = created["auth"]["client_token"]
    assert created["auth"]["policies"] == ["app", "default"]
    assert created["auth"]["renewable"] is True

    # The token reads what its policy grants ...
    got = bao("kv", "get", "-format=json", "secret/app", url=url, token=token).check().json()
    assert got["data"]["data"] == {"user": "x"}
    assert table(bao("kv", "get", "kv1/foo", url=url, token=token).check())["a"] == "b"
    # ... and nothing else.
    denied = bao("kv", "get", "secret/other", url=url, token=token)
    assert denied.code == 2
    assert "permission denied" in denied.stderr
    assert bao("kv", "put", "secret/app", "user=evil", url=url, token=token).code == 2
    assert bao("secrets", "list", url=url, token=token).code == 2
    assert bao("kv", "get", "-field=user", "secret/app", url=url, token=ROOT_TOKEN).check().stdout == "x"

    revoked = bao("token", "revoke", token, url=url, token=ROOT_TOKEN).check()
    assert "Success! Revoked token" in revoked.stdout
    after = bao("kv", "get", "secret/app", url=url, token=token)
    assert after.code == 2
    assert "permission denied" in after.stderr


def test_token_lookup_and_renew(url: str):
    created = bao("token", "create", "-ttl=1h", "-format=json", url=url, token=ROOT_TOKEN).check().json()
    token = created["auth"]["client_token"]
    assert created["auth"]["lease_duration"] == 3600
    looked = bao("token", "lookup", "-format=json", url=url, token=token).check().json()
    assert looked["data"]["id"] == token
    renewed = bao("token", "renew", "-increment=2h", "-format=json", token, url=url, token=ROOT_TOKEN)
    assert renewed.check().json()["auth"]["lease_duration"] == 7200


def test_secrets_list(url: str):
    listed = bao("secrets", "list", url=url, token=ROOT_TOKEN).check()
    paths = [line.split()[0] for line in listed.stdout.splitlines()[2:] if line.strip()]
    for mount in ("cubbyhole/", "identity/", "kv1/", "secret/", "sys/"):
        assert mount in paths
    js = bao("secrets", "list", "-format=json", url=url, token=ROOT_TOKEN).check().json()
    assert js["secret/"]["type"] == "kv"
    assert js["secret/"]["options"]["version"] == "2"
    assert js["kv1/"]["type"] == "kv"
    assert js["sys/"]["type"] == "system"


def test_auth_list(url: str):
    listed = bao("auth", "list", url=url, token=ROOT_TOKEN).check()
    assert any(line.split()[:2] == ["token/", "token"] for line in listed.stdout.splitlines())
    js = bao("auth", "list", "-format=json", url=url, token=ROOT_TOKEN).check().json()
    assert js["token/"]["type"] == "token"
    assert js["token/"]["accessor"].startswith("auth_token_")


def test_no_token_is_refused(url: str):
    out = bao("kv", "get", "secret/app", url=url, token="")
    assert out.code == 2
