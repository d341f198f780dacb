"""Metrics through `sys/metrics` and the unauthenticated telemetry listener, parsed with
prometheus_client's text parser; the counts must match what the API reports."""

from __future__ import annotations

from pathlib import Path

import hvac
import hvac.exceptions
import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from conftest import ROOT_TOKEN, ServerProcess, free_port, hvac_client, server_binary

pytestmark = pytest.mark.lessor_only  # lessor_* names and the telemetry stanza are lessor's


def parse(text: str) -> dict[tuple[str, tuple], float]:
    """{(sample name, sorted labels): value} of every sample."""
    out = {}
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


@pytest.fixture(scope="module")
def server(log_dir: Path, tmp_path_factory: pytest.TempPathFactory):
    base = tmp_path_factory.mktemp("metrics")
    telemetry_port = free_port()
    cfg = base / "server.hcl"
    cfg.write_text(f'telemetry {{\n  metrics_address = "127.0.0.1:{telemetry_port}"\n}}\n')
    port = free_port()
    s = ServerProcess(
        [server_binary(), "server", "-dev", f"-dev-root-token-id={ROOT_TOKEN}",
         f"-dev-listen-address=127.0.0.1:{port}", f"-config={cfg}"],
        port,
        log_dir / f"metrics-{port}.log",
    )
    s.start()
    s.telemetry_url = f"http://127.0.0.1:{telemetry_port}"
    try:
        yield s
    finally:
        s.stop()


def test_counts_match_the_api(server):
    client = hvac_client(server.url, ROOT_TOKEN)
    issued = [client.auth.token.create(ttl="1h")["auth"]["client_token"] for _ in range(5)]
    client.auth.token.create(ttl="200s")
    client.auth.token.renew(issued[0], increment="2h")
    client.auth.token.revoke(issued[1])
    with pytest.raises(hvac.exceptions.Forbidden):
        hvac_client(server.url, "no-such-token").auth.token.lookup_self()

    text = client.adapter.get("/v1/sys/metrics", params={"format": "prometheus"})
    text = text.text if hasattr(text, "text") else text
    m = parse(text)

    leases = client.adapter.list("/v1/sys/leases/lookup/auth/token/create/")["data"]["keys"]
    assert len(leases) == 5
    assert m[("vault_expire_num_leases", ())] == len(leases)
    assert m[("lessor_expire_leases", (("mount", "auth/token/"), ("state", "active")))] == len(leases)
    assert m[("vault_expire_num_irrevocable_leases", ())] == 0
    assert m[("vault_token_count", ())] == len(leases) + 1  # and the root token
    assert m[("vault_core_unsealed", ())] == 1
    ops = lambda op: m[("lessor_lease_operations_total", (("mount", "auth/token/"), ("op", op)))]
    assert (ops("issue"), ops("renew"), ops("revoke")) == (6, 1, 1)
    ev = lambda kind: m[("lessor_expire_events_total", (("event", kind), ("mount", "auth/token/")))]
    assert (ev("issued"), ev("renewed"), ev("revoked"), ev("failed"), ev("irrevocable")) == (6, 1, 1, 0, 0)
    assert m[("lessor_revoke_prefix_jobs", (("state", "running"),))] == 0
    assert m[("lessor_requests_total", (("class", "auth-token"), ("status", "200")))] >= 7
    assert m[("lessor_requests_total", (("class", "auth-token"), ("status", "403")))] == 1
    # Expiry histogram: one lease within 300 s, all within a day.
    assert m[("lessor_expire_time_to_expiry_seconds_bucket", (("le", "300"),))] == 1
    assert m[("lessor_expire_time_to_expiry_seconds_bucket", (("le", "86400"),))] == 5
    assert m[("lessor_expire_time_to_expiry_seconds_count", ())] == 5
    assert m[("lessor_storage_duration_ms_count", (("op", "get"),))] > 0
    assert ("lessor_aws_clock_offset_seconds", ()) in m
    assert m[("lessor_audit_devices", ())] == 0

    # JSON, Vault's shape.
    j = client.adapter.get("/v1/sys/metrics")
    assert set(j) >= {"Timestamp", "Gauges", "Counters", "Samples", "Points"}
    gauges = {g["Name"]: g["Value"] for g in j["Gauges"] if not g["Labels"]}
    assert gauges["vault.expire.num_leases"] == len(leases)

    with pytest.raises(hvac.exceptions.InvalidRequest):
        client.adapter.get("/v1/sys/metrics", params={"format": "xml"})


def test_needs_read_and_the_telemetry_listener_needs_nothing(server):
    r = requests.get(f"{server.url}/v1/sys/metrics", timeout=10)
    assert r.status_code == 403
    root = hvac_client(server.url, ROOT_TOKEN)
    root.sys.create_or_update_policy("metrics-reader", 'path "sys/metrics" { capabilities = ["read"] }')
    token = root.auth.token.create(policies=["metrics-reader"])["auth"]["client_token"]
    r = requests.get(f"{server.url}/v1/sys/metrics?format=prometheus", headers={"X-Vault-Token": token}, timeout=10)
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
    assert ("vault_core_unsealed", ()) in parse(r.text)

    r = requests.get(f"{server.telemetry_url}/metrics", timeout=10)
    assert r.status_code == 200
    m = parse(r.text)
    assert m[("vault_core_unsealed", ())] == 1
    r = requests.get(f"{server.telemetry_url}/v1/sys/metrics", timeout=10)
    assert r.json()["Gauges"]
    # Only metrics there: the API is not reachable through the telemetry listener.
    assert requests.get(f"{server.telemetry_url}/v1/sys/mounts", timeout=10).status_code == 404
