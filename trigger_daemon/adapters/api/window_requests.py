"""What the routes that start a run over a window of past events (backtests, backfills) share:
reading the body against its model, reading its `since` and `until`, and the body's OpenAPI
entry.

Every problem answers 400 VALIDATION as `invalid <noun>: <field>: <problem>`, so both routes
refuse a body alike. The body is parsed here rather than by FastAPI for that reason; the
OpenAPI entry documents what is validated.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, TypeVar

import pydantic
from fastapi import HTTPException, Request

from trigger_daemon.adapters.api.operations import read_json
from trigger_daemon.adapters.api.routes import json_body
from trigger_daemon.core.windows import parse_time

Body = TypeVar("Body", bound=pydantic.BaseModel)


async def read_body(request: Request, model: type[Body], noun: str) -> Body:
    """The request's JSON body as `model`; every field's problem named in one 400."""
    raw = await read_json(request)
    try:
        return model.model_validate(raw)
    except pydantic.ValidationError as exc:
        problems = []
        for error in exc.errors():
            location = ".".join(str(part) for part in error["loc"]) or "body"
            message = "unknown field" if error["type"] == "extra_forbidden" else error["msg"]
            problems.append(f"{location}: {message}")
        raise HTTPException(400, f"invalid {noun}: " + "; ".join(problems)) from None


def read_window(since: str, until: str | None, noun: str) -> tuple[datetime, datetime]:
    """`since` and `until` (default: now) as times, both read against the same now."""
    now = datetime.now(UTC)
    start = _time("since", since, now, noun)
    end = now if until is None else _time("until", until, now, noun)
    return start, end


def start_body(model: type[pydantic.BaseModel]) -> dict[str, Any]:
    """The `openapi_extra` of a start route whose body is `model`."""
    return json_body(model.model_json_schema(by_alias=True))


def _time(field: str, text: str, now: datetime, noun: str) -> datetime:
    try:
        return parse_time(text, now)
    except ValueError as exc:
        raise HTTPException(400, f"invalid {noun}: {field}: {exc}") from None
