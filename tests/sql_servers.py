"""PostgreSQL and MariaDB servers on loopback for the SQL source tests, each in a temp data dir on a
free port, started once per session. PostgreSQL refuses to run as root, so as root its files belong to
``nobody`` and its processes run as that user. A missing server skips, except under ``CI=true``."""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from .services import free_port, missing, stop, wait_port


def _pg_bin(name: str) -> str | None:
    found = shutil.which(name)
    if found:
        return found
    candidates = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    return candidates[-1] if candidates else None


@dataclass
class Postgres:
    port: int
    dir: Path
    user: str = "tdetl"

    def dsn(self, db: str = "postgres", **params: str) -> str:
        import urllib.parse

        query = urllib.parse.urlencode(params, safe="${}/:", quote_via=urllib.parse.quote)
        return f"postgres://{self.user}:pw@127.0.0.1:{self.port}/{db}" + (f"?{query}" if query else "")

    def sql(self, *statements: str, db: str = "postgres", user: str | None = None) -> None:
        import psycopg

        with psycopg.connect(host="127.0.0.1", port=self.port, user=user or self.user, password="pw", dbname=db,
                             autocommit=True) as c:
            for s in statements:
                c.execute(s)

    def rows(self, query: str, db: str = "postgres") -> list[tuple]:
        import psycopg

        with psycopg.connect(host="127.0.0.1", port=self.port, user=self.user, password="pw", dbname=db) as c:
            return c.execute(query).fetchall()


def _as_server_user() -> dict:
    if os.geteuid() != 0:
        return {}
    return {"user": "nobody", "group": "nogroup"}


def start_postgres() -> tuple[Postgres, Callable[[], None]]:
    """A PostgreSQL server (TLS on, password ``pw`` for user ``tdetl``) and the call that stops it;
    the benchmarks start it too."""
    initdb, postgres_bin = _pg_bin("initdb"), _pg_bin("postgres")
    if not initdb or not postgres_bin:
        missing("PostgreSQL's server (initdb, postgres: Debian package 'postgresql')")
    assert initdb and postgres_bin
    d = Path(tempfile.mkdtemp(prefix="tdetl-pg-"))
    d.chmod(0o755)
    who = _as_server_user()
    if who:
        shutil.chown(d, "nobody", "nogroup")
    pwfile = d / "pw"
    pwfile.write_text("pw\n")
    if who:
        shutil.chown(pwfile, "nobody", "nogroup")
    data = d / "data"
    subprocess.run([initdb, "-D", str(data), "-U", "tdetl", "--pwfile", str(pwfile), "--auth=scram-sha-256",
                    "-E", "UTF8", "--no-locale"], check=True, capture_output=True, **who)
    # TLS: a self-signed certificate, so sslmode=require and verify-full can be exercised
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=127.0.0.1",
                    "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(data / "server.key"),
                    "-out", str(data / "server.crt")], check=True, capture_output=True)
    (data / "server.key").chmod(0o600)
    if who:
        for f in ("server.key", "server.crt"):
            shutil.chown(data / f, "nobody", "nogroup")
    shutil.copy(data / "server.crt", d / "ca.crt")
    port = free_port()
    log = d / "postgres.log"
    proc = subprocess.Popen([postgres_bin, "-D", str(data), "-p", str(port), "-k", str(d), "-c",
                             "listen_addresses=127.0.0.1", "-c", "fsync=off", "-c", "ssl=on", "-c",
                             "synchronous_commit=off"], stdout=subprocess.DEVNULL, stderr=open(log, "ab"), **who)
    wait_port(port, proc, "postgres", log)
    server = Postgres(port, d)
    for _ in range(50):  # the port opens before the server accepts logins
        try:
            server.rows("select 1")
            break
        except Exception:
            time.sleep(0.1)

    def end() -> None:
        stop(proc)
        shutil.rmtree(d, ignore_errors=True)
    return server, end


@pytest.fixture(scope="session")
def postgres() -> Iterator[Postgres]:
    server, end = start_postgres()
    yield server
    end()


@dataclass
class MariaDB:
    port: int
    user: str = "tdetl"

    def dsn(self, db: str = "tdetl", **params: str) -> str:
        import urllib.parse

        query = urllib.parse.urlencode(params, safe="${}/:", quote_via=urllib.parse.quote)
        return f"mysql://{self.user}:pw@127.0.0.1:{self.port}/{db}" + (f"?{query}" if query else "")

    def connect(self, db: str | None = "tdetl", user: str | None = None, password: str = "pw") -> Any:
        import pymysql

        return pymysql.connect(host="127.0.0.1", port=self.port, user=user or self.user, password=password,
                               database=db, autocommit=True, charset="utf8mb4")

    def sql(self, *statements: str, db: str | None = "tdetl") -> None:
        c = self.connect(db)
        try:
            with c.cursor() as cur:
                for s in statements:
                    cur.execute(s)
        finally:
            c.close()

    def rows(self, query: str, db: str = "tdetl") -> list[tuple]:
        c = self.connect(db)
        try:
            with c.cursor() as cur:
                cur.execute(query)
                return list(cur.fetchall())
        finally:
            c.close()


def start_mariadb() -> tuple[MariaDB, Callable[[], None]]:
    """A MariaDB server with database ``tdetl`` (user ``tdetl``, password ``pw``) and its stop call."""
    server = shutil.which("mariadbd") or shutil.which("mysqld") or (
        "/usr/sbin/mariadbd" if Path("/usr/sbin/mariadbd").exists() else None)
    install = shutil.which("mariadb-install-db") or shutil.which("mysql_install_db")
    if not server or not install:
        missing("MariaDB's server (mariadbd, mariadb-install-db: Debian package 'mariadb-server')")
    assert server and install
    d = Path(tempfile.mkdtemp(prefix="tdetl-mariadb-"))
    user = "root" if os.geteuid() == 0 else os.environ.get("USER", "")
    subprocess.run([install, "--no-defaults", f"--datadir={d / 'data'}", f"--user={user}", "--skip-test-db",
                    "--auth-root-authentication-method=normal"], check=True, capture_output=True)
    port = free_port()
    log = d / "mariadb.log"
    proc = subprocess.Popen([server, "--no-defaults", f"--datadir={d / 'data'}", f"--user={user}", f"--port={port}",
                             "--bind-address=127.0.0.1", f"--socket={d / 'sock'}", f"--pid-file={d / 'pid'}",
                             "--skip-log-bin", "--innodb-flush-log-at-trx-commit=0", f"--log-error={log}",
                             "--character-set-server=utf8mb4", "--collation-server=utf8mb4_bin"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    log.touch()
    wait_port(port, proc, "mariadbd", log, timeout=60)
    m = MariaDB(port)
    root = m.connect(None, "root", "")
    with root.cursor() as cur:
        cur.execute("CREATE DATABASE tdetl")
        cur.execute("CREATE USER 'tdetl'@'%' IDENTIFIED BY 'pw'")
        cur.execute("GRANT ALL ON tdetl.* TO 'tdetl'@'%'")
    root.close()

    def end() -> None:
        stop(proc)
        shutil.rmtree(d, ignore_errors=True)
    return m, end


@pytest.fixture(scope="session")
def mariadb() -> Iterator[MariaDB]:
    server, end = start_mariadb()
    yield server
    end()
