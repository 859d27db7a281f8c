"""A stand-in for the Formance orchestration API's runWorkflow, on aiohttp.

It answers like Formance (201 with a full workflow instance, Formance error bodies), replays
the same instance for a repeated Idempotency-Key, records every call, and fails on demand:
from Python, or over HTTP under `/_stub/` when it runs in another process. It can demand a
static bearer token or tokens from its own OAuth2 client-credentials endpoint. For benchmarks
it can answer after a delay and only count calls (`--count-only`: no call, no instance kept,
so memory stays flat), which `GET /_stub/stats` reports as `{"calls": n}`.

It imports nothing from the daemon, so it stays an outside system (test_layering.py).

    python -m trigger_daemon.devtools.stub_orchestration --host 127.0.0.1 --port 8080
    python -m trigger_daemon.devtools.stub_orchestration --port 8080 --delay 0.02 --count-only
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import math
import secrets
import signal
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from types import TracebackType
from typing import Any

from aiohttp import web

_API_PREFIXES = ("", "/api/orchestration")
# Long enough for a slow answer in flight to finish, short enough that stop() stays quick.
_SHUTDOWN_TIMEOUT_SECONDS = 1.0


@dataclass(frozen=True, slots=True)
class StubCall:
    """One runWorkflow call as the stub received and answered it."""

    method: str
    path: str
    workflow_id: str
    api_version: str
    body: Any
    headers: dict[str, str]
    idempotency_key: str | None
    answered_status: int
    received_at: float = 0.0  # time.monotonic() when the request arrived
    answered_at: float = 0.0  # and when it was answered


@dataclass(slots=True, eq=False)  # rules are removed by identity
class _Fault:
    workflow_id: str | None
    status: int
    times: int | None
    error_message: str
    retry_after: float | None

    def __post_init__(self) -> None:
        """Checked here because faults also arrive as JSON over HTTP."""
        if self.workflow_id is not None and not isinstance(self.workflow_id, str):
            raise ValueError("workflow_id must be a string or null")
        if not _is_int(self.status) or not 400 <= self.status <= 599:
            raise ValueError("status must be an HTTP error status, 400 to 599")
        if self.times is not None and (not _is_int(self.times) or self.times < 1):
            raise ValueError("times must be a positive integer or null (always)")
        if not isinstance(self.error_message, str):
            raise ValueError("error_message must be a string")
        if self.retry_after is not None and (
            not isinstance(self.retry_after, int | float) or self.retry_after < 0
        ):
            raise ValueError("retry_after must be a non-negative number of seconds or null")

    def applies_to(self, workflow_id: str) -> bool:
        return self.workflow_id is None or self.workflow_id == workflow_id


class StubOrchestration:
    """The stub server. Settings are plain attributes and may change while it runs."""

    def __init__(
        self,
        *,
        delay_seconds: float = 0.0,
        require_bearer: str | None = None,
        oauth_clients: Mapping[str, str] | None = None,
        token_expires_in: int = 3600,
        count_only: bool = False,
    ) -> None:
        self.delay_seconds = delay_seconds
        # Count calls without keeping them or their instances (idempotent replays are off).
        self.count_only = count_only
        self._call_count = 0
        # Per-workflow answer delays, on top of delay_seconds: slow one workflow only.
        self.workflow_delays: dict[str, float] = {}
        self.require_bearer = require_bearer
        self.oauth_clients = dict(oauth_clients or {})
        self.token_expires_in = token_expires_in
        self._calls: list[StubCall] = []
        self._faults: list[_Fault] = []
        self._tokens: dict[str, float] = {}  # issued token → monotonic expiry
        self._instances: dict[tuple[str, str], dict[str, Any]] = {}
        self._token_requests = 0
        self._runner: web.AppRunner | None = None
        self._url: str | None = None

    @property
    def url(self) -> str:
        if self._url is None:
            raise RuntimeError("the stub is not started")
        return self._url

    @property
    def calls(self) -> list[StubCall]:
        """runWorkflow calls, oldest first."""
        return list(self._calls)

    @property
    def call_count(self) -> int:
        """runWorkflow calls answered since the start (`clear()` does not reset it)."""
        return self._call_count

    @property
    def token_requests(self) -> int:
        """How many times the OAuth2 token endpoint was called."""
        return self._token_requests

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> None:
        runner = web.AppRunner(
            self._app(), access_log=None, shutdown_timeout=_SHUTDOWN_TIMEOUT_SECONDS
        )
        await runner.setup()
        await web.TCPSite(runner, host, port).start()
        self._runner = runner
        self._url = f"http://{host}:{runner.addresses[0][1]}"

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
            self._url = None

    async def __aenter__(self) -> StubOrchestration:
        if self._runner is None:
            await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    def clear(self) -> None:
        """Forget the recorded calls."""
        self._calls.clear()

    def fail(
        self,
        workflow_id: str | None,
        status: int,
        times: int | None = None,
        error_message: str = "injected failure",
        retry_after: float | None = None,
    ) -> None:
        """Answer `status` to calls for `workflow_id` (None: every workflow), `times` times
        (None: until `heal()`). Rules are tried in the order they were added."""
        self._faults.append(_Fault(workflow_id, status, times, error_message, retry_after))

    def heal(self) -> None:
        self._faults.clear()

    def revoke_tokens(self) -> None:
        """Make every issued OAuth2 token invalid, so the next call gets a 401."""
        self._tokens.clear()

    def _app(self) -> web.Application:
        app = web.Application()
        for prefix in _API_PREFIXES:
            app.router.add_post(f"{prefix}/workflows/{{workflow_id}}/instances", self._run_v1)
            app.router.add_post(f"{prefix}/v2/workflows/{{workflow_id}}/instances", self._run_v2)
        app.router.add_post("/oauth/token", self._issue_token)
        app.router.add_get("/_stub/calls", self._get_calls)
        app.router.add_get("/_stub/stats", self._get_stats)
        app.router.add_delete("/_stub/calls", self._delete_calls)
        app.router.add_post("/_stub/faults", self._post_fault)
        app.router.add_delete("/_stub/faults", self._delete_faults)
        return app

    async def _run_v1(self, request: web.Request) -> web.Response:
        return await self._run_workflow(request, "v1")

    async def _run_v2(self, request: web.Request) -> web.Response:
        return await self._run_workflow(request, "v2")

    async def _run_workflow(self, request: web.Request, api_version: str) -> web.Response:
        received_at = time.monotonic()
        workflow_id = request.match_info["workflow_id"]
        delay = self.delay_seconds + self.workflow_delays.get(workflow_id, 0.0)
        if delay > 0:
            await asyncio.sleep(delay)
        body = await _json_body(request)
        key = request.headers.get("Idempotency-Key")
        response = self._answer(request, workflow_id, body, key)
        self._call_count += 1
        if self.count_only:
            return response
        self._calls.append(
            StubCall(
                method=request.method,
                path=request.path,
                workflow_id=workflow_id,
                api_version=api_version,
                body=body,
                headers={name.lower(): value for name, value in request.headers.items()},
                idempotency_key=key,
                answered_status=response.status,
                received_at=received_at,
                answered_at=time.monotonic(),
            )
        )
        return response

    def _answer(
        self, request: web.Request, workflow_id: str, body: Any, key: str | None
    ) -> web.Response:
        if not self._authorized(request.headers.get("Authorization")):
            return _error(401, "missing, unknown or expired bearer token")
        fault = self._take_fault(workflow_id)
        if fault is not None:
            return _error(fault.status, fault.error_message, fault.retry_after)
        if not isinstance(body, dict) or not all(isinstance(v, str) for v in body.values()):
            return _error(400, "the body must be a JSON object of string variables")
        return web.json_response({"data": self._instance(workflow_id, key)}, status=201)

    def _authorized(self, header: str | None) -> bool:
        if self.require_bearer is None and not self.oauth_clients:
            return True
        scheme, _, token = (header or "").partition(" ")
        if scheme.lower() != "bearer" or not token:
            return False
        if token == self.require_bearer:
            return True
        return time.monotonic() < self._tokens.get(token, 0.0)

    def _take_fault(self, workflow_id: str) -> _Fault | None:
        fault = next((f for f in self._faults if f.applies_to(workflow_id)), None)
        if fault is not None and fault.times is not None:
            fault.times -= 1
            if fault.times == 0:
                self._faults.remove(fault)
        return fault

    def _instance(self, workflow_id: str, key: str | None) -> dict[str, Any]:
        """A new instance, or the one already started for this Idempotency-Key."""
        if key is None or self.count_only:
            return _new_instance(workflow_id)
        return self._instances.setdefault((workflow_id, key), _new_instance(workflow_id))

    async def _issue_token(self, request: web.Request) -> web.Response:
        self._token_requests += 1
        form = await request.post()
        if form.get("grant_type") != "client_credentials":
            return web.json_response({"error": "unsupported_grant_type"}, status=400)
        client_id = form.get("client_id")
        secret = self.oauth_clients.get(client_id) if isinstance(client_id, str) else None
        if secret is None or form.get("client_secret") != secret:
            return web.json_response({"error": "invalid_client"}, status=401)
        token = secrets.token_urlsafe(24)
        self._tokens[token] = time.monotonic() + self.token_expires_in
        answer = {
            "access_token": token,
            "token_type": "Bearer",
            "expires_in": self.token_expires_in,
        }
        return web.json_response(answer)

    async def _get_calls(self, request: web.Request) -> web.Response:
        return web.json_response([dataclasses.asdict(call) for call in self._calls])

    async def _get_stats(self, request: web.Request) -> web.Response:
        return web.json_response({"calls": self._call_count})

    async def _delete_calls(self, request: web.Request) -> web.Response:
        self.clear()
        return web.Response(status=204)

    async def _post_fault(self, request: web.Request) -> web.Response:
        fields = await _json_body(request)
        if not isinstance(fields, dict):
            return _error(400, "the body must be a JSON object with the arguments of fail()")
        try:
            self.fail(**fields)
        except (TypeError, ValueError) as exc:
            return _error(400, str(exc))
        return web.Response(status=204)

    async def _delete_faults(self, request: web.Request) -> web.Response:
        self.heal()
        return web.Response(status=204)


def _new_instance(workflow_id: str) -> dict[str, Any]:
    """Shaped like Formance's V2WorkflowInstance (the v1 WorkflowInstance has the same fields)."""
    now = datetime.now(UTC).isoformat().replace("+00:00", "Z")
    return {
        "id": str(uuid.uuid4()),
        "workflowID": workflow_id,
        "createdAt": now,
        "updatedAt": now,
        "terminated": False,
        "status": [],
    }


