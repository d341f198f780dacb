"""A real IAM/STS emulator (moto) for the AWS engine suites, with authentication enforced.

``moto`` (module scope) starts ``moto_server`` on a loopback port with AWS-managed policies
loaded, bootstraps an admin user (allow ``*``) while authentication is still off, then
switches enforcement on: from then on every call must be signed by a key that exists in
moto. The admin key is what tests give to ``aws/config/root``.

``MotoServer.proxy`` is a TCP relay in front of moto that a test can close and reopen, so
lessor sees the endpoint go away (connection refused) while moto keeps its state.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import boto3
import botocore.config
import botocore.exceptions
import pytest
import requests

from conftest import _die_with_parent, free_port

REGION = "us-east-1"
ACCOUNT = "123456789012"
ADMIN_POLICY = {
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}],
}
TRUST_ANYONE = {
    "Version": "2012-10-17",
    "Statement": [
        {"Effect": "Allow", "Principal": {"AWS": "*"}, "Action": "sts:AssumeRole"}
    ],
}


def moto_binary() -> str:
    return str(Path(sys.executable).parent / "moto_server")


def aws_client(service: str, url: str, access_key: str, secret_key: str, token: str | None = None):
    return boto3.client(
        service,
        endpoint_url=url,
        region_name=REGION,
        aws_access_key_id=access_key,
        aws_secret_access_key=secret_key,
        aws_session_token=token,
        config=botocore.config.Config(retries={"max_attempts": 1}),
    )


def caller_identity(url: str, access_key: str, secret_key: str, token: str | None = None) -> dict:
    """sts:GetCallerIdentity signed with the given key."""
    return aws_client("sts", url, access_key, secret_key, token).get_caller_identity()


def refused_code(url: str, access_key: str, secret_key: str, token: str | None = None) -> str | None:
    """The error code moto answers a call signed with this key with, or None if accepted."""
    try:
        caller_identity(url, access_key, secret_key, token)
        return None
    except botocore.exceptions.ClientError as e:
        code = e.response.get("Error", {}).get("Code")
        status = e.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        return code or f"HTTP {status}"


def wait_for(predicate, timeout: float, interval: float = 0.2, what: str = "condition"):
    """Polls `predicate` until it returns a truthy value; fails after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = predicate()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what} (last: {last!r})")


class Relay:
    """A TCP relay 127.0.0.1:port -> target that can be closed (refusing connections) and
    reopened on the same port."""

    def __init__(self, target_port: int):
        self.target_port = target_port
        self.port = free_port()
        self._sock: socket.socket | None = None
        self._conns: list[socket.socket] = []
        self._lock = threading.Lock()
        # moto closes every connection after one response: connections == AWS calls.
        self.accepted = 0
        self.open()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def open(self) -> None:
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("127.0.0.1", self.port))
        s.listen(128)
        self._sock = s
        threading.Thread(target=self._accept, args=(s,), daemon=True).start()

    def close(self) -> None:
        """Stop listening and cut every open connection: clients get refused/reset."""
        s, self._sock = self._sock, None
        if s is not None:
            # shutdown() wakes the thread blocked in accept() and stops listening at once.
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            s.close()
        with self._lock:
            conns, self._conns = self._conns, []
        for c in conns:
            try:
                c.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            c.close()

    def _accept(self, s: socket.socket) -> None:
        while True:
            try:
                client, _ = s.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(("127.0.0.1", self.target_port), timeout=5)
            except OSError:
                client.close()
                continue
            with self._lock:
                self._conns += [client, upstream]
                self.accepted += 1
                # Forget finished connections so a long run does not grow the list.
                self._conns = [c for c in self._conns if c.fileno() != -1]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(src: socket.socket, dst: socket.socket) -> None:
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                s.close()


class MotoServer:
    def __init__(self, log_path: Path):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = dict(os.environ)
        env.update(
            MOTO_IAM_LOAD_MANAGED_POLICIES="true",
            # Free calls for the bootstrap; enforcement is switched on right after it.
            INITIAL_NO_AUTH_ACTION_COUNT="100000",
        )
        for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
            env.pop(k, None)
        log = open(log_path, "ab")
        try:
            self.proc = subprocess.Popen(
                [moto_binary(), "-H", "127.0.0.1", "-p", str(self.port)],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=_die_with_parent,
                env=env,
            )
        finally:
            log.close()
        self._wait_ready()
        self.admin_user = "lessor-admin"
        self.access_key, self.secret_key = self._bootstrap()
        self.set_auth(True)
        self.iam = aws_client("iam", self.url, self.access_key, self.secret_key)
        self.proxy = Relay(self.port)

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"moto_server exited with {self.proc.returncode}")
            try:
                requests.get(f"{self.url}/moto-api/", timeout=1)
                return
            except requests.RequestException:
                time.sleep(0.05)
        raise RuntimeError("moto_server not ready")

    def _bootstrap(self) -> tuple[str, str]:
        iam = aws_client("iam", self.url, "bootstrap", "bootstrap")
        iam.create_user(UserName=self.admin_user)
        iam.put_user_policy(
            UserName=self.admin_user, PolicyName="admin", PolicyDocument=json.dumps(ADMIN_POLICY)
        )
        key = iam.create_access_key(UserName=self.admin_user)["AccessKey"]
        return key["AccessKeyId"], key["SecretAccessKey"]

    def set_auth(self, enforced: bool) -> None:
        r = requests.post(f"{self.url}/moto-api/reset-auth", data="0" if enforced else "inf", timeout=5)
        r.raise_for_status()

    def admin_key(self) -> tuple[str, str]:
        return self.access_key, self.secret_key

    def new_admin(self, name: str) -> tuple[str, str]:
        """A second admin user with its own key (for tests that rotate or revoke it)."""
        self.iam.create_user(UserName=name)
        self.iam.put_user_policy(UserName=name, PolicyName="admin", PolicyDocument=json.dumps(ADMIN_POLICY))
        key = self.iam.create_access_key(UserName=name)["AccessKey"]
        return key["AccessKeyId"], key["SecretAccessKey"]

    def create_role(self, name: str) -> str:
        r = self.iam.create_role(RoleName=name, AssumeRolePolicyDocument=json.dumps(TRUST_ANYONE))
        return r["Role"]["Arn"]

    def users(self, prefix: str = "") -> list[str]:
        names: list[str] = []
        for page in self.iam.get_paginator("list_users").paginate():
            names += [u["UserName"] for u in page["Users"] if u["UserName"].startswith(prefix)]
        return names

    def user_exists(self, name: str) -> bool:
        try:
            self.iam.get_user(UserName=name)
            return True
        except self.iam.exceptions.NoSuchEntityException:
            return False

    def stop(self) -> None:
        self.proxy.close()
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=10)


@pytest.fixture(scope="module")
def moto(log_dir: Path):
    server = MotoServer(log_dir / f"moto-{os.getpid()}-{time.monotonic_ns()}.log")
    try:
        yield server
    finally:
        server.stop()
