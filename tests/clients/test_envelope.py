"""Response shapes that clients parse strictly: the envelope, raw sys bodies, 204s, headers."""

from __future__ import annotations

import uuid

import pytest
import requests

from conftest import ROOT_TOKEN

ROOT = {"X-Vault-Token": ROOT_TOKEN}
ENVELOPE_KEYS = {"request_id", "lease_id", "renewable", "lease_duration", "data", "wrap_info", "warnings", "auth"}


@pytest.fixture(scope="module")
def v1(dev_server) -> str:
    base = f"{dev_server.url}/v1/"
    r = requests.post(base + "secret/data/shape", headers=ROOT, json={"data": {"k": "v"}}, timeout=10)
    assert r.status_code == 200
    return base


def test_kv_read_envelope_is_complete(v1: str):
    r = requests.get(v1 + "secret/data/shape", headers=ROOT, timeout=10)
    assert r.status_code == 200
    assert r.headers["Content-Type"] == "application/json"
    assert r.headers["Cache-Control"] == "no-store"
    body = r.json()
    assert ENVELOPE_KEYS <= set(body)
    uuid.UUID(body["request_id"])
    assert body["lease_id"] == ""
    assert body["renewable"] is False
    assert body["lease_duration"] == 0
    assert body["wrap_info"] is None
    assert body["warnings"] is None
    assert body["auth"] is None
    assert body["data"]["data"] == {"k": "v"}
    assert set(body["data"]["metadata"]) >= {"created_time", "custom_metadata", "deletion_time", "destroyed", "version"}


@pytest.mark.lessor_only  # Vault >= 1.11 sends mount_type; OpenBao leaves it out
def test_envelope_has_mount_type(v1: str):
    assert requests.get(v1 + "secret/data/shape", headers=ROOT, timeout=10).json()["mount_type"] == "kv"
    assert requests.get(v1 + "sys/mounts", headers=ROOT, timeout=10).json()["mount_type"] == "system"


def test_bodyless_success_is_204_without_body(v1: str):
    r = requests.put(
        v1 + "sys/policy/shape", headers=ROOT, json={"policy": 'path "a/*" { capabilities = ["read"] }'}, timeout=10
    )
    assert r.status_code == 204
    assert r.content == b""
    r = requests.delete(v1 + "sys/policy/shape", headers=ROOT, timeout=10)
    assert r.status_code == 204
    assert r.content == b""


def test_sys_mounts_legacy_top_level_copy(v1: str):
    body = requests.get(v1 + "sys/mounts", headers=ROOT, timeout=10).json()
    assert ENVELOPE_KEYS <= set(body)
    for path in ("secret/", "sys/", "cubbyhole/", "identity/"):
        assert path in body["data"]
        assert body[path] == body["data"][path]
    secret = body["data"]["secret/"]
    for key in ("type", "description", "accessor", "uuid", "local", "seal_wrap", "external_entropy_access", "options", "config"):
        assert key in secret, key
    assert secret["accessor"].startswith("kv_")
    assert {"default_lease_ttl", "max_lease_ttl", "force_no_cache"} <= set(secret["config"])


def test_cli_preflight_mount_lookup(v1: str):
    body = requests.get(v1 + "sys/internal/ui/mounts/secret/shape", headers=ROOT, timeout=10).json()
    assert body["data"]["path"] == "secret/"
    assert body["data"]["type"] == "kv"
    assert body["data"]["options"]["version"] == "2"


def test_health_raw_body(v1: str):
    r = requests.get(v1 + "sys/health", timeout=10)
    assert r.status_code == 200
    assert r.headers["Content-Type"] == "application/json"
    body = r.json()
    assert "request_id" not in body  # a raw body, not an envelope
    assert body["initialized"] is True
    assert body["sealed"] is False
    assert body["standby"] is False
    assert body["replication_dr_mode"] == "disabled"
    assert body["replication_performance_mode"] == "disabled"
    assert isinstance(body["server_time_utc"], int)
    assert body["version"]
    assert body["cluster_name"] and body["cluster_id"]


@pytest.mark.lessor_only  # vaultrs requires these; OpenBao leaves them out
def test_health_has_vaultrs_fields(v1: str):
    body = requests.get(v1 + "sys/health", timeout=10).json()
    assert body["performance_standby"] is False
    assert body["enterprise"] is False
    assert isinstance(body["echo_duration_ms"], int)
    assert isinstance(body["clock_skew_ms"], int)


def test_health_head_and_code_overrides(v1: str):
    r = requests.head(v1 + "sys/health", timeout=10)
    assert r.status_code == 200
    assert r.content == b""
    assert requests.get(v1 + "sys/health", params={"activecode": "299"}, timeout=10).status_code == 299


def test_seal_status_raw_body(v1: str):
    body = requests.get(v1 + "sys/seal-status", timeout=10).json()
    assert "request_id" not in body
    assert body["type"] == "shamir"
    assert (body["initialized"], body["sealed"], body["t"], body["n"], body["progress"]) == (True, False, 1, 1, 0)
    assert body["version"]
