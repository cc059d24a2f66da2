"""tdetl serve against a hostile web page and a careless task (issue 27): the attacks that worked
(a cross-origin text/plain POST that overwrote a file and read /etc/passwd, a foreign Host header)
are refused; a token is always needed; tasks touch files only where the operator allowed; bodies
and bad JSON get 4xx."""

from __future__ import annotations

import os
import socket
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tdetl.dsn import parse_dsn
from tdetl.errors import ConfigError

from .samples import PARSER, meters
from .services import free_port

httpx = pytest.importorskip("httpx")
pytest.importorskip("fastapi")

from tdetl.serve.confine import Confinement  # noqa: E402

from .serve_helpers import Service  # noqa: E402


def _url(s: Service, path: str) -> str:
    return f"http://127.0.0.1:{s.port}{path}"


def test_the_cross_origin_text_plain_attack_is_refused(service: Service, tmp_path: Path) -> None:
    victim = tmp_path / "r1.csv"
    victim.write_text("precious\n")
    meters(10).write_csv(tmp_path / "m.csv")
    body = _json({"from": f"csv:{tmp_path / 'm.csv'}", "parser": PARSER, "to": f"csv:{victim}"})
    auth = {"Authorization": f"Bearer {service.token}"}
    # as the curl did it, with and without the token a page could not know anyway
    for headers in ({"Content-Type": "text/plain", "Origin": "http://evil.example"},
                    {"Content-Type": "text/plain", "Origin": "http://evil.example", **auth},
                    {"Content-Type": "application/json", "Origin": "http://evil.example", **auth},
                    {"Content-Type": "text/plain", **auth},
                    {"Content-Type": "application/json", "Sec-Fetch-Site": "cross-site", **auth}):
        r = httpx.post(_url(service, "/api/tasks"), content=body, headers=headers, timeout=10)
        assert r.status_code in (401, 403, 415), (headers, r.status_code, r.text)
    assert victim.read_text() == "precious\n"
    assert service.call("GET", "/api/tasks").json() == []
    # a same-origin page (the service's own) may write
    r = httpx.post(_url(service, "/api/tasks"), content=body, timeout=10,
                   headers={"Content-Type": "application/json", "Origin": f"http://127.0.0.1:{service.port}", **auth})
    assert r.status_code == 201, r.text


def test_a_foreign_host_header_is_refused_dns_rebinding(service: Service) -> None:
    auth = {"Authorization": f"Bearer {service.token}"}
    r = httpx.get(_url(service, "/api/tasks"), headers={"Host": f"evil.example:{service.port}", **auth}, timeout=10)
    assert r.status_code == 421 and "loopback names only" in r.json()["detail"]
    for host in ("localhost", "127.0.0.1"):
        r = httpx.get(_url(service, "/api/tasks"), headers={"Host": f"{host}:{service.port}", **auth}, timeout=10)
        assert r.status_code == 200


def test_a_token_is_made_on_first_start_and_kept_private(tmp_path: Path) -> None:
    s = Service(tmp_path / "data").start()
    try:
        path = tmp_path / "data" / "token"
        assert stat.S_IMODE(path.stat().st_mode) == 0o600 and len(s.token or "") >= 32
        assert httpx.get(_url(s, "/api/tasks"), timeout=10).status_code == 401
        assert httpx.get(_url(s, "/metrics"), timeout=10).status_code == 401
        assert s.call("GET", "/api/tasks").status_code == 200
        assert httpx.get(_url(s, "/static/app.js"), timeout=10).status_code == 200  # the page's own code
        log = (tmp_path / f"serve-{s.port}.log").read_text()
        assert f"tdetl serve: listening on http://127.0.0.1:{s.port} (token in {path})" in log
        assert s.token not in log
        # the page: the token once in the address, then a cookie (HttpOnly, SameSite=Strict)
        r = httpx.get(_url(s, f"/?token={s.token}"), timeout=10, follow_redirects=False)
        assert r.status_code == 303 and r.headers["location"] == "/"
        cookie = r.headers["set-cookie"].lower()
        assert "httponly" in cookie and "samesite=strict" in cookie
        with httpx.Client(cookies=r.cookies) as c:
            assert c.get(_url(s, "/api/tasks"), timeout=10).status_code == 200
        assert httpx.get(_url(s, "/?token=wrong"), timeout=10).status_code == 401
    finally:
        s.stop()
    again = Service(tmp_path / "data").start()  # the same token on the next start
    try:
        assert again.token == s.token
    finally:
        again.stop()


