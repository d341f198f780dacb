"""Renewing login tokens through hvac re-reads the role that issued them (its TTLs apply,
changed policies or a deleted role refuse the renewal, the auth mount's max caps it), and a
token bound to CIDR blocks works only from inside them."""

from __future__ import annotations

import uuid

import hvac
import hvac.exceptions
import pytest

from conftest import ROOT_TOKEN, TARGET, hvac_client

POLICY = 'path "secret/data/renew/*" { capabilities = ["read"] }'


@pytest.fixture
def setup(dev_server):
    """A fresh AppRole mount and its root client; returns (root, mount, login)."""
    root = hvac_client(dev_server.url, ROOT_TOKEN)
    mount = f"renew-{uuid.uuid4().hex[:8]}"
    root.sys.enable_auth_method("approle", path=mount)
    root.sys.create_or_update_policy("renew-a", POLICY)
    root.sys.create_or_update_policy("renew-b", POLICY)

    def login(role: str, **kw) -> hvac.Client:
        root.auth.approle.create_or_update_approle(
            role, token_policies=["renew-a"], mount_point=mount, **kw
        )
        role_id = root.auth.approle.read_role_id(role, mount_point=mount)["data"]["role_id"]
        secret = root.auth.approle.generate_secret_id(role, mount_point=mount)["data"]
        client = hvac_client(dev_server.url)
        client.auth.approle.login(role_id, secret["secret_id"], mount_point=mount)
        return client

    yield root, mount, login
    root.sys.disable_auth_method(mount)


# lessor answers a refused renewal 400; the OpenBao here answers 500 for a deleted role.
REFUSED = (hvac.exceptions.InvalidRequest, hvac.exceptions.InternalServerError)


def refused(client: hvac.Client) -> str:
    with pytest.raises(REFUSED) as e:
        client.auth.token.renew_self()
    if TARGET == "lessor":
        assert isinstance(e.value, hvac.exceptions.InvalidRequest)
    return " ".join(e.value.errors or [])


def test_renewal_applies_the_roles_ttls_now(setup):
    root, mount, login = setup
    client = login("app", token_ttl="60s", token_max_ttl="120s")
    auth = client.auth.token.renew_self()["auth"]
    assert auth["lease_duration"] == 60

    root.auth.approle.create_or_update_approle("app", token_ttl="30s", mount_point=mount)
    assert client.auth.token.renew_self()["auth"]["lease_duration"] == 30

    # An increment past the role's token_max_ttl is cut to what is left of it.
    r = client.auth.token.renew_self(increment="1h")
    assert 100 <= r["auth"]["lease_duration"] <= 120
    assert any("capped" in w for w in r.get("warnings") or [])


def test_auth_mount_max_caps_renewal(setup):
    root, mount, login = setup
    client = login("capped", token_ttl="60s", token_max_ttl="1h")
    root.sys.tune_auth_method(path=mount, max_lease_ttl="90s")
    r = client.auth.token.renew_self(increment="30m")
    assert 70 <= r["auth"]["lease_duration"] <= 90


@pytest.mark.lessor_only  # the OpenBao here renews AppRole tokens whatever the role's policies
def test_changed_policies_refuse_renewal(setup):
    root, mount, login = setup
    client = login("moving", token_ttl="60s")
    client.auth.token.renew_self()
    root.auth.approle.create_or_update_approle(
        "moving", token_policies=["renew-b"], mount_point=mount
    )
    assert "policies have changed, not renewing" in refused(client)
    # Back to the policies the token holds: renewable again.
    root.auth.approle.create_or_update_approle(
        "moving", token_policies=["renew-a"], mount_point=mount
    )
    assert client.auth.token.renew_self()["auth"]["lease_duration"] == 60


def test_deleted_role_refuses_renewal(setup):
    root, mount, login = setup
    client = login("gone", token_ttl="60s")
    accessor = client.auth.token.lookup_self()["data"]["accessor"]
    root.auth.approle.delete_role("gone", mount_point=mount)
    assert "does not exist" in refused(client)
    with pytest.raises(REFUSED):
        root.auth.token.renew_accessor(accessor)
    with pytest.raises(REFUSED):
        root.auth.token.renew(client.token)


def test_token_bound_cidrs_enforced_on_use(dev_server):
    root = hvac_client(dev_server.url, ROOT_TOKEN)
    for role, cidr in (("renew-far", "10.0.0.0/8"), ("renew-near", "127.0.0.0/8")):
        root.adapter.post(f"/v1/auth/token/roles/{role}", json={"token_bound_cidrs": [cidr]})
    # Non-root tokens: a root token is never bound.
    far = root.auth.token.create(role_name="renew-far", policies=["default"])
    near = root.auth.token.create(role_name="renew-near", policies=["default"])
    far, near = far["auth"]["client_token"], near["auth"]["client_token"]
    with pytest.raises(hvac.exceptions.Forbidden):
        hvac_client(dev_server.url, far).auth.token.lookup_self()
    me = hvac_client(dev_server.url, near).auth.token.lookup_self()["data"]
    assert me["bound_cidrs"] == ["127.0.0.0/8"]
