"""A task definition: what ``tdetl run`` takes, plus a name, labels and a restart policy. Checked
against the drivers' parameter specs, the parser and the strategies before it is stored, so a bad
task is refused at once with one line naming the bad field."""

from __future__ import annotations

import json
from contextlib import nullcontext
from typing import Any

from ..drivers import as_dsn
from ..dsn import paths_relative_to
from ..errors import ConfigError, TdetlError
from ..request import RunRequest
from .confine import Confinement
from .cron import Cron

FIELDS = {"name", "from", "to", "parser", "transforms", "jobs", "on", "on_error", "labels", "restart",
          "max_restarts", "schedule", "timezone"}
RESTART = ("on-failure", "never")


def validate(body: Any, confinement: Confinement | None = None) -> dict[str, Any]:
    """The normalised definition; ConfigError/DsnError naming the field otherwise. With
    ``confinement``, every file the task would touch must lie where tasks may."""
    if not isinstance(body, dict):
        raise ConfigError("task: expected a JSON object with 'from' and 'to'")
    unknown = sorted(set(body) - FIELDS)
    if unknown:
        raise ConfigError(f"task: unknown field {unknown[0]!r} (fields: {', '.join(sorted(FIELDS))})")
    for key in ("from", "to"):
        if not isinstance(body.get(key), str) or not body[key]:
            raise ConfigError(f"task: {key!r} must be a DSN")
    parser = body.get("parser")
    if parser is not None and not isinstance(parser, (str, dict)):
        raise ConfigError("task: 'parser' must be the parser JSON (an object) or its text")
    parser_text = json.dumps(parser) if isinstance(parser, dict) else parser
    transforms = body.get("transforms") or []
    on = body.get("on") or {}
    if not isinstance(transforms, list) or not all(isinstance(t, str) for t in transforms):
        raise ConfigError("task: 'transforms' must be a list of rules such as \"add-tag:site=a\"")
    if not isinstance(on, (dict, list)):
        raise ConfigError("task: 'on' must map situations to choices, e.g. {\"ts-null\": \"drop\"}")
    jobs = body.get("jobs")
    if jobs is not None and (not isinstance(jobs, int) or jobs < 1):
        raise ConfigError("task: 'jobs' must be a whole number >= 1")
    restart = body.get("restart", "on-failure")
    if restart not in RESTART:
        raise ConfigError(f"task: 'restart' must be one of {', '.join(RESTART)}")
    max_restarts = body.get("max_restarts", 10)
    if not isinstance(max_restarts, int) or max_restarts < 0:
        raise ConfigError("task: 'max_restarts' must be a whole number >= 0")
    try:
        if confinement is not None:  # before validating reads any file the task names
            confinement.check(body["from"], body["to"], parser_text)
        with paths_relative_to(confinement.home) if confinement is not None else nullcontext():  # where it runs
            opts = RunRequest(body["from"], body["to"], parser_text, tuple(transforms), jobs,
                              body.get("on_error", "error"), on).validate()  # as the run will be
        if confinement is not None:
            confinement.check_options(opts)
    except TdetlError as e:
        raise type(e)(f"task: {e}") from None
    schedule = body.get("schedule") or None
    if schedule is not None:
        if not isinstance(schedule, str):
            raise ConfigError("task: 'schedule' must be cron text such as \"0 2 * * *\"")
        zone = body.get("timezone")
        if zone is not None and not isinstance(zone, str):
            raise ConfigError("task: 'timezone' must be an IANA name such as \"Asia/Shanghai\"")
        Cron(schedule, zone)
    name = body.get("name") or f"{as_dsn(body['from']).driver} -> {as_dsn(body['to']).driver}"
    labels = body.get("labels") or {}
    if not isinstance(labels, dict):
        raise ConfigError("task: 'labels' must be an object of strings")
    return {"name": str(name), "from": body["from"], "to": body["to"], "parser": parser_text,
            "transforms": transforms, "jobs": jobs, "on": on, "on_error": body.get("on_error", "error"),
            "labels": {str(k): str(v) for k, v in labels.items()}, "restart": restart,
            "max_restarts": max_restarts, "schedule": schedule, "timezone": body.get("timezone") or None}


def shown(definition: dict[str, Any]) -> dict[str, Any]:
    """The definition as the API shows it: DSNs with their passwords masked."""
    out = dict(definition)
    for key in ("from", "to"):
        out[key] = as_dsn(definition[key]).masked()
    return out
