"""The API's bodies as pydantic models, for ``/openapi.json``: a task definition as ``POST
/api/tasks`` takes it, and the one-line error every refusal carries. The service checks a body with
:func:`tdetl.serve.tasks.validate` (one line naming the bad field), not with these."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class TaskDefinition(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    from_: str = Field(alias="from", description="source DSN, as tdetl run -f", examples=["csv:meters.csv"])
    to: str = Field(description="target DSN, as tdetl run -t", examples=["taos://root:taosdata@localhost:6030/db"])
    name: str | None = Field(None, description="shown in the list (default: '<source> -> <target>')")
    parser: dict[str, Any] | str | None = Field(None, description="the --parser JSON (an object), its text or @file")
    transforms: list[str] = Field(default_factory=list, description="-T rules", examples=[["add-tag:site=a"]])
    jobs: int | None = Field(None, ge=1, description="readers (--jobs)")
    on: dict[str, Any] | list[str] | None = Field(None, description="--on situation=choice",
                                                   examples=[{"ts-null": "drop"}])
    on_error: str = Field("error", description="error, drop or archive:<file>")
    labels: dict[str, str] = Field(default_factory=dict)
    restart: Literal["on-failure", "never"] = "on-failure"
    max_restarts: int = Field(10, ge=0)
    schedule: str | None = Field(None, description="cron: five fields (names, 7 for Sunday) or @daily, …",
                                 examples=["0 2 * * *"])
    timezone: str | None = Field(None, description="the schedule's IANA time zone (default UTC)",
                                 examples=["Asia/Shanghai"])
    start: bool = Field(True, description="run it now (false: stored stopped)")


class PreviewRequest(BaseModel):
    parser: dict[str, Any] | str | None = Field(None, description="the parser JSON (an object), its text or @file")
    samples: list[str] = Field(description="sample messages, or CSV lines with the header first",
                               examples=[['{"ts": 1700000000000, "v": 1.5}']])
    kind: Literal["message", "csv"] = "message"
    on_error: str = Field("error", description="as the task's: error shows the line the run would stop with")


class Problem(BaseModel):
    detail: str = Field(description="one line naming the bad value and where it came from")


def body_of(model: type[BaseModel]) -> dict[str, Any]:
    """``openapi_extra`` documenting a JSON request body."""
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": model.model_json_schema(
        by_alias=True)}}}}


REFUSALS: dict[int | str, dict[str, Any]] = {code: {"model": Problem, "description": why} for code, why in (
    (400, "the body is not JSON"), (401, "no or a wrong token"), (403, "a write from another origin"),
    (413, "the body is over 1 MiB"), (415, "not sent as application/json"),
    (422, "the definition is refused (one line naming the field)"))}
