"""The lease event stream, `GET /v1/sys/leases/events`, read as Server-Sent Events with
`requests` from the real server while token leases are issued, renewed and revoked."""

from __future__ import annotations

import json
import queue
import socket
import threading
import time

import pytest
import requests

from conftest import ROOT_TOKEN, hvac_client

pytestmark = pytest.mark.lessor_only  # the event stream is lessor's own

WAIT = 10.0  # seconds to wait for one event; events arrive in milliseconds


class EventStream:
    """Reads an SSE response on a thread of its own; `next()` returns (event, data)."""

    def __init__(self, response: requests.Response):
        self.response = response
        self.items: queue.Queue = queue.Queue()
        self.comments: list[str] = []
        self.subscribed = threading.Event()
        threading.Thread(target=self._read, daemon=True).start()
        assert self.subscribed.wait(WAIT), "no opening comment"

    def _read(self) -> None:
        event, data = None, []
        try:
            for line in self.response.iter_lines(chunk_size=None, decode_unicode=True):
                if line.startswith(":"):
                    self.comments.append(line)
                    self.subscribed.set()
                elif line.startswith("event:"):
                    event = line[len("event:"):].strip()
                elif line.startswith("data:"):
                    data.append(line[len("data:"):].strip())
                elif line == "" and event is not None:
                    self.items.put((event, json.loads("\n".join(data))))
                    event, data = None, []
        except (requests.RequestException, AttributeError, ValueError):
            pass  # closed by the test
        self.items.put(None)

    def next(self, timeout: float = WAIT) -> tuple[str, dict]:
        item = self.items.get(timeout=timeout)
        assert item is not None, "the stream ended"
        return item

    def close(self) -> None:
        close_stream(self.response)


def close_stream(response: requests.Response) -> None:
    """Closes at once: a plain close() waits for the reader, blocked until the next keep-alive."""
    sock = getattr(getattr(response.raw, "_connection", None), "sock", None)
    if sock is not None:
        try:
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
    response.close()


def open_stream(url: str, headers: dict, **params) -> requests.Response:
    return requests.get(
        f"{url}/v1/sys/leases/events", params=params, headers=headers, stream=True, timeout=(5, 60)
    )


@pytest.fixture
def stream(dev_server):
    opened: list[EventStream] = []

    def make(**params) -> EventStream:
        r = open_stream(dev_server.url, {"X-Vault-Token": ROOT_TOKEN}, **params)
        assert r.status_code == 200, r.text
        assert r.headers["content-type"].startswith("text/event-stream")
        s = EventStream(r)
        opened.append(s)
        return s

    yield make
    for s in opened:
        s.close()


def test_issue_renew_revoke_of_a_token_lease(dev_server, stream):
    events = stream(prefix="auth/token/create")
    client = hvac_client(dev_server.url, ROOT_TOKEN)
    token = client.auth.token.create(ttl="1h")["auth"]["client_token"]
    client.auth.token.renew(token, increment="2h")
    client.auth.token.revoke(token)

    kind, issued = events.next()
    assert kind == "issued"
    lease_id = issued["lease_id"]
    assert lease_id.startswith("auth/token/create/")
    assert issued["mount"] == "auth/token/"
    assert 3590 <= issued["ttl"] <= 3600
    assert issued["expire_time"].endswith("Z")
    kind, renewed = events.next()
    assert (kind, renewed["lease_id"]) == ("renewed", lease_id)
    assert renewed["ttl"] > 3600
    kind, revoked = events.next()
    assert (kind, revoked["lease_id"]) == ("revoked", lease_id)
    for data in (issued, renewed, revoked):
        assert token not in json.dumps(data), "the token itself never appears"


def test_prefix_filters_and_expiring_soon_is_sent_before_expiry(dev_server, stream):
    client = hvac_client(dev_server.url, ROOT_TOKEN)
    client.auth.token.create(ttl="1h")  # not under the prefix
    role = "events-short"
    client.auth.token.create_or_update_role(role)
    # A lease issued before the subscription is announced too.
    early = client.auth.token.create(ttl="4s", role_name=role)["auth"]["accessor"]
    assert early
    events = stream(prefix=f"auth/token/create/{role}", before="3s")
    started = time.monotonic()
    kind, data = events.next()
    assert kind == "expiring-soon"
    assert data["lease_id"].startswith(f"auth/token/create/{role}/")
    assert data["ttl"] <= 3
    assert time.monotonic() - started < 3.5, "announced before the expiry, not at it"
    # Then the expiry itself revokes it.
    kind, data2 = events.next()
    assert (kind, data2["lease_id"]) == ("revoked", data["lease_id"])


def test_access_needs_read_on_the_path(dev_server):
    client = hvac_client(dev_server.url, ROOT_TOKEN)
    assert open_stream(dev_server.url, {}).status_code == 403
    client.sys.create_or_update_policy("events-reader", 'path "sys/leases/events" { capabilities = ["read"] }')
    client.sys.create_or_update_policy("events-none", 'path "secret/*" { capabilities = ["read"] }')
    reader = client.auth.token.create(policies=["events-reader"], ttl="1h")["auth"]["client_token"]
    nobody = client.auth.token.create(policies=["events-none"], ttl="1h")["auth"]["client_token"]

    denied = open_stream(dev_server.url, {"X-Vault-Token": nobody})
    assert denied.status_code == 403
    assert "permission denied" in denied.json()["errors"][0]

    bad = open_stream(dev_server.url, {"X-Vault-Token": reader}, before="soon")
    assert bad.status_code == 400
    # Other methods are ordinary requests, with the ordinary errors.
    post = requests.post(f"{dev_server.url}/v1/sys/leases/events", headers={"X-Vault-Token": ROOT_TOKEN}, timeout=10)
    assert post.status_code == 405
    assert post.json()["errors"]

    ok = open_stream(dev_server.url, {"Authorization": f"Bearer {reader}"}, prefix="auth/")
    try:
        assert ok.status_code == 200
        events = EventStream(ok)
        client.auth.token.create(ttl="1h")
        kind, _ = events.next()
        assert kind == "issued"
    finally:
        close_stream(ok)
