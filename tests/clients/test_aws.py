"""The AWS engine through hvac against moto with authentication enforced: configuration,
roles and their validation, every credential type, renewal, expiry and prefix revocation,
revocation with a role, static roles."""

from __future__ import annotations

import json
import time

import hvac
import hvac.exceptions
import pytest

from conftest import ROOT_TOKEN, hvac_client
from moto_fixture import caller_identity, moto, refused_code, wait_for  # noqa: F401

pytestmark = pytest.mark.lessor_only

READ_ONLY = "arn:aws:iam::aws:policy/ReadOnlyAccess"
_MOUNTS = iter(range(1000))


@pytest.fixture(scope="module")
def client(dev_server) -> hvac.Client:
    return hvac_client(dev_server.url, ROOT_TOKEN)


@pytest.fixture
def mount(client, moto):
    """A fresh aws mount configured with moto's admin key; yields its path."""
    path = f"aws{next(_MOUNTS)}"
    client.sys.enable_secrets_engine("aws", path=path)
    ak, sk = moto.admin_key()
    client.secrets.aws.configure_root_iam_credentials(
        access_key=ak,
        secret_key=sk,
        region="us-east-1",
        iam_endpoint=moto.url,
        sts_endpoint=moto.url,
        mount_point=path,
    )
    yield path
    client.sys.disable_secrets_engine(path)


def write(client: hvac.Client, path: str, **data):
    return client.adapter.post(f"/v1/{path}", json=data)


def read(client: hvac.Client, path: str):
    return client.adapter.get(f"/v1/{path}")


def user_of(moto, ak: str, sk: str) -> str:
    return caller_identity(moto.url, ak, sk)["Arn"].rsplit("/", 1)[1]


# --- configuration ---------------------------------------------------------------------------


def test_config_root_and_lease(client, mount, moto):
    cfg = read(client, f"{mount}/config/root")["data"]
    assert cfg["access_key"] == moto.admin_key()[0]
    assert "secret_key" not in cfg
    assert cfg["max_retries"] == -1 and cfg["region"] == "us-east-1"
    assert cfg["iam_endpoint"] == moto.url
    assert cfg["username_template"].startswith('{{ if (eq .Type "STS") }}')

    with pytest.raises(hvac.exceptions.InvalidPath):
        read(client, f"{mount}/config/lease")
    with pytest.raises(hvac.exceptions.InvalidRequest, match="'lease' is a required parameter"):
        write(client, f"{mount}/config/lease", lease_max="1h")
    with pytest.raises(hvac.exceptions.InvalidRequest, match="Invalid lease"):
        write(client, f"{mount}/config/lease", lease="3600", lease_max="1h")
    write(client, f"{mount}/config/lease", lease="30m", lease_max="12h")
    assert read(client, f"{mount}/config/lease")["data"] == {"lease": "30m0s", "lease_max": "12h0m0s"}


def test_custom_username_template(client, mount, moto):
    ak, sk = moto.admin_key()
    write(
        client,
        f"{mount}/config/root",
        access_key=ak,
        secret_key=sk,
        region="us-east-1",
        iam_endpoint=moto.url,
        sts_endpoint=moto.url,
        username_template="tpl_{{.DisplayName}}_{{.PolicyName}}_{{ random 6 | lowercase }}",
    )
    write(client, f"{mount}/roles/tpl", credential_type="iam_user", policy_arns=[READ_ONLY])
    c = read(client, f"{mount}/creds/tpl")
    user = user_of(moto, c["data"]["access_key"], c["data"]["secret_key"])
    assert user.startswith("tpl_root_tpl_") and len(user) == len("tpl_root_tpl_") + 6
    client.sys.revoke_lease(c["lease_id"])
    with pytest.raises(hvac.exceptions.InvalidRequest, match="unable to initialize username template"):
        write(client, f"{mount}/config/root", username_template="{{ nosuch }}")


# --- roles -----------------------------------------------------------------------------------


