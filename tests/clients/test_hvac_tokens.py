"""Token store through hvac: create, lookup, renew, revoke, and the parent/child tree."""

from __future__ import annotations

import hvac
import hvac.exceptions
import pytest
import requests

from conftest import ROOT_TOKEN, hvac_client

TOKEN_MAKER = 'path "auth/token/create" { capabilities = ["update"] }'


@pytest.fixture(scope="module")
def root(dev_server) -> hvac.Client:
    c = hvac_client(dev_server.url, ROOT_TOKEN)
    c.sys.create_or_update_policy("token-maker", TOKEN_MAKER)
    c.sys.create_or_update_policy("reader", 'path "secret/data/*" { capabilities = ["read"] }')
    return c


@pytest.fixture
def url(dev_server) -> str:
    return dev_server.url


def alive(root: hvac.Client, token: str) -> bool:
    try:
        root.auth.token.lookup(token)
        return True
    except hvac.exceptions.Forbidden:
        return False


def test_create_shape(root: hvac.Client):
    r = root.auth.token.create(policies=["reader"], ttl="1h", meta={"app": "web"})
    auth = r["auth"]
    assert r["data"] is None
    assert r["lease_id"] == ""
    assert auth["client_token"] and auth["accessor"]
    assert auth["client_token"] != auth["accessor"]
    assert auth["policies"] == ["default", "reader"]
    assert auth["token_policies"] == ["default", "reader"]
    assert auth["metadata"] == {"app": "web"}
    assert auth["lease_duration"] == 3600
    assert auth["renewable"] is True
    assert auth["token_type"] == "service"
    assert auth["orphan"] is False
    assert auth["entity_id"] == ""


def test_lookup_self_and_by_token_and_accessor(root: hvac.Client, url: str):
    auth = root.auth.token.create(policies=["reader"], ttl="1h", display_name="ci job")["auth"]
    token, accessor = auth["client_token"], auth["accessor"]

    by_token = root.auth.token.lookup(token)["data"]
    assert by_token["id"] == token
    assert by_token["accessor"] == accessor
    assert by_token["policies"] == ["default", "reader"]
    assert by_token["path"] == "auth/token/create"
    assert by_token["display_name"] == "token-ci-job"
    assert by_token["creation_ttl"] == 3600
    assert 3590 <= by_token["ttl"] <= 3600
    assert by_token["renewable"] is True
    assert by_token["orphan"] is False
    assert by_token["type"] == "service"
    assert isinstance(by_token["creation_time"], int)
    assert by_token["expire_time"]

    me = hvac_client(url, token).auth.token.lookup_self()["data"]
    assert me["id"] == token
    assert me["accessor"] == accessor

    by_accessor = root.auth.token.lookup_accessor(accessor)["data"]
    assert by_accessor["accessor"] == accessor
    assert by_accessor["id"] == ""  # an accessor never reveals the token


def test_root_token_never_expires(root: hvac.Client):
    data = root.auth.token.lookup_self()["data"]
    assert data["policies"] == ["root"]
    assert data["ttl"] == 0
    assert data["expire_time"] is None


def test_renew(root: hvac.Client, url: str):
    token = root.auth.token.create(policies=["reader"], ttl="30m")["auth"]["client_token"]
    renewed = root.auth.token.renew(token, increment="2h")["auth"]
    assert renewed["client_token"] == token
    assert renewed["lease_duration"] == 7200
    assert renewed["renewable"] is True
    assert 7190 <= root.auth.token.lookup(token)["data"]["ttl"] <= 7200

    own = hvac_client(url, token).auth.token.renew_self(increment=600)["auth"]
    assert own["lease_duration"] == 600


def test_renew_capped_by_explicit_max_ttl(root: hvac.Client):
    token = root.auth.token.create(ttl="10m", explicit_max_ttl="20m")["auth"]["client_token"]
    r = root.auth.token.renew(token, increment="1h")
    assert 1190 <= r["auth"]["lease_duration"] <= 1200
    assert r["warnings"]  # the cap is reported


def test_revoke(root: hvac.Client, url: str):
    token = root.auth.token.create(policies=["reader"], ttl="1h")["auth"]["client_token"]
    assert root.auth.token.revoke(token).status_code == 204
    assert not alive(root, token)
    with pytest.raises(hvac.exceptions.Forbidden):
        hvac_client(url, token).auth.token.lookup_self()


def test_revoke_self_and_accessor(root: hvac.Client, url: str):
    a = root.auth.token.create(ttl="1h")["auth"]
    hvac_client(url, a["client_token"]).auth.token.revoke_self()
    assert not alive(root, a["client_token"])

    b = root.auth.token.create(ttl="1h")["auth"]
    root.auth.token.revoke_accessor(b["accessor"])
    assert not alive(root, b["client_token"])