def _error(status: int, message: str, retry_after: float | None = None) -> web.Response:
    """Formance's error body; Retry-After in whole seconds, as HTTP defines it."""
    code = "NOT_FOUND" if status == 404 else "INTERNAL" if status >= 500 else "VALIDATION"
    headers = {} if retry_after is None else {"Retry-After": str(math.ceil(retry_after))}
    return web.json_response(
        {"errorCode": code, "errorMessage": message}, status=status, headers=headers
    )


async def _json_body(request: web.Request) -> Any:
    try:
        return await request.json()
    except ValueError:  # empty, not JSON, or not UTF-8
        return None


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


async def _serve(host: str, port: int, delay_seconds: float, count_only: bool) -> None:
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stopping.set)
    stub = StubOrchestration(delay_seconds=delay_seconds, count_only=count_only)
    await stub.start(host, port)
    try:
        print(f"stub orchestration API listening on {stub.url}", flush=True)
        await stopping.wait()
    finally:
        await stub.stop()


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m trigger_daemon.devtools.stub_orchestration",
        description="Serve a stub Formance orchestration API (runWorkflow) until SIGINT/SIGTERM.",
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8080, help="0 picks a free port")
    parser.add_argument(
        "--delay", type=float, default=0.0, metavar="SECONDS", help="answer runWorkflow late"
    )
    parser.add_argument(
        "--count-only",
        action="store_true",
        help="only count runWorkflow calls (GET /_stub/stats); keep no call or instance",
    )
    args = parser.parse_args(argv)
    asyncio.run(_serve(args.host, args.port, args.delay, args.count_only))


if __name__ == "__main__":
    main()
