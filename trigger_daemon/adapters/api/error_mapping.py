"""Every failure answers `{"errorCode", "errorMessage"}` with one of the three codes the SDKs know.

    TriggerValidationError       400 VALIDATION   the message names each field and expression
    RequestValidationError       400 VALIDATION   a bad query parameter (pageSize=abc, 5000)
    HTTPException                its status       raised by the API itself (bad JSON, bad cursor,
                                                  401/403 from auth with WWW-Authenticate, 413
                                                  from the body limit) and by routing (unknown
                                                  route, wrong method): 404 NOT_FOUND,
                                                  5xx INTERNAL, others VALIDATION
    NotFoundError                404 NOT_FOUND
    ConflictError                409 VALIDATION   a YAML trigger cannot be deleted
    StoreError                   500 INTERNAL     logged; the answer stays generic
    anything else                500 INTERNAL     logged with its traceback by CatchAll

No traceback and no backend detail reaches a client.
"""

from __future__ import annotations

from collections.abc import Mapping

import structlog
from fastapi import FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from trigger_daemon.adapters.api.schemas import Error, ErrorCode
from trigger_daemon.errors import ConflictError, NotFoundError, StoreError, TriggerValidationError

log = structlog.get_logger(__name__)

_HANDLED: tuple[type[Exception], ...] = (
    TriggerValidationError,
    RequestValidationError,
    HTTPException,
    NotFoundError,
    ConflictError,
    StoreError,
)


def install_error_handlers(app: FastAPI) -> None:
    for exc_class in _HANDLED:
        app.add_exception_handler(exc_class, _handle)
    app.add_middleware(CatchAll)


def error_response(
    status: int, code: ErrorCode, message: str, headers: Mapping[str, str] | None = None
) -> JSONResponse:
    body = Error(error_code=code, error_message=message).model_dump(by_alias=True, mode="json")
    return JSONResponse(body, status_code=status, headers=headers)


async def _handle(request: Request, exc: Exception) -> Response:
    status, code, message = _describe(request, exc)
    headers = exc.headers if isinstance(exc, HTTPException) else None
    return error_response(status, code, message, headers)


def _describe(request: Request, exc: Exception) -> tuple[int, ErrorCode, str]:
    match exc:
        case TriggerValidationError():
            return 400, ErrorCode.VALIDATION, "invalid trigger: " + "; ".join(exc.problems)
        case RequestValidationError():
            return 400, ErrorCode.VALIDATION, _describe_parameters(exc)
        case HTTPException():
            return exc.status_code, _code_for(exc.status_code), _http_message(request, exc)
        case NotFoundError():
            return 404, ErrorCode.NOT_FOUND, str(exc)
        case ConflictError():
            return 409, ErrorCode.VALIDATION, str(exc)
        case StoreError():
            log.error(
                "api_backend_failed",
                method=request.method,
                path=request.url.path,
                error=str(exc),
                retriable=exc.retriable,
            )
            return 500, ErrorCode.INTERNAL, "the trigger store failed; try again later"
    raise TypeError(f"no error mapping for {type(exc).__name__}")  # only _HANDLED arrive here


def _code_for(status: int) -> ErrorCode:
    if status == 404:
        return ErrorCode.NOT_FOUND
    return ErrorCode.INTERNAL if status >= 500 else ErrorCode.VALIDATION


def _http_message(request: Request, exc: HTTPException) -> str:
    if exc.status_code in (404, 405):  # routing: say which route was wrong
        return f"{exc.detail}: {request.method} {request.url.path}"
    return str(exc.detail)


def _describe_parameters(exc: RequestValidationError) -> str:
    problems = [
        f"{'.'.join(str(part) for part in error['loc'])}: {error['msg']}" for error in exc.errors()
    ]
    return "invalid request: " + "; ".join(problems)


class CatchAll:
    """Answers 500 INTERNAL for an exception no handler took, logging it with its traceback.

    A pure ASGI middleware: Starlette's own handler for `Exception` re-raises after answering,
    which would log every such error twice.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracked_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, tracked_send)
        except Exception:
            log.exception("api_unhandled_error", method=scope["method"], path=scope["path"])
            if started:
                raise
            message = "internal error; the daemon's log has the details"
            await error_response(500, ErrorCode.INTERNAL, message)(scope, receive, send)
