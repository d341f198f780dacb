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


def token_with(root: hvac.Client, url: str, name: str, rules: str) -> hvac.Client:
    root.sys.create_or_update_policy(name, rules)
    token = root.auth.token.create(policies=[name], ttl="1h")["auth"]["client_token"]
    return hvac_client(url, token)


def put(c: hvac.Client, path: str, value: str) -> None:
    c.secrets.kv.v1.create_or_update_secret(path=path, secret={"v": value}, mount_point="kv1", method="PUT")


def test_create_versus_update(root: hvac.Client, dev_server):
    """A write to an absent KV key needs `create`, to an existing one `update`.

    method="PUT": without it hvac reads the key first, which these tokens may not.
    """
    root.secrets.kv.v1.create_or_update_secret(path="exists", secret={"v": "0"}, mount_point="kv1")
    only_update = token_with(root, dev_server.url, "only-update", 'path "kv1/*" { capabilities = ["update"] }')
    only_create = token_with(root, dev_server.url, "only-create", 'path "kv1/*" { capabilities = ["create"] }')

    put(only_update, "exists", "1")
    with pytest.raises(hvac.exceptions.Forbidden):
        put(only_update, "fresh-u", "1")

    put(only_create, "fresh-c", "1")
    with pytest.raises(hvac.exceptions.Forbidden):
        put(only_create, "exists", "2")

    assert root.secrets.kv.v1.read_secret(path="exists", mount_point="kv1")["data"] == {"v": "1"}
    assert root.secrets.kv.v1.read_secret(path="fresh-c", mount_point="kv1")["data"] == {"v": "1"}
    with pytest.raises(hvac.exceptions.InvalidPath):
        root.secrets.kv.v1.read_secret(path="fresh-u", mount_point="kv1")


def test_deny_wins_and_exact_beats_glob(root: hvac.Client, dev_server):
    root.secrets.kv.v1.create_or_update_secret(path="team/a", secret={"v": "a"}, mount_point="kv1")
    root.secrets.kv.v1.create_or_update_secret(path="team/b", secret={"v": "b"}, mount_point="kv1")
    root.secrets.kv.v1.create_or_update_secret(path="team/c", secret={"v": "c"}, mount_point="kv1")
    rules = """
path "kv1/team/*" { capabilities = ["read"] }
path "kv1/team/b" { capabilities = ["deny"] }
path "kv1/team/c" { capabilities = ["list"] }
"""
    c = token_with(root, dev_server.url, "precedence", rules)
    assert c.secrets.kv.v1.read_secret(path="team/a", mount_point="kv1")["data"] == {"v": "a"}
    with pytest.raises(hvac.exceptions.Forbidden):
        c.secrets.kv.v1.read_secret(path="team/b", mount_point="kv1")
    # The exact rule for team/c replaces the glob: list only, no read.
    with pytest.raises(hvac.exceptions.Forbidden):
        c.secrets.kv.v1.read_secret(path="team/c", mount_point="kv1")

    # deny in a second policy on the same pattern wins over read in the first.
    root.sys.create_or_update_policy("deny-a", 'path "kv1/team/*" { capabilities = ["deny"] }')
    token = root.auth.token.create(policies=["precedence", "deny-a"], ttl="1h")["auth"]["client_token"]
    with pytest.raises(hvac.exceptions.Forbidden):
        hvac_client(dev_server.url, token).secrets.kv.v1.read_secret(path="team/a", mount_point="kv1")


def test_sudo_paths_need_sudo(root: hvac.Client, dev_server):
    victim = root.auth.token.create(ttl="1h")["auth"]["client_token"]
    no_sudo = token_with(
        root, dev_server.url, "no-sudo", 'path "auth/token/revoke-orphan" { capabilities = ["update"] }'
    )
    # The token store itself refuses (400) when the caller lacks sudo on the path.
    with pytest.raises(hvac.exceptions.InvalidRequest, match="sudo"):
        no_sudo.auth.token.revoke_and_orphan_children(victim)
    assert root.auth.token.lookup(victim)["data"]["id"] == victim

    with_sudo = token_with(
        root, dev_server.url, "with-sudo", 'path "auth/token/revoke-orphan" { capabilities = ["update", "sudo"] }'
    )
    with_sudo.auth.token.revoke_and_orphan_children(victim)
    with pytest.raises(hvac.exceptions.Forbidden):
        root.auth.token.lookup(victim)


def test_cubbyhole_is_private_to_each_token(root: hvac.Client, dev_server):
    a = hvac_client(dev_server.url, root.auth.token.create(ttl="1h")["auth"]["client_token"])
    b = hvac_client(dev_server.url, root.auth.token.create(ttl="1h")["auth"]["client_token"])
    a.write("cubbyhole/note", value="for a only")
    assert a.read("cubbyhole/note")["data"] == {"value": "for a only"}
    assert b.read("cubbyhole/note") is None  # hvac maps the 404 to None
