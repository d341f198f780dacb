"""KV v1 and v2 round trips through hvac, as an application would use them."""

from __future__ import annotations

import hvac
import hvac.exceptions
import pytest
import requests

from conftest import ROOT_TOKEN, hvac_client

DEFAULT_LEASE_TTL = 2764800  # 768h, the system default lease TTL of an untuned mount


@pytest.fixture(scope="module")
def client(dev_server) -> hvac.Client:
    c = hvac_client(dev_server.url, ROOT_TOKEN)
    c.sys.enable_secrets_engine("kv", path="kv1", options={"version": "1"})
    return c


def test_dev_server_has_kv_v2_at_secret(client: hvac.Client):
    mounts = client.sys.list_mounted_secrets_engines()["data"]
    assert mounts["secret/"]["type"] == "kv"
    assert mounts["secret/"]["options"]["version"] == "2"
    assert mounts["kv1/"]["type"] == "kv"
    assert mounts["kv1/"]["options"].get("version") in (None, "1")


class TestKvV1:
    def test_write_read_has_no_lease(self, client: hvac.Client):
        kv = client.secrets.kv.v1
        r = kv.create_or_update_secret(path="app/db", secret={"user": "x", "n": 3}, mount_point="kv1")
        assert r.status_code == 204
        got = kv.read_secret(path="app/db", mount_point="kv1")
        assert got["data"] == {"user": "x", "n": 3}
        assert got["lease_id"] == ""
        assert got["renewable"] is False
        assert got["lease_duration"] == DEFAULT_LEASE_TTL

    def test_ttl_key_sets_lease_duration_and_stays_in_data(self, client: hvac.Client):
        kv = client.secrets.kv.v1
        kv.create_or_update_secret(path="withttl", secret={"a": "b", "ttl": "1h"}, mount_point="kv1")
        got = kv.read_secret(path="withttl", mount_point="kv1")
        assert got["lease_duration"] == 3600
        assert got["lease_id"] == ""
        assert got["data"] == {"a": "b", "ttl": "1h"}

    def test_overwrite_replaces_whole_value(self, client: hvac.Client):
        kv = client.secrets.kv.v1
        kv.create_or_update_secret(path="over", secret={"a": "1", "b": "2"}, mount_point="kv1")
        kv.create_or_update_secret(path="over", secret={"c": "3"}, mount_point="kv1")
        assert kv.read_secret(path="over", mount_point="kv1")["data"] == {"c": "3"}

    def test_list_shows_keys_and_folders(self, client: hvac.Client):
        kv = client.secrets.kv.v1
        for path in ("list/a", "list/b", "list/sub/c"):
            kv.create_or_update_secret(path=path, secret={"v": path}, mount_point="kv1")
        keys = kv.list_secrets(path="list", mount_point="kv1")["data"]["keys"]
        assert sorted(keys) == ["a", "b", "sub/"]
        assert kv.list_secrets(path="list/sub", mount_point="kv1")["data"]["keys"] == ["c"]

    def test_delete_then_read_and_list_are_404(self, client: hvac.Client):
        kv = client.secrets.kv.v1
        kv.create_or_update_secret(path="gone/x", secret={"a": "b"}, mount_point="kv1")
        assert kv.delete_secret(path="gone/x", mount_point="kv1").status_code == 204
        with pytest.raises(hvac.exceptions.InvalidPath):
            kv.read_secret(path="gone/x", mount_point="kv1")
        with pytest.raises(hvac.exceptions.InvalidPath):
            kv.list_secrets(path="gone", mount_point="kv1")

    def test_read_absent_is_404(self, client: hvac.Client):
        with pytest.raises(hvac.exceptions.InvalidPath):
            client.secrets.kv.v1.read_secret(path="never/written", mount_point="kv1")