def test_roles_crud_and_list(client, mount):
    write(
        client,
        f"{mount}/roles/dev",
        credential_type="iam_user",
        policy_arns=f"{READ_ONLY},arn:aws:iam::aws:policy/IAMReadOnlyAccess",
        policy_document=json.dumps({"Version": "2012-10-17", "Statement": []}, indent=2),
        iam_groups="g1,g2",
        iam_tags=["team=infra", "env=dev"],
        user_path="/lessor/",
    )
    r = read(client, f"{mount}/roles/dev")["data"]
    assert r["credential_type"] == "iam_user"
    assert r["policy_arns"] == [READ_ONLY, "arn:aws:iam::aws:policy/IAMReadOnlyAccess"]
    assert r["policy_document"] == '{"Version":"2012-10-17","Statement":[]}'
    assert r["iam_groups"] == ["g1", "g2"]
    assert r["iam_tags"] == {"team": "infra", "env": "dev"}
    assert r["role_arns"] is None and r["session_tags"] is None
    assert r["user_path"] == "/lessor/" and r["default_sts_ttl"] == 0
    write(client, f"{mount}/roles/fed", credential_type="federation_token", policy_arns=[READ_ONLY], default_sts_ttl="20m", max_sts_ttl="1h")
    r = read(client, f"{mount}/roles/fed")["data"]
    assert (r["default_sts_ttl"], r["max_sts_ttl"], r["user_path"]) == (1200, 3600, "")
    assert client.adapter.request("LIST", f"/v1/{mount}/roles")["data"]["keys"] == ["dev", "fed"]
    client.adapter.delete(f"/v1/{mount}/roles/fed")
    with pytest.raises(hvac.exceptions.InvalidPath):
        read(client, f"{mount}/roles/fed")


@pytest.mark.parametrize(
    "data, message",
    [
        (
            {"credential_type": "iam_user", "role_arns": "arn:aws:iam::123456789012:role/x"},
            "cannot supply role_arns when credential_type isn't assumed_role",
        ),
        ({"credential_type": "iam_user", "default_sts_ttl": 900}, "default_sts_ttl parameter only valid for"),
        (
            {"credential_type": "federation_token", "policy_arns": READ_ONLY, "default_sts_ttl": 7200, "max_sts_ttl": 3600},
            '\\"default_sts_ttl\\" value must be less than or equal to \\"max_sts_ttl\\" value',
        ),
        ({"credential_type": "session_token", "user_path": "/x/"}, "user_path parameter only valid for iam_user"),
        ({"credential_type": "iam_user", "user_path": "no-slash"}, "the specified value for user_path is invalid"),
        ({"credential_type": "iam_user", "permissions_boundary_arn": "arn:aws:iam::1:role/x"}, "invalid permissions_boundary_arn"),
        ({"credential_type": "iam_user", "mfa_serial_number": "arn:aws:iam::1:mfa/x"}, "cannot supply mfa_serial_number"),
        ({"credential_type": "iam_user", "external_id": "e"}, "cannot supply external_id when credential_type isn't assumed_role"),
        ({"credential_type": "bogus"}, "unrecognized credential type: bogus"),
        ({"policy_arns": READ_ONLY}, "did not supply credential_type"),
    ],
)
def test_role_validation(client, mount, data, message):
    with pytest.raises(hvac.exceptions.InvalidRequest) as e:
        write(client, f"{mount}/roles/bad", **data)
    text = str(e.value)
    assert "error(s) validating supplied role data: " in text
    assert message in text


def test_legacy_policy_warns(client, mount):
    resp = write(client, f"{mount}/roles/legacy", arn=READ_ONLY)
    assert "Detected use of legacy role or policy parameter" in resp["warnings"][0]
    assert read(client, f"{mount}/roles/legacy")["data"]["policy_arns"] == [READ_ONLY]
    # A legacy policy document serves both: an IAM user from creds/, a federation token
    # from sts/.
    doc = json.dumps({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}]})
    write(client, f"{mount}/roles/legacy-doc", policy=doc)
    assert read(client, f"{mount}/roles/legacy-doc")["data"]["credential_type"] == "iam_user,federation_token"
    user = read(client, f"{mount}/creds/legacy-doc")
    assert user["data"]["security_token"] is None and user["renewable"]
    fed = write(client, f"{mount}/sts/legacy-doc")
    assert fed["data"]["security_token"] and fed["renewable"] is False
    client.sys.revoke_lease(user["lease_id"])


