"""Bad requests over raw HTTP: the right status, Vault's error shape, and no change of state.

Each refused request is followed by a check that the server's state is exactly what it was:
the mount table, the policies, the token accessors and a known KV value.
"""

from __future__ import annotations

import json
import socket
import uuid
from urllib.parse import urlparse

import pytest
import requests

from conftest import ROOT_TOKEN

BODY_LIMIT = 32 * 1024 * 1024
ROOT = {"X-Vault-Token": ROOT_TOKEN}
KNOWN_KEY = "secret/data/known"
KNOWN_VALUE = {"user": "x", "pass": "unchanged"}


@pytest.fixture(scope="module")
def url(dev_server) -> str:
    r = requests.post(f"{dev_server.url}/v1/{KNOWN_KEY}", headers=ROOT, json={"data": KNOWN_VALUE}, timeout=10)
    assert r.status_code == 200, r.text
    return dev_server.url


def snapshot(url: str) -> dict:
    def get(path: str, method: str = "GET") -> dict:
        r = requests.request(method, f"{url}/v1/{path}", headers=ROOT, timeout=10)
        assert r.status_code == 200, (path, r.status_code, r.text)
        return r.json()["data"]

    mounts = get("sys/mounts")
    auths = get("sys/auth")
    known = get(KNOWN_KEY)
    return {
        "mounts": {p: (m["type"], m["accessor"], m["options"]) for p, m in mounts.items()},
        "auth": {p: (m["type"], m["accessor"]) for p, m in auths.items()},
        "policies": sorted(get("sys/policy")["policies"]),
        "accessors": sorted(get("auth/token/accessors", "LIST")["keys"]),
        "known": (known["data"], known["metadata"]["version"]),
    }


@pytest.fixture
def unchanged(url: str):
    """Asserts, after the test, that the server state is the one before it."""
    before = snapshot(url)
    yield
    assert snapshot(url) == before


def assert_error(r: requests.Response, status: int, *, empty_ok: bool = False) -> list[str]:
    assert r.status_code == status, (r.status_code, r.text[:500])
    assert r.headers.get("Content-Type") == "application/json"
    assert r.headers.get("Cache-Control") == "no-store"
    body = r.json()
    assert isinstance(body, dict)
    assert isinstance(body.get("errors"), list), body
    assert all(isinstance(e, str) for e in body["errors"])
    if not empty_ok:
        assert body["errors"], body
    return body["errors"]


def raw(url: str, method: str, path: str, *, data=None, headers=None) -> requests.Response:
    h = dict(ROOT)
    h.update(headers or {})
    return requests.request(method, f"{url}/v1/{path}", data=data, headers=h, timeout=30)


# --- malformed bodies -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(b'{"data": {"user": ', id="truncated"),
        pytest.param(b"{bad json}", id="garbage"),
        pytest.param(b'{"data": {"user": "y"}} trailing', id="trailing"),
        pytest.param(b"[1, 2, 3]", id="array"),
        pytest.param(b'"just a string"', id="string"),
    ],
)
def test_malformed_json_is_400(url: str, unchanged, body: bytes):
    r = raw(url, "POST", KNOWN_KEY, data=body, headers={"Content-Type": "application/json"})
    assert_error(r, 400)


def test_malformed_json_on_new_key_creates_nothing(url: str, unchanged):
    key = f"secret/data/new-{uuid.uuid4().hex}"
    assert_error(raw(url, "POST", key, data=b"{nope"), 400)
    assert_error(raw(url, "GET", key), 404, empty_ok=True)


def test_malformed_json_on_sys_mount_is_400(url: str, unchanged):
    assert_error(raw(url, "POST", "sys/mounts/broken", data=b'{"type": "kv",'), 400)


