"""HTTP to the JSON APIs of time-series databases (InfluxDB 1.x, OpenTSDB): a refusal or an
unreachable server becomes one line with the server's own message, as users need to see it."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Callable
from typing import Any

from ...errors import SourceError


def open_json_api(request: str | urllib.request.Request, *, server: str, base: str, what: str, where: str,
                  timeout: float, message: Callable[[Any], Any]) -> Any:
    """The open response; ``message`` picks the error text out of an error reply's JSON."""
    try:
        return urllib.request.urlopen(request, timeout=timeout)
    except urllib.error.HTTPError as e:
        body = e.read().decode("utf-8", "replace")
        try:
            msg = message(json.loads(body))
        except (ValueError, KeyError, IndexError, TypeError):
            msg = None
        raise SourceError(f"{where}: {server} refused {what}: HTTP {e.code}: {msg or body.strip()[:200]}") from None
    except (urllib.error.URLError, OSError) as e:
        raise SourceError(f"{where}: cannot reach {server} at {base}: {e}") from None