def test_unknown_role(client, mount):
    with pytest.raises(hvac.exceptions.InvalidRequest, match='Role "nope" not found'):
        read(client, f"{mount}/creds/nope")


# --- iam_user --------------------------------------------------------------------------------


def test_iam_user_everything_attached_then_revoked(client, mount, moto):
    moto.iam.create_group(GroupName=f"{mount}-devs")
    doc = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:ListBucket", "Resource": "*"}]}
    write(
        client,
        f"{mount}/roles/full",
        credential_type="iam_user",
        policy_document=json.dumps(doc),
        policy_arns=[READ_ONLY],
        iam_groups=[f"{mount}-devs"],
        iam_tags=["team=infra"],
    )
    c = client.secrets.aws.generate_credentials("full", mount_point=mount)
    ak, sk = c["data"]["access_key"], c["data"]["secret_key"]
    assert c["data"]["security_token"] is None and c["renewable"]
    user = user_of(moto, ak, sk)
    assert len(user) <= 64
    assert [p["PolicyArn"] for p in moto.iam.list_attached_user_policies(UserName=user)["AttachedPolicies"]] == [READ_ONLY]
    assert moto.iam.list_user_policies(UserName=user)["PolicyNames"] == ["full"]
    assert [g["GroupName"] for g in moto.iam.list_groups_for_user(UserName=user)["Groups"]] == [f"{mount}-devs"]
    assert {"Key": "team", "Value": "infra"} in moto.iam.list_user_tags(UserName=user)["Tags"]
    # Something a person added by hand does not stop the revocation.
    moto.iam.create_login_profile(UserName=user, Password="Passw0rd!Passw0rd")

    client.sys.revoke_lease(c["lease_id"])
    assert not moto.user_exists(user)
    assert refused_code(moto.url, ak, sk) == "InvalidClientTokenId"
    assert moto.iam.get_group(GroupName=f"{mount}-devs")["Users"] == []


def test_failed_issuance_leaves_nothing(client, mount, moto):
    """AttachUserPolicy fails (no such policy) after CreateUser: the user is removed."""
    write(client, f"{mount}/roles/broken", credential_type="iam_user", policy_arns="arn:aws:iam::aws:policy/NoSuchPolicyAnywhere")
    before = set(moto.users())
    with pytest.raises(hvac.exceptions.InvalidRequest):
        read(client, f"{mount}/creds/broken")
    assert set(moto.users()) == before
    with pytest.raises(hvac.exceptions.InvalidPath):
        client.adapter.request("LIST", f"/v1/sys/leases/lookup/{mount}/creds/broken/")


def test_short_ttl_user_deleted_without_client_action(client, mount, moto):
    write(client, f"{mount}/config/lease", lease="2s", lease_max="10s")
    write(client, f"{mount}/roles/short", credential_type="iam_user", policy_arns=[READ_ONLY])
    c = read(client, f"{mount}/creds/short")
    assert c["lease_duration"] == 2
    user = user_of(moto, c["data"]["access_key"], c["data"]["secret_key"])
    wait_for(lambda: not moto.user_exists(user), 15, what=f"user {user} deleted at expiry")


def test_revoke_prefix_fifty_users(client, mount, moto):
    write(client, f"{mount}/roles/many", credential_type="iam_user", policy_arns=[READ_ONLY])
    prefix = f"vault-root-many-"
    for _ in range(50):
        read(client, f"{mount}/creds/many")
    assert len(moto.users(prefix)) == 50
    client.sys.revoke_prefix(f"{mount}/creds/many")
    wait_for(lambda: not moto.users(prefix), 60, what="50 users deleted")
    with pytest.raises(hvac.exceptions.InvalidPath):
        client.adapter.request("LIST", f"/v1/sys/leases/lookup/{mount}/creds/many/")