# --- wrong types ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "path,body",
    [
        pytest.param("sys/mounts/x", {"type": "kv", "config": 5}, id="mount-config-number"),
        pytest.param("sys/mounts/x", {"type": "kv", "config": "abc"}, id="mount-config-string"),
        pytest.param(
            "sys/mounts/x", {"type": "kv", "config": {"default_lease_ttl": "abc"}}, id="mount-bad-ttl"
        ),
        pytest.param(
            "sys/mounts/x",
            {"type": "kv", "config": {"default_lease_ttl": "2h", "max_lease_ttl": "1h"}},
            id="mount-default-above-max",
        ),
        pytest.param("sys/mounts/x", {"type": "no-such-engine"}, id="mount-unknown-type"),
        pytest.param("sys/mounts/secret", {"type": "kv"}, id="mount-path-in-use"),
        pytest.param("sys/mounts/sys", {"type": "kv"}, id="mount-reserved-path"),
        pytest.param("auth/token/create", {"ttl": "abc"}, id="token-ttl-abc"),
        pytest.param("auth/token/create", {"ttl": "-5m"}, id="token-ttl-negative"),
        pytest.param("auth/token/create", {"num_uses": "many"}, id="token-num-uses-string"),
        pytest.param("auth/token/create", {"renewable": "perhaps"}, id="token-renewable-not-bool"),
        pytest.param("sys/policy/bad", {"policy": 'path "x" { capabilities = ["fly"] }'}, id="policy-bad-cap"),
        pytest.param("sys/policy/bad", {"policy": "path {"}, id="policy-unparsable"),
        pytest.param("sys/policy/root", {"policy": 'path "x" { capabilities = ["read"] }'}, id="policy-root"),
        pytest.param(KNOWN_KEY, {"data": "not-a-map"}, id="kv2-data-string"),
        pytest.param(KNOWN_KEY, {"data": {"user": "y"}, "options": {"cas": "abc"}}, id="kv2-cas-string"),
        pytest.param(KNOWN_KEY, {"data": {"user": "y"}, "options": {"cas": 99}}, id="kv2-cas-mismatch"),
        pytest.param("secret/config", {"max_versions": "lots"}, id="kv2-config-int"),
    ],
)
def test_invalid_field_is_400(url: str, unchanged, path: str, body: dict):
    r = raw(url, "POST", path, data=json.dumps(body), headers={"Content-Type": "application/json"})
    assert_error(r, 400)


# --- routing ----------------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["GET", "POST", "DELETE"])
def test_unknown_path_is_404(url: str, unchanged, method: str):
    r = raw(url, method, "no-such-mount/foo", data=b'{"a": "b"}' if method == "POST" else None)
    errors = assert_error(r, 404)
    assert "no-such-mount/foo" in errors[0]


def test_absent_key_is_404_with_empty_errors(url: str, unchanged):
    errors = assert_error(raw(url, "GET", "secret/data/absent"), 404, empty_ok=True)
    assert errors == []


def test_outside_v1_is_404(url: str):
    assert_error(requests.get(f"{url}/v2/sys/health", timeout=10), 404, empty_ok=True)


@pytest.mark.parametrize(
    "path,status",
    [
        pytest.param("sys/mounts/secret", 405, id="sys-mount"),
        pytest.param(KNOWN_KEY, 405, id="kv2-data"),
        pytest.param("auth/token/lookup-self", 404, id="token-lookup-self"),
    ],
)
def test_list_on_non_list_path(url: str, unchanged, path: str, status: int):
    assert_error(raw(url, "LIST", path), status)
    r = requests.get(f"{url}/v1/{path}", params={"list": "true"}, headers=ROOT, timeout=10)
    assert_error(r, status)


def test_patch_needs_merge_patch_content_type(url: str, unchanged):
    body = json.dumps({"data": {"user": "patched"}})
    for ctype in ("application/json", "text/plain"):
        r = raw(url, "PATCH", KNOWN_KEY, data=body, headers={"Content-Type": ctype})
        errors = assert_error(r, 415)
        assert "application/merge-patch+json" in errors[0]


