"""Crash injection into issuance: a file-storage ``lessor-test-server`` is killed with SIGKILL
while test-engine credentials are being issued, at several points of the reserve -> create ->
activate protocol, then restarted and unsealed. After the (shortened) pending-lease deadline:

* every lease a client received is active: a response leaves only after activation is durable;
* the engine holds exactly as many resources as there are active leases: a reservation is
  durable before the engine creates anything, so whatever a crash interrupted is revoked.

And leases that expired while the server was down are revoked promptly after unseal.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
import requests

from lease_server import Api, TestFileServer, poll, require_test_server

require_test_server()
pytestmark = pytest.mark.lessor_only

PENDING_DEADLINE_S = 2
CREATE_DELAY_MS = 300
ISSUERS = 12
# Pending leases are revoked at the deadline; allow for the scheduler and a slow machine.
RECOVERY_TIMEOUT = 30.0


@pytest.fixture
def server(tmp_path: Path):
    created: list[TestFileServer] = []

    def make() -> tuple[TestFileServer, list[str], Api]:
        s = TestFileServer(tmp_path / f"server{len(created)}", f"{PENDING_DEADLINE_S}s")
        created.append(s)
        s.start()
        init = s.init_and_unseal()
        api = Api(s.url, init["root_token"])
        api.mount_test("test", ttl="1h", max_ttl="2h", create_delay_ms=CREATE_DELAY_MS)
        return s, init["keys"], api

    try:
        yield make
    finally:
        for s in created:
            s.stop()


class Issuers:
    """Threads issuing credentials back to back; records every lease a client received."""

    def __init__(self, api: Api, count: int):
        self.api = api
        self.seen: list[str] = []
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.threads = [threading.Thread(target=self._run, args=(i,), daemon=True) for i in range(count)]

    def _run(self, i: int) -> None:
        session = requests.Session()
        session.headers["X-Vault-Token"] = self.api.session.headers["X-Vault-Token"]
        while not self.stop.is_set():
            try:
                r = session.get(f"{self.api.url}/v1/test/creds/role{i % 3}", timeout=10)
            except requests.RequestException:
                return  # the server is gone
            if r.status_code == 200:
                with self.lock:
                    self.seen.append(r.json()["lease_id"])

    def start(self) -> "Issuers":
        for t in self.threads:
            t.start()
        return self

    def count(self) -> int:
        with self.lock:
            return len(self.seen)

    def join(self) -> None:
        self.stop.set()
        for t in self.threads:
            t.join(timeout=15)


def kill_immediately(issuers: Issuers) -> None:
    """Requests are arriving; most have not reserved yet."""
    time.sleep(0.01)


def kill_while_creating(issuers: Issuers) -> None:
    """Every request in flight has reserved and sits in the engine's creation delay."""
    time.sleep(CREATE_DELAY_MS / 2000)


def kill_right_after_responses(issuers: Issuers) -> None:
    """Responses have just left; the next requests are in every state."""
    poll(lambda: issuers.count() >= ISSUERS, 20, interval=0.005, what="first responses")


def kill_after_a_while(issuers: Issuers) -> None:
    poll(lambda: issuers.count() >= 5 * ISSUERS, 30, interval=0.01, what="several rounds of responses")
    time.sleep(0.07)


def active_leases(api: Api) -> list[dict]:
    found = []
    for lease in api.lease_ids("test/creds"):
        data = api.lookup(lease)
        if data is not None:
            found.append(data)
    return found


def settled(api: Api, restarted_at: float):
    """Past the deadline, no lease pending, and the engine agrees with the lease store."""
    if time.monotonic() < restarted_at + PENDING_DEADLINE_S:
        return None
    leases = active_leases(api)
    # Pending reservations are the non-renewable ones (the engine's leases are renewable).
    if any(not lease["renewable"] for lease in leases):
        return None
    if api.resources() != len(leases):
        return None
    return {"leases": leases}  # truthy even when no lease is left


@pytest.mark.parametrize(
    "kill_point,interrupts",
    [
        (kill_immediately, False),
        (kill_while_creating, True),
        (kill_right_after_responses, True),
        (kill_after_a_while, True),
    ],
    ids=lambda v: v.__name__ if callable(v) else None,
)
def test_sigkill_during_issuance_leaves_no_orphan(server, kill_point, interrupts):
    s, keys, api = server()
    issuers = Issuers(api, ISSUERS).start()
    try:
        kill_point(issuers)
        s.kill()
    finally:
        issuers.join()
    seen = list(issuers.seen)

    s.start()
    s.unseal(keys)
    restarted_at = time.monotonic()
    # Reservations the crash cut short, still pending with their resource until the deadline.
    pending = [lease for lease in active_leases(api) if not lease["renewable"]]
    if interrupts:
        assert pending, "the kill interrupted no issuance: nothing was tested"
    try:
        leases = poll(
            lambda: settled(api, restarted_at),
            RECOVERY_TIMEOUT,
            interval=0.2,
            what="pending leases resolved and resources == active leases",
        )["leases"]
    except AssertionError:
        print(s.log_tail())
        raise
    active = {lease["id"] for lease in leases}
    lost = [lease for lease in seen if lease not in active]
    assert not lost, f"{len(lost)} leases a client received are gone after the crash: {lost[:3]}"
    # Exactly: no resource without a lease, no lease without its resource.
    assert api.resources() == len(active)
    stats = api.ok("GET", "test/stats")["data"]
    assert stats["revoke_failures"] == 0


def test_sigkill_with_failing_creation_leaves_no_orphan(server):
    """Issuances that fail after creating (rolled back by abort) killed mid-way."""
    s, keys, api = server()
    api.ok("POST", "test/config", {"fail_create": True})
    issuers = Issuers(api, ISSUERS).start()
    try:
        time.sleep(CREATE_DELAY_MS * 1.5 / 1000)
        s.kill()
    finally:
        issuers.join()
    assert issuers.seen == []
    s.start()
    s.unseal(keys)
    restarted_at = time.monotonic()
    leases = poll(lambda: settled(api, restarted_at), RECOVERY_TIMEOUT, interval=0.2, what="settled")["leases"]
    assert leases == []
    assert api.resources() == 0


def test_restart_revokes_leases_that_expired_while_down(server):
    s, keys, api = server()
    api.ok("POST", "test/config", {"create_delay_ms": 0})
    ttl = 2
    leases = [api.ok("POST", "test/creds/short", {"ttl": f"{ttl}s"})["lease_id"] for _ in range(50)]
    keep = api.issue("long")
    issued_at = time.monotonic()
    assert api.resources() == 51
    s.kill()
    # Down until every short lease is past its expiry.
    time.sleep(max(0.0, issued_at + ttl + 1 - time.monotonic()))
    s.start()
    s.unseal(keys)
    unsealed = time.monotonic()
    # The engine revokes first and the lease record goes in the next commit, so wait for both.
    poll(
        lambda: api.resources() == 1 and all(api.lookup(lease) is None for lease in leases),
        10,
        what="expired leases revoked and removed after unseal",
    )
    took = time.monotonic() - unsealed
    assert api.lookup(keep) is not None
    assert took < 5, f"expired leases took {took:.1f}s to be revoked after unseal"
