"""ACL policies through hvac: a token can do what its policies grant and nothing else."""

from __future__ import annotations

import hvac
import hvac.exceptions
import pytest

from conftest import ROOT_TOKEN, hvac_client

READ_ONE = """
path "secret/data/allowed" {
  capabilities = ["read"]
}
"""


@pytest.fixture(scope="module")
def root(dev_server) -> hvac.Client:
    c = hvac_client(dev_server.url, ROOT_TOKEN)
    kv = c.secrets.kv.v2
    kv.create_or_update_secret(path="allowed", secret={"k": "visible"}, mount_point="secret")
    kv.create_or_update_secret(path="other", secret={"k": "hidden"}, mount_point="secret")
    c.sys.enable_secrets_engine("kv", path="kv1", options={"version": "1"})
    c.secrets.kv.v1.create_or_update_secret(path="x", secret={"a": "b"}, mount_point="kv1")
    return c


@pytest.fixture(scope="module")
def reader(root: hvac.Client, dev_server) -> hvac.Client:
    root.sys.create_or_update_policy("read-one", READ_ONE)
    token = root.auth.token.create(policies=["read-one"], ttl="1h")["auth"]["client_token"]
    return hvac_client(dev_server.url, token)


def test_policy_round_trip(root: hvac.Client):
    root.sys.create_or_update_policy("roundtrip", READ_ONE)
    assert "roundtrip" in root.sys.list_policies()["data"]["policies"]
    got = root.sys.read_policy("roundtrip")["data"]
    assert got["name"] == "roundtrip"
    assert got["rules"].strip() == READ_ONE.strip()
    root.sys.delete_policy("roundtrip")
    assert "roundtrip" not in root.sys.list_policies()["data"]["policies"]
    with pytest.raises(hvac.exceptions.InvalidPath):
        root.sys.read_policy("roundtrip")


def test_builtin_policies(root: hvac.Client):
    policies = root.sys.list_policies()["data"]["policies"]
    assert "default" in policies and "root" in policies
    with pytest.raises(hvac.exceptions.InvalidRequest):
        root.sys.create_or_update_policy("root", READ_ONE)
    with pytest.raises(hvac.exceptions.InvalidRequest):
        root.sys.delete_policy("default")


def test_invalid_policy_is_rejected(root: hvac.Client):
    with pytest.raises(hvac.exceptions.InvalidRequest):
        root.sys.create_or_update_policy("broken", 'path "x" { capabilities = ["fly"] }')
    assert "broken" not in root.sys.list_policies()["data"]["policies"]


def test_granted_path_is_readable(reader: hvac.Client):
    got = reader.secrets.kv.v2.read_secret_version(
        path="allowed", mount_point="secret", raise_on_deleted_version=True
    )
    assert got["data"]["data"] == {"k": "visible"}


@pytest.mark.parametrize(
    "attempt",
    [
        pytest.param(
            lambda c: c.secrets.kv.v2.read_secret_version(
                path="other", mount_point="secret", raise_on_deleted_version=True
            ),
            id="read-other-key",
        ),
        pytest.param(
            lambda c: c.secrets.kv.v2.create_or_update_secret(
                path="allowed", secret={"k": "changed"}, mount_point="secret"
            ),
            id="write-granted-key",
        ),
        pytest.param(
            lambda c: c.secrets.kv.v2.read_secret_metadata(path="allowed", mount_point="secret"),
            id="metadata-of-granted-key",
        ),
        pytest.param(
            lambda c: c.secrets.kv.v2.list_secrets(path="", mount_point="secret"), id="list-mount"
        ),
        pytest.param(
            lambda c: c.secrets.kv.v2.delete_latest_version_of_secret(path="allowed", mount_point="secret"),
            id="delete-granted-key",
        ),
        pytest.param(
            lambda c: c.secrets.kv.v1.read_secret(path="x", mount_point="kv1"), id="other-mount"
        ),
        pytest.param(lambda c: c.sys.list_mounted_secrets_engines(), id="sys-mounts"),
        pytest.param(lambda c: c.sys.create_or_update_policy("evil", READ_ONE), id="write-policy"),
        pytest.param(lambda c: c.auth.token.create(ttl="1h"), id="create-token"),
    ],
)
def test_everything_else_is_forbidden(reader: hvac.Client, root: hvac.Client, attempt):
    with pytest.raises(hvac.exceptions.Forbidden):
        attempt(reader)
    # And the refused request changed nothing.
    got = root.secrets.kv.v2.read_secret_version(
        path="allowed", mount_point="secret", raise_on_deleted_version=True
    )
    assert got["data"]["data"] == {"k": "visible"}
    assert "evil" not in root.sys.list_policies()["data"]["policies"]


def test_default_policy_allows_own_token_lookup(reader: hvac.Client):
    assert reader.auth.token.lookup_self()["data"]["policies"] == ["default", "read-one"]


def test_policy_change_applies_to_existing_token(root: hvac.Client, dev_server):
    root.sys.create_or_update_policy("grows", 'path "secret/data/allowed" { capabilities = ["read"] }')
    token = root.auth.token.create(policies=["grows"], ttl="1h")["auth"]["client_token"]
    c = hvac_client(dev_server.url, token)
    with pytest.raises(hvac.exceptions.Forbidden):
        c.secrets.kv.v2.read_secret_version(path="other", mount_point="secret", raise_on_deleted_version=True)
    root.sys.create_or_update_policy("grows", 'path "secret/data/*" { capabilities = ["read"] }')
    got = c.secrets.kv.v2.read_secret_version(path="other", mount_point="secret", raise_on_deleted_version=True)
    assert got["data"]["data"] == {"k": "hidden"}


def test_capabilities_self(reader: hvac.Client):
    caps = reader.sys.get_capabilities(paths=["secret/data/allowed", "secret/data/other"])
    assert caps["secret/data/allowed"] == ["read"]
    assert caps["secret/data/other"] == ["deny"]
