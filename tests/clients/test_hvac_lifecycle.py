"""A durable server's life through hvac: init, unseal, use, restart, unseal, everything is back."""

from __future__ import annotations

import hvac
import hvac.exceptions
import pytest

from conftest import FileServer, hvac_client, wait_active

APP_POLICY = """
path "secret/data/app" {
  capabilities = ["read"]
}
path "kv1/*" {
  capabilities = ["read", "list"]
}
"""


def seal_status(server: FileServer) -> dict:
    return hvac_client(server.url).sys.read_seal_status()


def unseal_with(server: FileServer, keys: list[str], threshold: int) -> None:
    c = hvac_client(server.url)
    status = c.sys.read_seal_status()
    assert status["sealed"] is True
    assert status["progress"] == 0
    for i, key in enumerate(keys[:threshold], start=1):
        status = c.sys.submit_unseal_key(key)
        if i < threshold:
            assert status["sealed"] is True
            assert status["progress"] == i
        else:
            assert status["sealed"] is False
            assert status["progress"] == 0
    wait_active(server.url)


def test_init_and_unseal_with_three_of_five(file_server):
    server = file_server()
    c = hvac_client(server.url)
    assert c.sys.is_initialized() is False
    status = c.sys.read_seal_status()
    assert status["initialized"] is False
    assert status["sealed"] is True
    assert status["type"] == "shamir"

    init = c.sys.initialize(5, 3)
    assert len(init["keys"]) == 5
    assert len(init["keys_base64"]) == 5
    assert len(set(init["keys"])) == 5
    assert init["root_token"]
    assert c.sys.is_initialized() is True
    with pytest.raises(hvac.exceptions.InvalidRequest):
        c.sys.initialize(5, 3)

    status = c.sys.read_seal_status()
    assert status["initialized"] is True
    assert status["sealed"] is True
    assert (status["t"], status["n"], status["progress"]) == (3, 5, 0)

    # Sealed: ordinary requests are refused with 503, even with the root token.
    with pytest.raises(hvac.exceptions.VaultDown):
        hvac_client(server.url, init["root_token"]).sys.list_mounted_secrets_engines()

    # A reset discards partial progress.
    c.sys.submit_unseal_key(init["keys"][0])
    assert c.sys.read_seal_status()["progress"] == 1
    c.sys.submit_unseal_key(reset=True)
    assert c.sys.read_seal_status()["progress"] == 0

    # Base64 and hex forms of the shares are both accepted; any three of five unseal.
    c.sys.submit_unseal_key(init["keys_base64"][4])
    c.sys.submit_unseal_key(init["keys"][2])
    status = c.sys.submit_unseal_key(init["keys"][0])
    assert status["sealed"] is False
    wait_active(server.url)
    assert c.sys.is_sealed() is False

    root = hvac_client(server.url, init["root_token"])
    assert root.auth.token.lookup_self()["data"]["policies"] == ["root"]
    mounts = root.sys.list_mounted_secrets_engines()["data"]
    assert {"cubbyhole/", "identity/", "sys/"} <= set(mounts)
    assert "secret/" not in mounts  # only dev mode mounts KV at secret/
    assert "token/" in root.sys.list_auth_methods()["data"]


def test_wrong_unseal_key_is_rejected(file_server):
    server = file_server()
    init = hvac_client(server.url).sys.initialize(3, 2)
    c = hvac_client(server.url)
    with pytest.raises(hvac.exceptions.InvalidRequest):
        c.sys.submit_unseal_key("zz-not-a-key")
    assert c.sys.read_seal_status()["sealed"] is True
    unseal_with(server, init["keys"], 2)


def populate(server: FileServer, root_token: str) -> dict:
    """Mounts, KV data, a policy and tokens: everything a restart must keep."""
    root = hvac_client(server.url, root_token)
    root.sys.enable_secrets_engine("kv", path="secret", options={"version": "2"})
    root.sys.enable_secrets_engine("kv", path="kv1", description="legacy kv")
    root.secrets.kv.v2.create_or_update_secret(path="app", secret={"user": "v1"}, mount_point="secret")
    root.secrets.kv.v2.create_or_update_secret(path="app", secret={"user": "v2"}, mount_point="secret")
    root.secrets.kv.v2.create_or_update_secret(path="other", secret={"x": "y"}, mount_point="secret")
    root.secrets.kv.v1.create_or_update_secret(path="foo", secret={"a": "b"}, mount_point="kv1")
    root.sys.create_or_update_policy("app", APP_POLICY)
    app = root.auth.token.create(policies=["app"], ttl="24h")["auth"]
    parent = root.auth.token.create(ttl="24h")["auth"]["client_token"]
    child = hvac_client(server.url, parent).auth.token.create(ttl="12h")["auth"]["client_token"]
    return {"app": app, "parent": parent, "child": child}