def test_delete_role_revoke_leases(client, mount, moto):
    write(client, f"{mount}/roles/gone", credential_type="iam_user", policy_arns=[READ_ONLY])
    write(client, f"{mount}/roles/gone2", credential_type="iam_user", policy_arns=[READ_ONLY])
    users = [user_of(moto, c["data"]["access_key"], c["data"]["secret_key"]) for c in (read(client, f"{mount}/creds/gone") for _ in range(2))]
    other = read(client, f"{mount}/creds/gone2")
    client.adapter.delete(f"/v1/{mount}/roles/gone", params={"revoke_leases": "true"})
    assert not any(moto.user_exists(u) for u in users)
    # The role with a longer name that shares the prefix keeps its lease.
    assert client.sys.read_lease(other["lease_id"])["data"]["id"] == other["lease_id"]
    client.sys.revoke_lease(other["lease_id"])


# --- STS -------------------------------------------------------------------------------------


def test_federation_token_shape_and_expiry(client, mount, moto):
    write(client, f"{mount}/roles/fed", credential_type="federation_token", policy_arns=[READ_ONLY], max_sts_ttl="2h")
    c = write(client, f"{mount}/sts/fed", ttl="1h")
    d = c["data"]
    assert set(d) >= {"access_key", "secret_key", "security_token", "session_token"}
    assert d["security_token"] and "arn" not in d
    assert c["renewable"] is False
    assert 3590 <= c["lease_duration"] <= 3600
    # Past max_sts_ttl: capped.
    c2 = write(client, f"{mount}/sts/fed", ttl="5h")
    assert 7190 <= c2["lease_duration"] <= 7200
    with pytest.raises(hvac.exceptions.InvalidRequest, match="lease is not renewable"):
        client.sys.renew_lease(c["lease_id"])
    client.sys.revoke_lease(c["lease_id"])
    write(client, f"{mount}/roles/fed-nopolicy", credential_type="federation_token")
    with pytest.raises(hvac.exceptions.InvalidRequest, match="must specify at least one of policy_arns or policy_document"):
        write(client, f"{mount}/sts/fed-nopolicy")


def test_session_token_shape(client, mount):
    write(client, f"{mount}/roles/sess", credential_type="session_token", default_sts_ttl="30m")
    c = read(client, f"{mount}/creds/sess")
    d = c["data"]
    assert d["access_key"] and d["secret_key"] and d["session_token"] == d["security_token"]
    assert 1790 <= c["lease_duration"] <= 1800 and c["renewable"] is False


def test_assumed_role_with_hvac(client, mount, moto):
    arns = [moto.create_role(f"{mount}-a"), moto.create_role(f"{mount}-b")]
    client.secrets.aws.create_or_update_role("two", "assumed_role", role_arns=arns, mount_point=mount)
    with pytest.raises(hvac.exceptions.InvalidRequest, match="role_arn"):
        client.secrets.aws.generate_credentials("two", endpoint="sts", mount_point=mount)
    c = client.secrets.aws.generate_credentials("two", role_arn=arns[1], ttl="900s", endpoint="sts", mount_point=mount)
    d = c["data"]
    assert f"assumed-role/{mount}-b/" in d["arn"]
    ident = caller_identity(moto.url, d["access_key"], d["secret_key"], d["security_token"])
    assert f"assumed-role/{mount}-b" in ident["Arn"]
    c = write(client, f"{mount}/sts/two", role_arn=arns[0], role_session_name="my session!")
    assert c["data"]["arn"].endswith("/my_session_")


# --- static roles ----------------------------------------------------------------------------


@pytest.fixture
def fast_mount(client, moto):
    """A mount whose static roles may rotate every few seconds."""
    path = f"awsfast{next(_MOUNTS)}"
    client.sys.enable_secrets_engine("aws", path=path, options={"static_min_rotation_period": "1s"})
    ak, sk = moto.admin_key()
    client.secrets.aws.configure_root_iam_credentials(ak, sk, region="us-east-1", iam_endpoint=moto.url, sts_endpoint=moto.url, mount_point=path)
    yield path
    client.sys.disable_secrets_engine(path)


