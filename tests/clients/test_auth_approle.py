"""AppRole through hvac and the `bao` CLI: a machine logs in with a role id and a secret id,
gets a token whose policy lets it read exactly one secret, and spent secret ids stop working."""

from __future__ import annotations

import hvac
import hvac.exceptions
import pytest
import requests

from conftest import ROOT_TOKEN, bao, hvac_client

MOUNT = "approle-t"
POLICY = """
path "secret/data/approle-allowed" {
  capabilities = ["read"]
}
"""


@pytest.fixture(scope="module")
def root(dev_server) -> hvac.Client:
    c = hvac_client(dev_server.url, ROOT_TOKEN)
    c.sys.enable_auth_method("approle", path=MOUNT)
    c.sys.create_or_update_policy("approle-reader", POLICY)
    kv = c.secrets.kv.v2
    kv.create_or_update_secret(path="approle-allowed", secret={"k": "visible"}, mount_point="secret")
    kv.create_or_update_secret(path="approle-other", secret={"k": "hidden"}, mount_point="secret")
    return c


def make_role(root: hvac.Client, name: str, **kw) -> str:
    root.auth.approle.create_or_update_approle(
        name, token_policies=["approle-reader"], mount_point=MOUNT, **kw
    )
    return root.auth.approle.read_role_id(name, mount_point=MOUNT)["data"]["role_id"]


def new_secret(root: hvac.Client, name: str, **kw) -> dict:
    return root.auth.approle.generate_secret_id(name, mount_point=MOUNT, **kw)["data"]


def test_hvac_login_reads_only_what_the_policy_allows(root: hvac.Client, dev_server):
    role_id = make_role(root, "web", token_ttl="1h", token_max_ttl="2h")
    secret = new_secret(root, "web", metadata={"team": "blue"})
    client = hvac_client(dev_server.url)
    auth = client.auth.approle.login(role_id, secret["secret_id"], mount_point=MOUNT)["auth"]
    assert auth["policies"] == ["approle-reader", "default"]
    assert auth["metadata"] == {"role_name": "web", "team": "blue"}
    assert auth["lease_duration"] == 3600 and auth["renewable"] is True
    assert client.token == auth["client_token"]

    got = client.secrets.kv.v2.read_secret_version(
        path="approle-allowed", mount_point="secret", raise_on_deleted_version=True
    )
    assert got["data"]["data"] == {"k": "visible"}
    with pytest.raises(hvac.exceptions.Forbidden):
        client.secrets.kv.v2.read_secret_version(
            path="approle-other", mount_point="secret", raise_on_deleted_version=True
        )

    me = client.auth.token.lookup_self()["data"]
    assert me["display_name"] == MOUNT
    assert me["orphan"] is True
    assert me["path"] == f"auth/{MOUNT}/login"
    assert me["meta"]["role_name"] == "web"


def test_bao_cli_login(root: hvac.Client, dev_server):
    role_id = make_role(root, "cli")
    secret = new_secret(root, "cli")
    # The bao CLI has no approle login helper (`-method=approle` is "Unknown auth method"):
    # an AppRole login from the CLI is a write to the login path.
    out = bao(
        "write", "-format=json", f"auth/{MOUNT}/login",
        f"role_id={role_id}", f"secret_id={secret['secret_id']}",
        url=dev_server.url,
    ).check().json()
    token = out["auth"]["client_token"]
    assert "approle-reader" in out["auth"]["policies"]
    ok = bao("kv", "get", "-format=json", "secret/approle-allowed", url=dev_server.url, token=token)
    assert ok.check().json()["data"]["data"] == {"k": "visible"}
    denied = bao("kv", "get", "secret/approle-other", url=dev_server.url, token=token)
    assert denied.code != 0
    assert "permission denied" in denied.stderr + denied.stdout


def test_bad_credentials_answer_400(root: hvac.Client, dev_server):
    role_id = make_role(root, "strict")
    secret = new_secret(root, "strict")
    url = f"{dev_server.url}/v1/auth/{MOUNT}/login"
    for body in (
        {"role_id": role_id, "secret_id": "not-it"},
        {"role_id": "not-it", "secret_id": secret["secret_id"]},
    ):
        r = requests.post(url, json=body, timeout=10)
        assert r.status_code == 400
        assert "invalid role or secret ID" in r.json()["errors"][0]


