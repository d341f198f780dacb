"""Kubernetes auth through hvac: a pod's service-account JWT (signed by the test's own
cluster key) is checked against the role's name/namespace bindings, then confirmed by a
TokenReview stand-in on 127.0.0.1 that really verifies the JWT it is sent."""

from __future__ import annotations

import base64
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import hvac
import hvac.exceptions
import pytest
import requests
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import NameOID
import datetime

from conftest import ROOT_TOKEN, hvac_client
from test_auth_jwt import Key, b64url

MOUNT = "k8s-t"
REVIEWER = "reviewer-jwt-of-the-test"
POLICY = """
path "secret/data/k8s-allowed" {
  capabilities = ["read"]
}
"""


def _unb64(s: str) -> bytes:
    return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))


class Cluster:
    """The TokenReview API: checks the caller's bearer and the ES256 signature of the token."""

    def __init__(self, key: Key):
        self.key = key
        self.bearers: list[str] = []
        cluster = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802
                if self.path != "/apis/authentication.k8s.io/v1/tokenreviews":
                    self.send_error(404)
                    return
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                bearer = self.headers.get("Authorization", "").removeprefix("Bearer ")
                cluster.bearers.append(bearer)
                if bearer != REVIEWER:
                    self._reply(401, {"kind": "Status", "code": 401})
                    return
                self._reply(201, {"kind": "TokenReview", "status": cluster.review(body["spec"]["token"])})

            def _reply(self, code: int, body: dict):
                raw = json.dumps(body).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(raw)))
                self.end_headers()
                self.wfile.write(raw)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def review(self, token: str) -> dict:
        try:
            head, payload, sig = token.split(".")
            raw = _unb64(sig)
            der = encode_dss_signature(int.from_bytes(raw[:32], "big"), int.from_bytes(raw[32:], "big"))
            self.key.priv.public_key().verify(der, f"{head}.{payload}".encode(), ec.ECDSA(hashes.SHA256()))
        except (ValueError, InvalidSignature):
            return {"authenticated": False, "error": "invalid bearer token"}
        claims = json.loads(_unb64(payload))
        return {
            "authenticated": True,
            "user": {"username": claims["sub"],
                     "uid": claims["kubernetes.io/serviceaccount/service-account.uid"]},
            "audiences": ["https://kubernetes.default.svc"],
        }

    def close(self):
        self.server.shutdown()
        self.server.server_close()


def self_signed_ca(key: Key) -> str:
    """A CA certificate (the stand-in speaks plain HTTP, but the config wants the cluster CA)."""
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "test-cluster-ca")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name)
        .public_key(key.priv.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key.priv, hashes.SHA256())
    )
    return cert.public_bytes(Encoding.PEM).decode()


def sa_token(key: Key, ns: str, name: str) -> str:
    return key.sign({
        "iss": "kubernetes/serviceaccount",
        "sub": f"system:serviceaccount:{ns}:{name}",
        "kubernetes.io/serviceaccount/namespace": ns,
        "kubernetes.io/serviceaccount/service-account.name": name,
        "kubernetes.io/serviceaccount/service-account.uid": f"uid-{ns}-{name}",
        "kubernetes.io/serviceaccount/secret.name": f"{name}-token-x",
    })


@pytest.fixture(scope="module")
def cluster_key() -> Key:
    return Key("ES256", "cluster")


@pytest.fixture(scope="module")
def cluster(cluster_key):
    c = Cluster(cluster_key)
    yield c
    c.close()


@pytest.fixture(scope="module")
def root(dev_server, cluster) -> hvac.Client:
    c = hvac_client(dev_server.url, ROOT_TOKEN)
    c.sys.enable_auth_method("kubernetes", path=MOUNT)
    c.auth.kubernetes.configure(
        kubernetes_host=cluster.url, token_reviewer_jwt=REVIEWER, disable_local_ca_jwt=True,
        kubernetes_ca_cert=self_signed_ca(cluster.key), mount_point=MOUNT,
    )
    c.sys.create_or_update_policy("k8s-reader", POLICY)
    c.secrets.kv.v2.create_or_update_secret(path="k8s-allowed", secret={"k": "v"}, mount_point="secret")
    c.secrets.kv.v2.create_or_update_secret(path="k8s-other", secret={"k": "no"}, mount_point="secret")
    c.auth.kubernetes.create_role(
        "apps", bound_service_account_names=["app-*"], bound_service_account_namespaces=["team-*"],
        policies=["k8s-reader"], ttl="5m", mount_point=MOUNT,
    )
    return c


def test_login_reads_what_the_policy_allows(root, dev_server, cluster, cluster_key):
    client = hvac_client(dev_server.url)
    auth = client.auth.kubernetes.login("apps", sa_token(cluster_key, "team-a", "app-web"),
                                        mount_point=MOUNT)["auth"]
    assert auth["policies"] == ["default", "k8s-reader"]
    assert auth["lease_duration"] == 300
    meta = auth["metadata"]
    assert meta["service_account_name"] == "app-web"
    assert meta["service_account_namespace"] == "team-a"
    assert meta["service_account_uid"] == "uid-team-a-app-web"
    assert meta["role"] == "apps"
    assert cluster.bearers[-1] == REVIEWER
    got = client.secrets.kv.v2.read_secret_version(
        path="k8s-allowed", mount_point="secret", raise_on_deleted_version=True
    )
    assert got["data"]["data"] == {"k": "v"}
    with pytest.raises(hvac.exceptions.Forbidden):
        client.secrets.kv.v2.read_secret_version(
            path="k8s-other", mount_point="secret", raise_on_deleted_version=True
        )
    me = client.auth.token.lookup_self()["data"]
    assert me["display_name"] == f"{MOUNT}-team-a-app-web"


@pytest.mark.parametrize(
    "ns,name,message",
    [("team-a", "db", "service account name not authorized"),
     ("prod", "app-web", "namespace not authorized")],
)
def test_unbound_service_accounts_are_refused(root, dev_server, cluster_key, ns, name, message):
    r = requests.post(f"{dev_server.url}/v1/auth/{MOUNT}/login",
                      json={"role": "apps", "jwt": sa_token(cluster_key, ns, name)}, timeout=10)
    assert r.status_code == 403
    assert message in r.json()["errors"][0]


def test_forged_token_and_unknown_role(root, dev_server):
    forger = Key("ES256", "cluster")
    url = f"{dev_server.url}/v1/auth/{MOUNT}/login"
    r = requests.post(url, json={"role": "apps", "jwt": sa_token(forger, "team-a", "app-web")}, timeout=10)
    assert r.status_code == 403
    r = requests.post(url, json={"role": "nope", "jwt": sa_token(forger, "team-a", "app-web")}, timeout=10)
    assert r.status_code == 400
    assert 'invalid role name "nope"' in r.json()["errors"][0]


def test_config_never_returns_the_reviewer_jwt(root):
    data = root.auth.kubernetes.read_config(mount_point=MOUNT)  # hvac unwraps "data"
    assert data["kubernetes_host"]
    assert REVIEWER not in json.dumps(data)
