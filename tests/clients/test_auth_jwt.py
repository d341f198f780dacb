"""JWT auth against a real issuer: the test serves an OIDC discovery document and a JWKS
from its own HTTP server on 127.0.0.1, signs real tokens (RS256, ES256, EdDSA) with keys it
generates, and logs in through hvac and the `bao` CLI."""

from __future__ import annotations

import base64
import datetime
import ipaddress
import json
import ssl
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import hvac
import hvac.exceptions
import pytest
import requests
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat
from cryptography.x509.oid import NameOID

from conftest import ROOT_TOKEN, bao, hvac_client

MOUNT = "jwt-t"
POLICY = """
path "secret/data/jwt-allowed" {
  capabilities = ["read"]
}
"""


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _int_bytes(n: int, size: int | None = None) -> bytes:
    size = size or (n.bit_length() + 7) // 8
    return n.to_bytes(size, "big")


class Key:
    """A signing key with its JWK."""

    def __init__(self, kind: str, kid: str):
        self.kind, self.kid = kind, kid
        if kind == "RS256":
            self.priv = rsa.generate_private_key(public_exponent=65537, key_size=2048)
            pub = self.priv.public_key().public_numbers()
            self.jwk = {"kty": "RSA", "n": b64url(_int_bytes(pub.n)), "e": b64url(_int_bytes(pub.e))}
        elif kind == "ES256":
            self.priv = ec.generate_private_key(ec.SECP256R1())
            pub = self.priv.public_key().public_numbers()
            self.jwk = {"kty": "EC", "crv": "P-256", "x": b64url(_int_bytes(pub.x, 32)),
                        "y": b64url(_int_bytes(pub.y, 32))}
        else:
            self.priv = ed25519.Ed25519PrivateKey.generate()
            raw = self.priv.public_key().public_bytes_raw()
            self.jwk = {"kty": "OKP", "crv": "Ed25519", "x": b64url(raw)}
        self.jwk.update({"kid": kid, "use": "sig"})

    def sign(self, claims: dict) -> str:
        alg = "EdDSA" if self.kind == "EdDSA" else self.kind
        header = {"alg": alg, "typ": "JWT", "kid": self.kid}
        signing_input = f"{b64url(json.dumps(header).encode())}.{b64url(json.dumps(claims).encode())}"
        data = signing_input.encode()
        if self.kind == "RS256":
            sig = self.priv.sign(data, padding.PKCS1v15(), hashes.SHA256())
        elif self.kind == "ES256":
            r, s = decode_dss_signature(self.priv.sign(data, ec.ECDSA(hashes.SHA256())))
            sig = _int_bytes(r, 32) + _int_bytes(s, 32)
        else:
            sig = self.priv.sign(data)
        return f"{signing_input}.{b64url(sig)}"


class Issuer:
    """Serves `/.well-known/openid-configuration` and `/jwks` on a free loopback port."""

    def __init__(self, keys: list[Key], tls_dir=None):
        self.keys = keys
        issuer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 (http.server's naming)
                if self.path == "/.well-known/openid-configuration":
                    body = {"issuer": issuer.url, "jwks_uri": f"{issuer.url}/jwks"}
                elif self.path == "/jwks":
                    body = {"keys": [k.jwk for k in issuer.keys]}
                else:
                    self.send_error(404)
                    return
                raw = json.dumps(body).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(raw)))
                self.end_headers()
                self.wfile.write(raw)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        scheme = "http"
        self.ca_pem = ""
        if tls_dir is not None:
            self.ca_pem, cert_file, key_file = make_tls(tls_dir)
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.load_cert_chain(cert_file, key_file)
            self.server.socket = ctx.wrap_socket(self.server.socket, server_side=True)
            scheme = "https"
        self.url = f"{scheme}://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


def make_tls(directory) -> tuple[str, str, str]:
    """A CA and a server certificate for 127.0.0.1 signed by it: (CA PEM, cert file, key file)."""
    now = datetime.datetime.now(datetime.timezone.utc)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "test issuer CA")])
    ca = (
        x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name)
        .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                     content_commitment=False, key_encipherment=False,
                                     data_encipherment=False, key_agreement=False,
                                     encipher_only=False, decipher_only=False), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
        .issuer_name(ca_name).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                       critical=False)
        .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    cert_file, key_file = directory / "server.pem", directory / "server.key"
    cert_file.write_bytes(cert.public_bytes(Encoding.PEM))
    key_file.write_bytes(key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption()))
    return ca.public_bytes(Encoding.PEM).decode(), str(cert_file), str(key_file)


@pytest.fixture(scope="module")
def keys() -> dict[str, Key]:
    return {k: Key(k, f"kid-{k.lower()}") for k in ("RS256", "ES256", "EdDSA")}


@pytest.fixture(scope="module")
def issuer(keys):
    i = Issuer(list(keys.values()))
    yield i
    i.close()