def test_secret_id_uses_run_out(root: hvac.Client, dev_server):
    role_id = make_role(root, "once", secret_id_num_uses=1)
    secret = new_secret(root, "once")
    assert secret["secret_id_num_uses"] == 1
    client = hvac_client(dev_server.url)
    client.auth.approle.login(role_id, secret["secret_id"], mount_point=MOUNT)
    with pytest.raises(hvac.exceptions.InvalidRequest):
        client.auth.approle.login(role_id, secret["secret_id"], mount_point=MOUNT)
    with pytest.raises(hvac.exceptions.InvalidPath):
        root.auth.approle.list_secret_id_accessors("once", mount_point=MOUNT)


def test_role_and_secret_id_management(root: hvac.Client):
    make_role(root, "mgmt", token_ttl="10m", secret_id_ttl="1h", token_num_uses=3)
    role = root.auth.approle.read_role("mgmt", mount_point=MOUNT)["data"]
    assert role["token_ttl"] == 600
    assert role["secret_id_ttl"] == 3600
    assert role["token_num_uses"] == 3
    assert role["bind_secret_id"] is True
    assert "mgmt" in root.auth.approle.list_roles(mount_point=MOUNT)["data"]["keys"]

    root.auth.approle.update_role_id("mgmt", "my-role-id", mount_point=MOUNT)
    assert root.auth.approle.read_role_id("mgmt", mount_point=MOUNT)["data"]["role_id"] == "my-role-id"

    s = new_secret(root, "mgmt", metadata={"a": "b"})
    custom = root.auth.approle.create_custom_secret_id(
        "mgmt", "custom-secret-value", mount_point=MOUNT
    )["data"]
    assert custom["secret_id"] == "custom-secret-value"
    accessors = root.auth.approle.list_secret_id_accessors("mgmt", mount_point=MOUNT)["data"]["keys"]
    assert sorted(accessors) == sorted([s["secret_id_accessor"], custom["secret_id_accessor"]])

    info = root.auth.approle.read_secret_id("mgmt", s["secret_id"], mount_point=MOUNT)["data"]
    assert info["metadata"] == {"a": "b"}
    assert info["secret_id_accessor"] == s["secret_id_accessor"]
    assert info["secret_id_ttl"] == 3600
    by_acc = root.auth.approle.read_secret_id_accessor(
        "mgmt", s["secret_id_accessor"], mount_point=MOUNT
    )["data"]
    assert by_acc["creation_time"] == info["creation_time"]

    root.auth.approle.destroy_secret_id("mgmt", s["secret_id"], mount_point=MOUNT)
    root.auth.approle.destroy_secret_id_accessor(
        "mgmt", custom["secret_id_accessor"], mount_point=MOUNT
    )
    with pytest.raises(hvac.exceptions.InvalidPath):
        root.auth.approle.list_secret_id_accessors("mgmt", mount_point=MOUNT)
    root.auth.approle.delete_role("mgmt", mount_point=MOUNT)
    with pytest.raises(hvac.exceptions.InvalidPath):
        root.auth.approle.read_role("mgmt", mount_point=MOUNT)


def test_role_without_constraint_is_refused(root: hvac.Client):
    # OpenBao answers 500 here; lessor answers 400 (it is the client's mistake). Both refuse
    # with the same words and create nothing.
    with pytest.raises((hvac.exceptions.InvalidRequest, hvac.exceptions.InternalServerError)) as e:
        root.auth.approle.create_or_update_approle("loose", bind_secret_id=False, mount_point=MOUNT)
    assert "at least one constraint should be enabled on the role" in str(e.value)
    with pytest.raises(hvac.exceptions.InvalidPath):
        root.auth.approle.read_role("loose", mount_point=MOUNT)


def test_tidy(root: hvac.Client, dev_server):
    r = requests.post(
        f"{dev_server.url}/v1/auth/{MOUNT}/tidy/secret-id",
        headers={"X-Vault-Token": ROOT_TOKEN},
        timeout=10,
    )
    assert r.status_code == 202


def test_renewal_stays_within_the_roles_token_max_ttl(root: hvac.Client, dev_server):
    role_id = make_role(root, "capped", token_ttl="30s", token_max_ttl="60s")
    secret = new_secret(root, "capped")
    client = hvac_client(dev_server.url)
    auth = client.auth.approle.login(role_id, secret["secret_id"], mount_point=MOUNT)["auth"]
    assert auth["lease_duration"] == 30
    renewed = client.auth.token.renew_self(increment=3600)["auth"]
    assert 0 < renewed["lease_duration"] <= 60