# --- authentication ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "headers",
    [
        pytest.param({}, id="missing"),
        pytest.param({"X-Vault-Token": "wrong-token"}, id="wrong"),
        pytest.param({"X-Vault-Token": ""}, id="empty"),
        pytest.param({"Authorization": "Bearer wrong-token"}, id="wrong-bearer"),
        pytest.param({"Authorization": f"Basic {ROOT_TOKEN}"}, id="other-scheme"),
    ],
)
@pytest.mark.parametrize(
    "method,path,body",
    [
        ("GET", KNOWN_KEY, None),
        ("POST", KNOWN_KEY, {"data": {"user": "intruder"}}),
        ("DELETE", KNOWN_KEY, None),
        ("GET", "sys/mounts", None),
        ("POST", "sys/mounts/intruder", {"type": "kv"}),
        ("POST", "auth/token/create", {}),
    ],
)
def test_bad_token_is_403(url: str, unchanged, headers: dict, method: str, path: str, body):
    r = requests.request(
        method,
        f"{url}/v1/{path}",
        headers=headers,
        data=json.dumps(body) if body is not None else None,
        timeout=10,
    )
    errors = assert_error(r, 403)
    assert any("permission denied" in e for e in errors)


def test_bearer_token_is_accepted(url: str):
    r = requests.get(f"{url}/v1/{KNOWN_KEY}", headers={"Authorization": f"Bearer {ROOT_TOKEN}"}, timeout=10)
    assert r.status_code == 200
    assert r.json()["data"]["data"] == KNOWN_VALUE


# --- size limit -------------------------------------------------------------------------------


def post_with_expect_continue(url: str, path: str, body: bytes) -> tuple[int, dict[str, str], bytes]:
    """POST with `Expect: 100-continue`, as curl does for large bodies.

    A server may refuse on the Content-Length alone (final status before any body) or read up
    to its limit first (100 Continue, then the final status): both are handled, and the body is
    never pushed into a connection the server has already given up on.
    """
    u = urlparse(url)
    with socket.create_connection((u.hostname, u.port), timeout=60) as s:
        head = (
            f"POST /v1/{path} HTTP/1.1\r\n"
            f"Host: {u.hostname}:{u.port}\r\n"
            f"X-Vault-Token: {ROOT_TOKEN}\r\n"
            "Content-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n"
            "Expect: 100-continue\r\n"
            "Connection: close\r\n\r\n"
        )
        s.sendall(head.encode())
        reader = s.makefile("rb")
        status, headers = _read_head(reader)
        if status == 100:
            try:
                s.sendall(body)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the server stopped reading at its limit; its answer is still to come
            status, headers = _read_head(reader)
        length = int(headers.get("content-length", "0") or 0)
        payload = reader.read(length) if length else reader.read()
        return status, headers, payload


def _read_head(reader) -> tuple[int, dict[str, str]]:
    status_line = reader.readline().decode("latin-1").strip()
    status = int(status_line.split()[1])
    headers: dict[str, str] = {}
    while True:
        line = reader.readline().decode("latin-1")
        if line in ("\r\n", "\n", ""):
            break
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return status, headers


def test_oversized_body_is_413(url: str, unchanged):
    filler = "a" * (BODY_LIMIT + 1024)
    body = json.dumps({"data": {"user": filler}}).encode()
    status, headers, payload = post_with_expect_continue(url, KNOWN_KEY, body)
    assert status == 413
    assert headers.get("content-type") == "application/json"
    assert isinstance(json.loads(payload)["errors"], list)


def test_body_just_under_limit_is_accepted(url: str):
    key = f"secret/data/big-{uuid.uuid4().hex}"
    value = "b" * (1024 * 1024)
    r = raw(url, "POST", key, data=json.dumps({"data": {"v": value}}))
    assert r.status_code == 200, r.text[:300]
    assert raw(url, "GET", key).json()["data"]["data"]["v"] == value


# --- methods ----------------------------------------------------------------------------------


def test_unsupported_method_is_405(url: str, unchanged):
    assert_error(raw(url, "TRACE", KNOWN_KEY), 405, empty_ok=True)