def test_children_are_revoked_with_parent(root: hvac.Client, url: str):
    parent = root.auth.token.create(policies=["token-maker", "reader"], ttl="1h")["auth"]["client_token"]
    as_parent = hvac_client(url, parent)
    child = as_parent.auth.token.create(policies=["reader"], ttl="30m")["auth"]["client_token"]
    grandchild = hvac_client(url, child)
    # reader does not allow auth/token/create: the child cannot mint tokens itself.
    with pytest.raises(hvac.exceptions.Forbidden):
        grandchild.auth.token.create(ttl="10m")
    sibling = as_parent.auth.token.create(policies=["token-maker"], ttl="30m")["auth"]["client_token"]
    nephew = hvac_client(url, sibling).auth.token.create(ttl="10m")["auth"]["client_token"]

    assert root.auth.token.lookup(child)["data"]["orphan"] is False
    root.auth.token.revoke(parent)
    for token in (parent, child, sibling, nephew):
        assert not alive(root, token)


def test_child_policies_must_be_subset(root: hvac.Client, url: str):
    parent = root.auth.token.create(policies=["token-maker"], ttl="1h")["auth"]["client_token"]
    with pytest.raises(hvac.exceptions.InvalidRequest):
        hvac_client(url, parent).auth.token.create(policies=["reader"], ttl="10m")


def test_revoke_orphan_keeps_children(root: hvac.Client, url: str):
    parent = root.auth.token.create(policies=["token-maker"], ttl="1h")["auth"]["client_token"]
    child = hvac_client(url, parent).auth.token.create(ttl="30m")["auth"]["client_token"]

    root.auth.token.revoke_and_orphan_children(parent)
    assert not alive(root, parent)
    assert alive(root, child)
    data = root.auth.token.lookup(child)["data"]
    assert data["orphan"] is True
    # The orphaned child still works on its own.
    assert hvac_client(url, child).auth.token.lookup_self()["data"]["id"] == child


def test_orphan_created_directly_survives_creator(root: hvac.Client, url: str):
    creator = root.auth.token.create(policies=["token-maker"], ttl="1h")["auth"]["client_token"]
    orphan = root.auth.token.create_orphan(ttl="30m")["auth"]
    assert orphan["orphan"] is True
    # Only root/sudo may set no_parent.
    with pytest.raises(hvac.exceptions.InvalidRequest, match="orphan"):
        hvac_client(url, creator).auth.token.create(no_parent=True, ttl="10m")
    root.auth.token.revoke(creator)
    assert alive(root, orphan["client_token"])


def test_bad_token_is_forbidden(url: str):
    with pytest.raises(hvac.exceptions.Forbidden):
        hvac_client(url, "not-a-real-token").auth.token.lookup_self()


@pytest.mark.parametrize(
    "ttl,seconds",
    [("3600", 3600), (5400, 5400), ("90m", 5400), ("1.5h", 5400), ("7d", 604800), ("1h30m", 5400)],
)
def test_ttl_formats(root: hvac.Client, ttl, seconds: int):
    assert root.auth.token.create(ttl=ttl)["auth"]["lease_duration"] == seconds


@pytest.mark.parametrize("ttl", ["1d12h", "abc", "-1h", "5 minutes"])
def test_bad_ttl_is_400(root: hvac.Client, ttl: str):
    with pytest.raises(hvac.exceptions.InvalidRequest):
        root.auth.token.create(ttl=ttl)


def test_ttl_above_system_max_is_capped_with_warning(root: hvac.Client):
    r = root.auth.token.create(ttl="1000h")
    assert r["auth"]["lease_duration"] == 2764800
    assert r["warnings"] == [
        'TTL of "1000h" exceeded the effective max_ttl of "768h"; TTL value is capped accordingly'
    ]


def test_default_ttl_is_system_default(root: hvac.Client):
    r = root.auth.token.create(policies=["reader"])
    assert r["auth"]["lease_duration"] == 2764800
    assert r["auth"]["renewable"] is True


def test_weakly_typed_fields(root: hvac.Client, url: str):
    """The CLI sends every value as a string."""
    r = requests.post(
        f"{url}/v1/auth/token/create",
        headers={"X-Vault-Token": ROOT_TOKEN},
        json={"ttl": "600", "num_uses": "3", "renewable": "false", "no_default_policy": "true", "policies": ["reader"]},
        timeout=10,
    )
    assert r.status_code == 200, r.text
    auth = r.json()["auth"]
    assert auth["lease_duration"] == 600
    assert auth["num_uses"] == 3
    assert auth["renewable"] is False
    assert auth["policies"] == ["reader"]