@pytest.fixture(scope="module")
def root(dev_server, issuer) -> hvac.Client:
    c = hvac_client(dev_server.url, ROOT_TOKEN)
    c.sys.enable_auth_method("jwt", path=MOUNT)
    c.auth.jwt.configure(oidc_discovery_url=issuer.url, bound_issuer=issuer.url, path=MOUNT)
    c.sys.create_or_update_policy("jwt-reader", POLICY)
    c.secrets.kv.v2.create_or_update_secret(path="jwt-allowed", secret={"k": "v"}, mount_point="secret")
    c.secrets.kv.v2.create_or_update_secret(path="jwt-other", secret={"k": "no"}, mount_point="secret")
    c.auth.jwt.create_role(
        "ci", role_type="jwt", user_claim="sub", bound_audiences=["lessor"],
        bound_claims={"repo": "org/*"}, bound_claims_type="glob",
        token_policies=["jwt-reader"], token_ttl="10m", allowed_redirect_uris=[], path=MOUNT,
    )
    return c


def claims(issuer: Issuer, **over) -> dict:
    now = int(time.time())
    c = {"iss": issuer.url, "sub": "build-7", "aud": "lessor", "iat": now, "nbf": now,
         "exp": now + 300, "repo": "org/app"}
    c.update(over)
    return c


@pytest.mark.parametrize("alg", ["RS256", "ES256", "EdDSA"])
def test_hvac_login_with_each_algorithm(root, dev_server, issuer, keys, alg):
    client = hvac_client(dev_server.url)
    resp = client.auth.jwt.jwt_login("ci", keys[alg].sign(claims(issuer)), path=MOUNT)
    auth = resp["auth"]
    assert auth["policies"] == ["default", "jwt-reader"]
    assert auth["metadata"]["role"] == "ci"
    assert auth["lease_duration"] == 600
    client.token = auth["client_token"]
    got = client.secrets.kv.v2.read_secret_version(
        path="jwt-allowed", mount_point="secret", raise_on_deleted_version=True
    )
    assert got["data"]["data"] == {"k": "v"}
    with pytest.raises(hvac.exceptions.Forbidden):
        client.secrets.kv.v2.read_secret_version(
            path="jwt-other", mount_point="secret", raise_on_deleted_version=True
        )
    assert client.auth.token.lookup_self()["data"]["display_name"] == f"{MOUNT}-build-7"


def test_bao_cli_login(root, dev_server, issuer, keys):
    jwt = keys["ES256"].sign(claims(issuer))
    out = bao("write", "-format=json", f"auth/{MOUNT}/login", "role=ci", f"jwt={jwt}",
              url=dev_server.url).check().json()
    assert "jwt-reader" in out["auth"]["policies"]


@pytest.mark.parametrize(
    "over",
    [
        {"exp": int(time.time()) - 3600},
        {"aud": "someone-else"},
        {"iss": "https://elsewhere.example"},
        {"repo": "evil/app"},
    ],
    ids=["expired", "audience", "issuer", "bound-claim"],
)
def test_bad_tokens_answer_400(root, dev_server, issuer, keys, over):
    jwt = keys["RS256"].sign(claims(issuer, **over))
    r = requests.post(f"{dev_server.url}/v1/auth/{MOUNT}/login", json={"role": "ci", "jwt": jwt}, timeout=10)
    assert r.status_code == 400, r.text
    assert r.json()["errors"]


def test_forged_and_unsigned_tokens_answer_400(root, dev_server, issuer):
    forger = Key("RS256", "kid-rs256")  # the issuer's key id, another key
    unsigned = f"{b64url(json.dumps({'alg': 'none'}).encode())}.{b64url(json.dumps(claims(issuer)).encode())}."
    for jwt in (forger.sign(claims(issuer)), unsigned):
        r = requests.post(f"{dev_server.url}/v1/auth/{MOUNT}/login", json={"role": "ci", "jwt": jwt}, timeout=10)
        assert r.status_code == 400, r.text


def test_oidc_role_type_cannot_log_in_with_a_jwt(root, dev_server, issuer, keys):
    # hvac sends role_type "jwt" unless told otherwise; the server's default is "oidc".
    root.auth.jwt.create_role(
        "browser", role_type="oidc", user_claim="sub", allowed_redirect_uris=["http://localhost:8250/oidc/callback"],
        bound_audiences=["lessor"], path=MOUNT,
    )
    r = requests.post(
        f"{dev_server.url}/v1/auth/{MOUNT}/login",
        json={"role": "browser", "jwt": keys["RS256"].sign(claims(issuer))}, timeout=10,
    )
    assert r.status_code == 400
    assert "role with oidc role_type is not allowed" in r.json()["errors"][0]


def test_jwks_over_tls_trusts_only_the_given_ca(root, dev_server, keys, tmp_path):
    tls = Issuer([keys["EdDSA"]], tls_dir=tmp_path)
    try:
        mount = "jwt-tls"
        root.sys.enable_auth_method("jwt", path=mount)
        # Without the CA the issuer's certificate is not trusted: the write fails.
        with pytest.raises(hvac.exceptions.InvalidRequest):
            root.auth.jwt.configure(jwks_url=f"{tls.url}/jwks", path=mount)
        root.auth.jwt.configure(jwks_url=f"{tls.url}/jwks", jwks_ca_pem=tls.ca_pem, path=mount)
        root.auth.jwt.create_role("r", role_type="jwt", user_claim="sub", bound_audiences=["lessor"],
                                  allowed_redirect_uris=[], path=mount)
        auth = hvac_client(dev_server.url).auth.jwt.jwt_login(
            "r", keys["EdDSA"].sign(claims(tls)), path=mount
        )["auth"]
        assert auth["client_token"]
    finally:
        tls.close()