def test_static_role_rotation(client, fast_mount, moto):
    mount = fast_mount
    user = f"{mount}-svc"
    moto.iam.create_user(UserName=user)
    # Two keys already: the first write rotates the oldest away.
    first = moto.iam.create_access_key(UserName=user)["AccessKey"]
    moto.iam.create_access_key(UserName=user)
    with pytest.raises(hvac.exceptions.InvalidRequest, match="does not exist"):
        write(client, f"{mount}/static-roles/svc", username="nobody-here", rotation_period="3s")
    write(client, f"{mount}/static-roles/svc", username=user, rotation_period="3s")
    assert read(client, f"{mount}/static-roles/svc")["data"] == {"name": "svc", "username": user, "rotation_period": 3}
    c1 = read(client, f"{mount}/static-creds/svc")["data"]
    assert set(c1) == {"access_key", "secret_key", "expiration"}
    keys = [k["AccessKeyId"] for k in moto.iam.list_access_keys(UserName=user)["AccessKeyMetadata"]]
    assert keys == [c1["access_key"]] and first["AccessKeyId"] not in keys
    assert user_of(moto, c1["access_key"], c1["secret_key"]) == user

    c2 = wait_for(
        lambda: (c := read(client, f"{mount}/static-creds/svc")["data"])["access_key"] != c1["access_key"] and c,
        15,
        what="a scheduled rotation",
    )
    # The new key is persisted (and readable) before the old one is deleted, so a crash can never
    # lose track of a key; a read can land in that short window, or in the next rotation's.
    # What must hold is that it settles on exactly the key being handed out, and c1 is gone.
    def settled():
        keys = [k["AccessKeyId"] for k in moto.iam.list_access_keys(UserName=user)["AccessKeyMetadata"]]
        current = read(client, f"{mount}/static-creds/svc")["data"]["access_key"]
        return keys == [current] and keys

    keys = wait_for(settled, 10, what="only the handed-out key left after rotation")
    assert c1["access_key"] not in keys and c2["access_key"] != c1["access_key"]
    assert refused_code(moto.url, c1["access_key"], c1["secret_key"]) == "InvalidClientTokenId"
    assert client.adapter.request("LIST", f"/v1/{mount}/static-roles")["data"]["keys"] == ["svc"]
    client.adapter.delete(f"/v1/{mount}/static-roles/svc")
    with pytest.raises(hvac.exceptions.InvalidPath):
        read(client, f"{mount}/static-creds/svc")


def test_static_role_minimum_period(client, mount, moto):
    moto.iam.create_user(UserName=f"{mount}-min")
    with pytest.raises(hvac.exceptions.InvalidRequest, match="rotation_period must be at least 1m"):
        write(client, f"{mount}/static-roles/min", username=f"{mount}-min", rotation_period="30s")


def test_sts_fallback_endpoint(client, mount, moto):
    """The primary STS endpoint refuses connections: the fallback answers."""
    from conftest import free_port

    ak, sk = moto.admin_key()
    dead = f"http://127.0.0.1:{free_port()}"
    write(
        client,
        f"{mount}/config/root",
        access_key=ak,
        secret_key=sk,
        region="us-east-1",
        iam_endpoint=moto.url,
        sts_endpoint=dead,
        sts_fallback_endpoints=[moto.url],
        sts_fallback_regions=["us-west-2"],
        max_retries=0,
    )
    cfg = read(client, f"{mount}/config/root")["data"]
    assert cfg["sts_fallback_endpoints"] == [moto.url] and cfg["sts_fallback_regions"] == ["us-west-2"]
    arn = moto.create_role(f"{mount}-fb")
    write(client, f"{mount}/roles/fb", credential_type="assumed_role", role_arns=[arn])
    c = write(client, f"{mount}/sts/fb")
    assert f"assumed-role/{mount}-fb/" in c["data"]["arn"]
    with pytest.raises(hvac.exceptions.InvalidRequest, match="same length"):
        write(client, f"{mount}/config/root", sts_fallback_endpoints=[moto.url])