class TestKvV2:
    @staticmethod
    def read(client: hvac.Client, path: str, version: int | None = None) -> dict:
        return client.secrets.kv.v2.read_secret_version(
            path=path, version=version, mount_point="secret", raise_on_deleted_version=False
        )

    def test_create_update_and_versions(self, client: hvac.Client):
        kv = client.secrets.kv.v2
        w1 = kv.create_or_update_secret(path="app/cfg", secret={"user": "x"}, mount_point="secret")
        assert w1["data"]["version"] == 1
        assert w1["data"]["destroyed"] is False
        assert w1["data"]["deletion_time"] == ""
        assert w1["data"]["created_time"]
        w2 = kv.create_or_update_secret(path="app/cfg", secret={"user": "y"}, cas=1, mount_point="secret")
        assert w2["data"]["version"] == 2

        latest = self.read(client, "app/cfg")
        assert latest["data"]["data"] == {"user": "y"}
        assert latest["data"]["metadata"]["version"] == 2
        assert latest["lease_id"] == ""
        assert latest["lease_duration"] == 0
        assert latest["renewable"] is False
        assert self.read(client, "app/cfg", version=1)["data"]["data"] == {"user": "x"}

    def test_cas_mismatch_and_create_only(self, client: hvac.Client):
        kv = client.secrets.kv.v2
        kv.create_or_update_secret(path="cas", secret={"a": "1"}, cas=0, mount_point="secret")
        with pytest.raises(hvac.exceptions.InvalidRequest, match="check-and-set"):
            kv.create_or_update_secret(path="cas", secret={"a": "2"}, cas=0, mount_point="secret")
        with pytest.raises(hvac.exceptions.InvalidRequest, match="check-and-set"):
            kv.create_or_update_secret(path="cas", secret={"a": "2"}, cas=5, mount_point="secret")
        # Nothing was written by the refused calls.
        assert self.read(client, "cas")["data"]["data"] == {"a": "1"}
        assert kv.read_secret_metadata(path="cas", mount_point="secret")["data"]["current_version"] == 1

    def test_cas_required_by_metadata(self, client: hvac.Client):
        kv = client.secrets.kv.v2
        kv.create_or_update_secret(path="casreq", secret={"a": "1"}, mount_point="secret")
        kv.update_metadata(path="casreq", cas_required=True, mount_point="secret")
        with pytest.raises(hvac.exceptions.InvalidRequest, match="check-and-set parameter required"):
            kv.create_or_update_secret(path="casreq", secret={"a": "2"}, mount_point="secret")
        kv.create_or_update_secret(path="casreq", secret={"a": "2"}, cas=1, mount_point="secret")
        assert self.read(client, "casreq")["data"]["data"] == {"a": "2"}

    def test_patch_merges(self, client: hvac.Client):
        kv = client.secrets.kv.v2
        kv.create_or_update_secret(path="patched", secret={"a": "1", "b": "2"}, mount_point="secret")
        r = kv.patch(path="patched", secret={"b": "3", "c": "4"}, mount_point="secret")
        assert r["data"]["version"] == 2
        assert self.read(client, "patched")["data"]["data"] == {"a": "1", "b": "3", "c": "4"}

    def test_metadata(self, client: hvac.Client):
        kv = client.secrets.kv.v2
        for i in range(3):
            kv.create_or_update_secret(path="meta", secret={"i": i}, mount_point="secret")
        kv.update_metadata(
            path="meta", max_versions=5, custom_metadata={"owner": "team-a"}, mount_point="secret"
        )
        md = kv.read_secret_metadata(path="meta", mount_point="secret")["data"]
        assert md["current_version"] == 3
        assert md["oldest_version"] in (0, 1)
        assert md["max_versions"] == 5
        assert md["cas_required"] is False
        assert md["custom_metadata"] == {"owner": "team-a"}
        assert sorted(md["versions"]) == ["1", "2", "3"]
        for v in md["versions"].values():
            assert v["destroyed"] is False
            assert v["deletion_time"] == ""
            assert v["created_time"]
        assert md["created_time"] and md["updated_time"]

    def test_soft_delete_undelete_destroy(self, client: hvac.Client):
        kv = client.secrets.kv.v2
        kv.create_or_update_secret(path="life", secret={"v": "1"}, mount_point="secret")
        kv.create_or_update_secret(path="life", secret={"v": "2"}, mount_point="secret")

        kv.delete_latest_version_of_secret(path="life", mount_point="secret")
        deleted = self.read(client, "life")
        assert deleted["data"]["data"] is None
        assert deleted["data"]["metadata"]["version"] == 2
        assert deleted["data"]["metadata"]["deletion_time"] != ""
        with pytest.raises(hvac.exceptions.InvalidPath):
            kv.read_secret_version(path="life", mount_point="secret", raise_on_deleted_version=True)
        # The older version is untouched.
        assert self.read(client, "life", version=1)["data"]["data"] == {"v": "1"}

        kv.undelete_secret_versions(path="life", versions=[2], mount_point="secret")
        assert self.read(client, "life")["data"]["data"] == {"v": "2"}

        kv.delete_secret_versions(path="life", versions=[1], mount_point="secret")
        assert self.read(client, "life", version=1)["data"]["data"] is None
        kv.destroy_secret_versions(path="life", versions=[1], mount_point="secret")
        gone = self.read(client, "life", version=1)
        assert gone["data"]["data"] is None
        assert gone["data"]["metadata"]["destroyed"] is True
        md = kv.read_secret_metadata(path="life", mount_point="secret")["data"]
        assert md["versions"]["1"]["destroyed"] is True
        assert md["versions"]["2"]["destroyed"] is False
        # A destroyed version cannot be brought back.
        kv.undelete_secret_versions(path="life", versions=[1], mount_point="secret")
        assert self.read(client, "life", version=1)["data"]["data"] is None

    def test_list(self, client: hvac.Client):
        kv = client.secrets.kv.v2
        for path in ("tree/a", "tree/b", "tree/sub/c"):
            kv.create_or_update_secret(path=path, secret={"p": path}, mount_point="secret")
        keys = kv.list_secrets(path="tree", mount_point="secret")["data"]["keys"]
        assert sorted(keys) == ["a", "b", "sub/"]
        assert "tree/" in kv.list_secrets(path="", mount_point="secret")["data"]["keys"]
        with pytest.raises(hvac.exceptions.InvalidPath):
            kv.list_secrets(path="no-such-folder", mount_point="secret")

    def test_delete_metadata_removes_everything(self, client: hvac.Client):
        kv = client.secrets.kv.v2
        kv.create_or_update_secret(path="purge/x", secret={"a": "1"}, mount_point="secret")
        kv.create_or_update_secret(path="purge/x", secret={"a": "2"}, mount_point="secret")
        kv.delete_metadata_and_all_versions(path="purge/x", mount_point="secret")
        with pytest.raises(hvac.exceptions.InvalidPath):
            kv.read_secret_metadata(path="purge/x", mount_point="secret")
        with pytest.raises(hvac.exceptions.InvalidPath):
            kv.read_secret_version(path="purge/x", mount_point="secret", raise_on_deleted_version=True)
        with pytest.raises(hvac.exceptions.InvalidPath):
            kv.list_secrets(path="purge", mount_point="secret")
        # The path starts over at version 1.
        w = kv.create_or_update_secret(path="purge/x", secret={"a": "3"}, mount_point="secret")
        assert w["data"]["version"] == 1

    def test_max_versions_purges_oldest(self, client: hvac.Client):
        kv = client.secrets.kv.v2
        kv.create_or_update_secret(path="capped", secret={"i": 0}, mount_point="secret")
        kv.update_metadata(path="capped", max_versions=2, mount_point="secret")
        for i in range(1, 4):
            kv.create_or_update_secret(path="capped", secret={"i": i}, mount_point="secret")
        md = kv.read_secret_metadata(path="capped", mount_point="secret")["data"]
        assert md["current_version"] == 4
        assert sorted(md["versions"]) == ["3", "4"]
        assert md["oldest_version"] == 3
        with pytest.raises(hvac.exceptions.InvalidPath):
            kv.read_secret_version(
                path="capped", version=1, mount_point="secret", raise_on_deleted_version=True
            )