def test_the_token_comes_from_a_file_or_the_environment_not_argv(tmp_path: Path) -> None:
    secret = tmp_path / "secret"
    secret.write_text("file-token-123\n")
    port = free_port()
    log = tmp_path / "serve.log"
    proc = subprocess.Popen([sys.executable, "-m", "tdetl", "serve", "--port", str(port), "--data-dir",
                             str(tmp_path / "d1"), "--token-file", str(secret)], stdout=open(log, "ab"),
                            stderr=subprocess.STDOUT)
    try:
        from .services import wait_port

        wait_port(port, proc, "tdetl serve", log, timeout=30)
        r = httpx.get(f"http://127.0.0.1:{port}/api/tasks", headers={"Authorization": "Bearer file-token-123"},
                      timeout=10)
        assert r.status_code == 200
        assert "file-token-123" not in " ".join(proc.args)  # type: ignore[arg-type]
        assert f"(token from {secret})" in log.read_text() and not (tmp_path / "d1" / "token").exists()
    finally:
        proc.terminate()
        proc.wait(20)
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "tdetl", "serve", "--port", str(port), "--data-dir",
                             str(tmp_path / "d2")], stdout=open(log, "ab"), stderr=subprocess.STDOUT,
                            env=dict(os.environ, TDETL_SERVE_TOKEN="env-token-456"))
    try:
        from .services import wait_port

        wait_port(port, proc, "tdetl serve", log, timeout=30)
        ok = httpx.get(f"http://127.0.0.1:{port}/api/tasks", headers={"Authorization": "Bearer env-token-456"},
                       timeout=10)
        assert ok.status_code == 200
    finally:
        proc.terminate()
        proc.wait(20)


def test_a_bad_token_file_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "empty").write_text("\n")
    for name, why in (("missing", "No such file or directory"), ("empty", "the file is empty")):
        res = subprocess.run([sys.executable, "-m", "tdetl", "serve", "--port", str(free_port()), "--data-dir",
                              str(tmp_path / "d"), "--token-file", str(tmp_path / name)],
                             capture_output=True, text=True, timeout=30)
        assert res.returncode == 1 and res.stderr.count("\n") == 1, res.stderr
        assert res.stderr.startswith(f"tdetl: error: --token-file {tmp_path / name}: {why}"), res.stderr
    assert not (tmp_path / "d" / "token").exists()