def check_populated(server: FileServer, root_token: str, state: dict) -> None:
    root = hvac_client(server.url, root_token)
    mounts = root.sys.list_mounted_secrets_engines()["data"]
    assert mounts["secret/"]["options"]["version"] == "2"
    assert mounts["kv1/"]["type"] == "kv"
    assert mounts["kv1/"]["description"] == "legacy kv"

    got = root.secrets.kv.v2.read_secret_version(path="app", mount_point="secret", raise_on_deleted_version=True)
    assert got["data"]["data"] == {"user": "v2"}
    old = root.secrets.kv.v2.read_secret_version(
        path="app", version=1, mount_point="secret", raise_on_deleted_version=True
    )
    assert old["data"]["data"] == {"user": "v1"}
    assert root.secrets.kv.v2.read_secret_metadata(path="app", mount_point="secret")["data"]["current_version"] == 2
    assert root.secrets.kv.v1.read_secret(path="foo", mount_point="kv1")["data"] == {"a": "b"}

    assert root.sys.read_policy("app")["data"]["rules"].strip() == APP_POLICY.strip()

    app = state["app"]
    looked = root.auth.token.lookup(app["client_token"])["data"]
    assert looked["accessor"] == app["accessor"]
    assert looked["policies"] == ["app", "default"]
    assert looked["ttl"] > 23 * 3600
    as_app = hvac_client(server.url, app["client_token"])
    got = as_app.secrets.kv.v2.read_secret_version(path="app", mount_point="secret", raise_on_deleted_version=True)
    assert got["data"]["data"] == {"user": "v2"}
    assert as_app.secrets.kv.v1.read_secret(path="foo", mount_point="kv1")["data"] == {"a": "b"}
    with pytest.raises(hvac.exceptions.Forbidden):
        as_app.secrets.kv.v2.read_secret_version(path="other", mount_point="secret", raise_on_deleted_version=True)

    # The token tree survived too: revoking the parent still takes the child with it.
    assert root.auth.token.lookup(state["child"])["data"]["orphan"] is False
    root.auth.token.revoke(state["parent"])
    with pytest.raises(hvac.exceptions.Forbidden):
        root.auth.token.lookup(state["child"])


def test_everything_survives_restart(file_server):
    server = file_server()
    init = hvac_client(server.url).sys.initialize(5, 3)
    unseal_with(server, init["keys"], 3)
    state = populate(server, init["root_token"])

    server.restart()
    status = seal_status(server)
    assert status["initialized"] is True
    assert status["sealed"] is True
    assert (status["t"], status["n"]) == (3, 5)
    with pytest.raises(hvac.exceptions.VaultDown):
        hvac_client(server.url, init["root_token"]).secrets.kv.v1.read_secret(path="foo", mount_point="kv1")

    unseal_with(server, init["keys"][2:], 3)
    check_populated(server, init["root_token"], state)


def test_acknowledged_writes_survive_kill(file_server):
    """SIGKILL right after the writes: every acknowledged write is durable."""
    server = file_server()
    init = server.init_and_unseal()
    state = populate(server, init["root_token"])
    server.kill()
    server.start()
    server.unseal(init["keys"])
    check_populated(server, init["root_token"], state)


def test_revocation_survives_restart(file_server):
    server = file_server()
    init = server.init_and_unseal()
    root = hvac_client(server.url, init["root_token"])
    root.sys.enable_secrets_engine("kv", path="kv1")
    root.sys.create_or_update_policy("gone", 'path "kv1/*" { capabilities = ["read"] }')
    token = root.auth.token.create(ttl="1h")["auth"]["client_token"]
    root.auth.token.revoke(token)
    root.sys.disable_secrets_engine("kv1")
    root.sys.delete_policy("gone")

    server.restart()
    server.unseal(init["keys"])
    root = hvac_client(server.url, init["root_token"])
    with pytest.raises(hvac.exceptions.Forbidden):
        root.auth.token.lookup(token)
    assert "kv1/" not in root.sys.list_mounted_secrets_engines()["data"]
    assert "gone" not in root.sys.list_policies()["data"]["policies"]


def test_seal_then_unseal_again(file_server):
    server = file_server()
    init = server.init_and_unseal()
    root = hvac_client(server.url, init["root_token"])
    root.sys.enable_secrets_engine("kv", path="kv1")
    root.secrets.kv.v1.create_or_update_secret(path="k", secret={"v": "1"}, mount_point="kv1")
    root.sys.seal()
    assert seal_status(server)["sealed"] is True
    with pytest.raises(hvac.exceptions.VaultDown):
        root.secrets.kv.v1.read_secret(path="k", mount_point="kv1")
    server.unseal(init["keys"])
    assert root.secrets.kv.v1.read_secret(path="k", mount_point="kv1")["data"] == {"v": "1"}