def test_kv_v1_legacy_lease_key(client: hvac.Client):
    client.secrets.kv.v1.create_or_update_secret(path="legacy", secret={"a": "b", "lease": "30m"}, mount_point="kv1")
    got = client.secrets.kv.v1.read_secret(path="legacy", mount_point="kv1")
    assert got["lease_duration"] == 1800
    assert got["data"] == {"a": "b", "lease": "30m"}


def test_kv_v1_lease_follows_mount_tune(client: hvac.Client):
    client.sys.enable_secrets_engine("kv", path="kv1-tuned", options={"version": "1"})
    client.sys.tune_mount_configuration("kv1-tuned", default_lease_ttl="1h")
    tuned = client.sys.read_mount_configuration("kv1-tuned")["data"]
    assert tuned["default_lease_ttl"] == 3600
    assert tuned["max_lease_ttl"] == DEFAULT_LEASE_TTL
    client.secrets.kv.v1.create_or_update_secret(path="k", secret={"a": "b"}, mount_point="kv1-tuned")
    assert client.secrets.kv.v1.read_secret(path="k", mount_point="kv1-tuned")["lease_duration"] == 3600


def test_unknown_parameters_are_ignored_with_warning(client: hvac.Client, dev_server):
    r = requests.post(
        f"{dev_server.url}/v1/secret/data/warned",
        headers={"X-Vault-Token": ROOT_TOKEN},
        json={"data": {"a": "b"}, "bogus": 1},
        timeout=10,
    )
    assert r.status_code == 200
    assert r.json()["warnings"] == ["Endpoint ignored these unrecognized parameters: [bogus]"]
    got = client.secrets.kv.v2.read_secret_version(path="warned", mount_point="secret", raise_on_deleted_version=True)
    assert got["data"]["data"] == {"a": "b"}