def test_a_port_in_use_is_one_line(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        res = subprocess.run([sys.executable, "-m", "tdetl", "serve", "--port", str(port), "--data-dir",
                              str(tmp_path)], capture_output=True, text=True, timeout=30)
    assert res.returncode == 1
    assert res.stderr.strip().splitlines() == [f"tdetl: error: --port {port}: cannot listen on 127.0.0.1:{port}:"
                                               " Address already in use"]


def test_tasks_touch_files_only_where_allowed(service: Service, tmp_path: Path) -> None:
    meters(10).write_csv(tmp_path / "m.csv")
    outside = tmp_path.parent / f"outside-{os.getpid()}"
    outside.mkdir(exist_ok=True)
    (tmp_path / "link").symlink_to(outside)
    parser = _json(PARSER)
    cases = [
        ({"from": "csv:/etc/passwd", "to": f"local:{tmp_path / 'b'}"}, "'from': '/etc/passwd' is outside"),
        ({"from": f"csv:{tmp_path / 'm.csv'}", "parser": PARSER, "to": "local:/"}, "'to': '/' is outside"),
        ({"from": f"csv:{tmp_path}/../*.csv", "parser": PARSER, "to": f"local:{tmp_path / 'b'}"}, "is outside"),
        ({"from": f"csv:{tmp_path / 'm.csv'}", "parser": PARSER, "to": f"csv:{tmp_path / 'link' / 'x.csv'}"},
         "link/x.csv' is outside"),
        ({"from": f"csv:{tmp_path / 'm.csv'}", "parser": "@/etc/hostname", "to": f"local:{tmp_path / 'b'}"},
         "'parser': '/etc/hostname' is outside"),
        ({"from": f"csv:{tmp_path / 'm.csv'}", "parser": PARSER, "to": f"local:{tmp_path / 'b'}",
          "on_error": "archive:/tmp/stolen.jsonl"}, "'on_error': '/tmp/stolen.jsonl' is outside"),
        ({"from": f"csv:{tmp_path / 'm.csv'}", "parser": PARSER, "to": f"local:{tmp_path / 'b'}",
          "on": {"archive": "../../x"}}, "'on' archive: '../../x' is outside"),
        ({"from": "mqtt://127.0.0.1:1883?topics=a&client_id=c&ca=@/etc/ssl/private/k.pem", "parser": parser,
          "to": f"local:{tmp_path / 'b'}"}, "parameter ca: '/etc/ssl/private/k.pem' is outside"),
    ]
    for body, why in cases:
        r = service.call("POST", "/api/tasks", json=body)
        assert r.status_code == 422 and why in r.json()["detail"], (body, r.text)
        assert "\n" not in r.json()["detail"]
    assert service.call("GET", "/api/tasks").json() == []
    # relative paths resolve against the first --files directory, where the task runs
    r = service.call("POST", "/api/tasks", json={"from": "csv:m.csv", "parser": PARSER, "to": "duckdb:rel.duckdb"})
    assert r.status_code == 201, r.text
    service.wait_for(r.json()["id"], lambda t: t["state"] == "finished")
    assert (tmp_path / "rel.duckdb").exists()


def test_bodies_are_bounded_and_bad_json_is_4xx(service: Service, tmp_path: Path) -> None:
    auth = {"Authorization": f"Bearer {service.token}", "Content-Type": "application/json"}
    big = b'{"name": "' + b"x" * (1 << 20) + b'"}'
    assert httpx.post(_url(service, "/api/tasks"), content=big, headers=auth, timeout=30).status_code == 413

    def chunks() -> Iterator[bytes]:  # no Content-Length: counted as it arrives
        for _ in range(20):
            yield b" " * (100 << 10)

    r = httpx.post(_url(service, "/api/tasks"), content=chunks(), headers=auth, timeout=30)
    assert r.status_code == 413
    r = httpx.post(_url(service, "/api/tasks"), content=b'{"from": ', headers=auth, timeout=10)
    assert r.status_code == 400 and "not JSON" in r.json()["detail"]
    meters(10).write_csv(tmp_path / "m.csv")
    task = {"from": f"csv:{tmp_path / 'm.csv'}", "parser": PARSER, "start": False, "to": f"duckdb:{tmp_path / 'o.db'}"}
    tid = service.call("POST", "/api/tasks", json=task).json()["id"]
    r = httpx.patch(_url(service, f"/api/tasks/{tid}"), content=b"name=x", timeout=10,
                    headers={"Authorization": f"Bearer {service.token}", "Content-Type": "text/plain"})
    assert r.status_code == 415
    r = httpx.patch(_url(service, f"/api/tasks/{tid}"), content=b"{", headers=auth, timeout=10)
    assert r.status_code == 400
    r = httpx.patch(_url(service, f"/api/tasks/{tid}"), content=b"[1]", headers=auth, timeout=10)
    assert r.status_code == 422


@settings(max_examples=200, deadline=None)
@given(st.lists(st.sampled_from(["..", ".", "a", "b", "link", "/", "~"]), min_size=1, max_size=8))
def test_confinement_accepts_exactly_the_paths_inside(tmp_path_factory: Any, parts: list[str]) -> None:
    base = tmp_path_factory.getbasetemp() / "confine"
    root, other = base / "root", base / "other"
    for d in (root / "a" / "b", other):
        d.mkdir(parents=True, exist_ok=True)
    if not (root / "link").exists():
        (root / "link").symlink_to(other)
    text = "/".join(parts)
    raw = parse_dsn(f"csv:{text}").raw_path  # the path the driver reads (dsn.path): "" is refused by it
    where = Path(os.path.realpath(root / Path(raw).expanduser()))
    inside = where == Path(os.path.realpath(root)) or Path(os.path.realpath(root)) in where.parents
    try:
        Confinement([root]).check(f"csv:{text}", f"local:{root / 'a'}", None)
        accepted = True
    except ConfigError as e:
        accepted = False
        assert "is outside the directories tasks may use" in str(e) and "\n" not in str(e)
    assert accepted == inside, text


def _json(doc: Any) -> str:
    import json

    return json.dumps(doc)


def test_the_parser_preview_shows_tables_and_refuses_bad_requests(service: Service, tmp_path: Path) -> None:
    from .test_mqtt import PARSER as MQTT_PARSER
    from .test_mqtt import _doc

    samples = [_json(_doc(i)) for i in range(3)] + ['{"ts": "soon", "id": 1}']
    r = service.call("POST", "/api/parser/preview", json={"parser": MQTT_PARSER, "samples": samples,
                                                            "kind": "message", "on_error": "drop"})
    assert r.status_code == 200, r.text
    got = r.json()
    assert [(t["table"], t["stable"], t["rows"]) for t in got["tables"]] == [("m_sf", "meters", 3)]
    assert [c["type"] for c in got["tables"][0]["columns"]] == ["TIMESTAMP", "INT", "DOUBLE"]
    assert got["outcomes"] == {"type-mismatch dropped": 1} and got["error"] is None
    stops = service.call("POST", "/api/parser/preview", json={"parser": MQTT_PARSER, "samples": samples}).json()
    assert "'soon' is not a valid TIMESTAMP" in stops["error"] and stops["tables"][0]["rows"] == 3
    for body, why in (({"parser": "@/etc/hostname", "samples": ["{}"]}, "is outside the directories"),
                      ({"parser": MQTT_PARSER, "samples": "x"}, "'samples' must be a list"),
                      ({"parser": MQTT_PARSER, "samples": ["{}"], "kind": "xml"}, "'kind' must be message or csv"),
                      ({"parser": MQTT_PARSER, "samples": ["{}"] * 1001}, "at most 1,000 samples"),
                      ({"parser": "{nope", "samples": ["{}"]}, "not valid JSON")):
        r = service.call("POST", "/api/parser/preview", json=body)
        assert r.status_code == 422 and why in r.json()["detail"] and "\n" not in r.json()["detail"], r.text
    assert not list(tmp_path.glob("**/tdetl-archive*"))  # a preview writes nothing


@settings(max_examples=60, deadline=None)
@given(st.lists(st.text(max_size=80) | st.sampled_from(['{"ts": 1, "id": 1e999}', '[1, 2]', '{"ts": null}',
                                                         '{"a": ' * 300, '"\\ud800"', "null"]),
                min_size=1, max_size=8))
def test_any_sample_previews_or_is_refused_in_one_line(samples: list[str]) -> None:
    from tdetl.errors import TdetlError
    from tdetl.serve.preview import preview

    from .test_mqtt import PARSER as MQTT_PARSER

    for on_error in ("drop", "error"):
        try:
            got = preview(MQTT_PARSER, samples, "message", on_error)
        except TdetlError as e:
            assert "\n" not in str(e)
            continue
        assert got["error"] is None or "\n" not in got["error"]
        assert sum(t["rows"] for t in got["tables"]) <= len(samples)


def test_a_made_token_never_looks_like_an_option() -> None:
    """One token_urlsafe in 64 starts with '-': `tdetl serve --token <it>` would then be refused
    (seen when a test restarted a service with the token it had made)."""
    from tdetl.serve.guard import new_token

    tokens = [new_token() for _ in range(5000)]
    assert not [t for t in tokens if t.startswith("-")] and min(map(len, tokens)) >= 43
