"""Who may drive ``tdetl serve``: a bearer token always (generated on first start, kept 0600 in the
data directory, taken once by the page and kept in a cookie), writes only as JSON and never from a
page of another origin, and on loopback only under a loopback host name (DNS rebinding); bodies are
bounded."""

from __future__ import annotations

import hmac
import json
import os
import secrets
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from fastapi import HTTPException, Request
from fastapi.responses import JSONResponse, RedirectResponse, Response

from ..durable import make_dirs

TOKEN_FILE = "token"
TOKEN_ENV = "TDETL_SERVE_TOKEN"
COOKIE = "tdetl_token"
MAX_BODY = 1 << 20  # bytes of a request body
UNSAFE = frozenset({"POST", "PUT", "PATCH", "DELETE"})
LOOPBACK_NAMES = frozenset({"127.0.0.1", "localhost", "::1", "[::1]"})
PUBLIC = ("/static/",)  # the page's own code: no secret in it


def token_for(data_dir: Path, given: str | None, token_file: str | None) -> tuple[str, str]:
    """The token and where it comes from: ``--token-file``, the environment, ``--token``, else the
    data directory's (made on first start)."""
    if token_file:
        try:
            text = Path(token_file).expanduser().read_text(encoding="utf-8").strip()
        except OSError as e:
            raise OSError(f"--token-file {token_file}: {e.strerror}") from None
        if not text:
            raise OSError(f"--token-file {token_file}: the file is empty")
        return text, f"token from {token_file}"
    if os.environ.get(TOKEN_ENV):
        return os.environ[TOKEN_ENV], f"token from ${TOKEN_ENV}"
    if given:
        return given, "token from --token"
    path = data_dir / TOKEN_FILE
    if not path.exists():
        make_dirs(data_dir)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(new_token() + "\n")
    os.chmod(path, 0o600)
    return path.read_text(encoding="utf-8").strip(), f"token in {path}"


def new_token() -> str:
    """32 random bytes, URL-safe; never starting with '-', which a command line would take for an
    option (``--token -x…`` is refused by the argument parser)."""
    while True:
        token = secrets.token_urlsafe(32)
        if not token.startswith("-"):
            return token


class Guard:
    def __init__(self, token: str, bound: str) -> None:
        self.token = token
        # on loopback a page can reach us under any name a DNS server maps to 127.0.0.1: only loopback
        # names are served; beyond loopback the token is the guard (the name is the operator's choice)
        self.hosts = LOOPBACK_NAMES | {bound} if bound in LOOPBACK_NAMES or bound.startswith("127.") else None

    def _authorised(self, request: Request) -> bool:
        given = request.headers.get("authorization", "")
        if not given and COOKIE in request.cookies:
            given = f"Bearer {request.cookies[COOKIE]}"
        return hmac.compare_digest(given.encode(), f"Bearer {self.token}".encode())

    def _refusal(self, request: Request) -> tuple[int, str] | None:
        host = urlsplit(f"//{request.headers.get('host', '')}").hostname or ""
        if self.hosts is not None and host not in self.hosts and f"[{host}]" not in self.hosts:
            return 421, f"this service answers on loopback names only, not {host[:100]!r}"
        if request.method in UNSAFE:
            origin = request.headers.get("origin")
            if origin is not None and urlsplit(origin).netloc != request.headers.get("host", ""):
                return 403, f"a write from another origin ({origin[:100]}) is refused"
            if request.headers.get("sec-fetch-site", "same-origin") not in ("same-origin", "none"):
                return 403, "a write from another site is refused"
            length = request.headers.get("content-length")
            if length is not None and length.isdigit() and int(length) > MAX_BODY:
                return 413, f"the body is {int(length):,} bytes; at most {MAX_BODY:,}"
            has_body = (length is not None and length != "0") or "transfer-encoding" in request.headers
            kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
            if has_body and kind != "application/json":
                return 415, f"send JSON with Content-Type: application/json (not {kind[:60] or 'none'!r})"
        return None

    async def __call__(self, request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        refused = self._refusal(request)
        if refused is not None:
            return JSONResponse({"detail": refused[1]}, status_code=refused[0])
        if request.url.path.startswith(PUBLIC):
            return await call_next(request)
        given = request.query_params.get("token")
        if request.method == "GET" and request.url.path == "/" and given is not None:
            if not hmac.compare_digest(given.encode(), self.token.encode()):
                return JSONResponse({"detail": "wrong token"}, status_code=401)
            # the page keeps the token in a cookie no script reads and no other site sends; the URL drops it
            out = RedirectResponse("/", status_code=303)
            out.set_cookie(COOKIE, self.token, httponly=True, samesite="strict", path="/")
            return out
        if not self._authorised(request):
            return JSONResponse({"detail": "missing or wrong token: send Authorization: Bearer <token>, or open the"
                                           " page once as /?token=<token>"}, status_code=401)
        return await call_next(request)


async def json_body(request: Request) -> Any:
    """The request's JSON, read to at most MAX_BODY bytes (413 beyond, 400 when it is not JSON)."""
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BODY:
            raise HTTPException(413, f"the body is over {MAX_BODY:,} bytes")
        chunks.append(chunk)
    try:
        return json.loads(b"".join(chunks))
    except (ValueError, UnicodeDecodeError) as e:
        raise HTTPException(400, f"the body is not JSON: {str(e)[:200]}") from None
