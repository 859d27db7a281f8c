"""Request limits that hold before any handler runs: the body size, single-valued parameters.

A body whose Content-Length is over the limit is answered 413 at once, unread. A body sent
without one (chunked) is counted as it arrives and refused with 413 the moment it passes the
limit, so no request makes the daemon buffer more than `max_bytes`.

Every query parameter of the API takes one value, so a repeated one (`?name=a&name=b`) is
refused with 400 rather than silently resolved: a proxy that checks the first value and an API
that uses the last would disagree (parameter pollution). Unknown parameters are ignored, as by
the Formance API, so an SDK newer than the daemon keeps working.
"""

from __future__ import annotations

from collections import Counter
from urllib.parse import parse_qsl

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from trigger_daemon.adapters.api.error_mapping import error_response
from trigger_daemon.adapters.api.schemas import ErrorCode

DEFAULT_MAX_BODY_BYTES = 1024 * 1024


class BodyLimit:
    """A pure ASGI middleware; the over-limit answer has the API's error shape."""

    def __init__(self, app: ASGIApp, max_bytes: int = DEFAULT_MAX_BODY_BYTES) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = _content_length(scope)
        if declared is not None and declared > self.max_bytes:
            await self._too_large()(scope, receive, send)
            return
        repeated = _repeated_parameters(scope)
        if repeated:
            message = f"query parameter {repeated[0]!r} is given more than once; give it once"
            await error_response(400, ErrorCode.VALIDATION, message)(scope, receive, send)
            return
        received = 0

        async def counted_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    # Raised inside the handler's body read: the error handlers answer it.
                    raise HTTPException(413, self._message())
            return message

        await self.app(scope, counted_receive, send)

    def _message(self) -> str:
        return f"the request body is larger than {self.max_bytes} bytes"

    def _too_large(self) -> ASGIApp:
        return error_response(413, ErrorCode.VALIDATION, self._message())


def _repeated_parameters(scope: Scope) -> list[str]:
    query = scope.get("query_string", b"").decode("latin-1")
    if "&" not in query:
        return []
    counts = Counter(name for name, _ in parse_qsl(query, keep_blank_values=True))
    return [name for name, count in counts.items() if count > 1]


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None  # the server itself rejects a malformed Content-Length
    return None
