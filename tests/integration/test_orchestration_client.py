"""runWorkflow against the real stub orchestration API over HTTP on 127.0.0.1: the
OrchestrationClient (one request, classified) inside the WorkflowCaller (retry policy).
The circuit breaker is kept out of the way here (a huge threshold); test_calls.py covers it."""

from __future__ import annotations

import asyncio
import json
import re
import socket
import ssl
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from trigger_daemon import __version__
from trigger_daemon.adapters.orchestration import (
    BearerTokenAuth,
    ClientCredentialsAuth,
    OrchestrationClient,
)
from trigger_daemon.core.circuit import CircuitBreaker, CircuitSettings
from trigger_daemon.core.retry import RetryPolicy
from trigger_daemon.devtools.stub_orchestration import StubOrchestration
from trigger_daemon.engine.calls import WorkflowCaller
from trigger_daemon.errors import ConfigError
from trigger_daemon.testing import AmongGoodCalls

from .conftest import answering
from .pki import Pki, make_pki

FAST_POLICY = RetryPolicy(max_attempts=4, initial_backoff_seconds=0.01, max_backoff_seconds=5.0)
SECRET = "s3cr3t-never-printed"
MakeClient = Callable[..., WorkflowCaller]
NO_CIRCUIT = CircuitSettings(failure_threshold=1_000_000)


@pytest.fixture
async def stub() -> AsyncIterator[StubOrchestration]:
    async with StubOrchestration() as server:
        yield server


@pytest.fixture
def sleeps() -> list[float]:
    """The back-off delays the client asked for, recorded instead of slept."""
    return []


@pytest.fixture
async def make_client(stub: StubOrchestration, sleeps: list[float]) -> AsyncIterator[MakeClient]:
    clients: list[OrchestrationClient] = []

    async def record_sleep(seconds: float) -> None:
        sleeps.append(seconds)

    def make(default_policy: RetryPolicy = FAST_POLICY, **overrides: Any) -> WorkflowCaller:
        settings: dict[str, Any] = {
            "base_url": stub.url,
            "api_version": "v2",
            "auth": None,
            "timeout_seconds": 5.0,
        } | overrides
        client = OrchestrationClient(**settings)
        clients.append(client)
        # These tests are about answers, not outages: the API is up for other calls, so each
        # transient failure is the workflow's own and spends an attempt.
        breaker = CircuitBreaker(NO_CIRCUIT)
        return WorkflowCaller(
            AmongGoodCalls(client, breaker), default_policy, breaker, sleep=record_sleep
        )

    yield make
    for client in clients:
        await client.aclose()


def oauth(stub: StubOrchestration, secret: str = SECRET) -> ClientCredentialsAuth:
    return ClientCredentialsAuth(f"{stub.url}/oauth/token", "daemon", secret, ["orchestration"])


async def run(client: WorkflowCaller, workflow_id: str = "review-deposit", **kw: Any) -> Any:
    return await client.run_workflow(
        workflow_id, {"txid": "42"}, idempotency_key=kw.pop("key", "trigger-1:event-1"), **kw
    )


async def test_v2_posts_vars_to_the_v2_path_and_returns_the_instance(
    stub: StubOrchestration, make_client: MakeClient
) -> None:
    result = await run(make_client())

    assert result.succeeded
    assert result.attempts == 1
    assert result.status_code == 201
    assert result.error is None
    assert result.instance["workflowID"] == "review-deposit"
    assert {"id", "createdAt", "updatedAt", "terminated"} <= result.instance.keys()
    [call] = stub.calls
    assert (call.method, call.path, call.api_version) == (
        "POST",
        "/v2/workflows/review-deposit/instances",
        "v2",
    )
    assert call.body == {"txid": "42"}


@pytest.mark.parametrize(
    ("api_version", "base_path", "expected_path"),
    [
        ("v1", "", "/workflows/review-deposit/instances"),
        ("v1", "/", "/workflows/review-deposit/instances"),
        ("v2", "/api/orchestration", "/api/orchestration/v2/workflows/review-deposit/instances"),
        ("v1", "/api/orchestration/", "/api/orchestration/workflows/review-deposit/instances"),
    ],
)
async def test_path_follows_api_version_and_base_url_with_or_without_slash(
    stub: StubOrchestration,
    make_client: MakeClient,
    api_version: str,
    base_path: str,
    expected_path: str,
) -> None:
    client = make_client(api_version=api_version, base_url=stub.url + base_path)

    assert (await run(client)).succeeded
    assert [(c.path, c.api_version) for c in stub.calls] == [(expected_path, api_version)]


async def test_workflow_id_is_url_quoted(stub: StubOrchestration, make_client: MakeClient) -> None:
    result = await run(make_client(), workflow_id="review/deposit now")

    assert result.succeeded
    assert stub.calls[0].workflow_id == "review/deposit now"


async def test_headers_carry_idempotency_key_traceparent_and_authorization(
    stub: StubOrchestration, make_client: MakeClient
) -> None:
    traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
    client = make_client(auth=BearerTokenAuth("static-token"))

    await run(client, key="t-9:ledger:7", traceparent=traceparent)

    headers = stub.calls[0].headers
    assert headers["idempotency-key"] == "t-9:ledger:7"
    assert headers["traceparent"] == traceparent
    assert headers["authorization"] == "Bearer static-token"
    assert headers["content-type"] == "application/json"
    assert headers["user-agent"] == f"trigger-daemon/{__version__}"


@pytest.mark.parametrize("with_token_flow", [False, True], ids=["direct", "oauth"])
async def test_an_idempotency_key_beyond_ascii_reaches_the_api_as_it_is(
    stub: StubOrchestration, make_client: MakeClient, with_token_flow: bool
) -> None:
    """An event's own idempotency key may hold any character; the call must neither fail
    (which would retry the record for ever) nor send a different key."""
    key = "t-1:COMMITTED_TRANSACTIONS:virement-façade-€-東京"
    client = make_client()
    if with_token_flow:
        stub.oauth_clients = {"daemon": SECRET}
        client = make_client(auth=oauth(stub))

    result = await run(client, key=key)

    assert result.succeeded, result.error
    [call] = [call for call in stub.calls if call.idempotency_key is not None]
    assert call.idempotency_key == key


async def test_an_idempotency_key_no_header_can_carry_fails_the_call_without_sending_it(
    stub: StubOrchestration,
) -> None:
    # httpx refused the header (ValueError), so the call raised every time it was tried.
    async with OrchestrationClient(stub.url, "v2", None, 5.0) as client:
        attempt = await client.start_workflow("wf", {}, idempotency_key="t-1:T:k\r\nX-Forged: 1")

    assert (attempt.succeeded, attempt.transient) == (False, False)
    assert attempt.error == (
        "runWorkflow wf: the Idempotency-Key 't-1:T:k\\r\\nX-Forged: 1' holds a control "
        "character, which no HTTP header can carry (it comes from the event's idempotency key)"
    )
    assert stub.calls == []


async def test_no_traceparent_header_without_trace_context(
    stub: StubOrchestration, make_client: MakeClient
) -> None:
    await run(make_client())

    assert "traceparent" not in stub.calls[0].headers
    assert "authorization" not in stub.calls[0].headers


async def test_same_idempotency_key_answers_the_same_instance(
    stub: StubOrchestration, make_client: MakeClient
) -> None:
    client = make_client()

    first, again, other = await run(client), await run(client), await run(client, key="k-2")

    assert first.instance["id"] == again.instance["id"] != other.instance["id"]
    assert len(stub.calls) == 3


async def test_503_then_201_succeeds_on_second_attempt(
    stub: StubOrchestration, make_client: MakeClient, sleeps: list[float]
) -> None:
    stub.fail("review-deposit", 503, times=1)

    result = await run(make_client())

    assert result.succeeded
    assert result.attempts == 2
    assert [c.answered_status for c in stub.calls] == [503, 201]
    assert len({c.idempotency_key for c in stub.calls}) == 1
    assert len(sleeps) == 1
    assert 0.0 <= sleeps[0] <= FAST_POLICY.initial_backoff_seconds


@pytest.mark.parametrize("status", [400, 404, 409, 422])
async def test_other_4xx_is_permanent_after_one_call_with_the_api_error_message(
    stub: StubOrchestration, make_client: MakeClient, sleeps: list[float], status: int
) -> None:
    stub.fail("review-deposit", status, error_message="workflow not found")

    result = await run(make_client())

    assert not result.succeeded
    assert not result.transient
    assert result.attempts == 1
    assert result.status_code == status
    assert result.error == f"runWorkflow review-deposit: HTTP {status}: workflow not found"
    assert len(stub.calls) == 1
    assert sleeps == []


async def test_429_retry_after_is_honoured(
    stub: StubOrchestration, make_client: MakeClient, sleeps: list[float]
) -> None:
    stub.fail(None, 429, times=2, retry_after=3)

    result = await run(make_client())

    assert result.succeeded
    assert result.attempts == 3
    assert sleeps == [3.0, 3.0]


async def test_retry_after_longer_than_max_backoff_is_capped(
    stub: StubOrchestration, make_client: MakeClient, sleeps: list[float]
) -> None:
    stub.fail(None, 503, times=1, retry_after=3600)

    assert (await run(make_client())).succeeded
    assert sleeps == [FAST_POLICY.max_backoff_seconds]


async def test_retries_exhausted_is_transient_with_max_attempts(
    stub: StubOrchestration, make_client: MakeClient, sleeps: list[float]
) -> None:
    stub.fail(None, 502, error_message="upstream down")

    result = await run(make_client())

    assert not result.succeeded
    assert result.transient
    assert result.attempts == FAST_POLICY.max_attempts
    assert result.status_code == 502
    assert result.error == "runWorkflow review-deposit: HTTP 502: upstream down"
    assert len(stub.calls) == FAST_POLICY.max_attempts
    assert len(sleeps) == FAST_POLICY.max_attempts - 1


async def test_per_call_policy_overrides_the_default(
    stub: StubOrchestration, make_client: MakeClient
) -> None:
    stub.fail(None, 500)

    result = await run(make_client(), policy=RetryPolicy(max_attempts=2))

    assert (result.transient, result.attempts, len(stub.calls)) == (True, 2, 2)


async def test_connection_refused_is_transient(make_client: MakeClient) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        closed_port = sock.getsockname()[1]
    client = make_client(base_url=f"http://127.0.0.1:{closed_port}")

    result = await run(client)

    assert result.transient
    assert result.attempts == FAST_POLICY.max_attempts
    assert result.status_code is None
    assert result.error.startswith("runWorkflow review-deposit: ConnectError")


async def test_timeout_is_transient(stub: StubOrchestration, make_client: MakeClient) -> None:
    stub.delay_seconds = 0.3
    client = make_client(timeout_seconds=0.05, default_policy=RetryPolicy(max_attempts=2))

    result = await run(client)

    assert result.transient
    assert result.attempts == 2
    assert result.status_code is None
    assert "ReadTimeout" in result.error


async def test_static_bearer_is_accepted(stub: StubOrchestration, make_client: MakeClient) -> None:
    stub.require_bearer = "right"

    assert (await run(make_client(auth=BearerTokenAuth("right")))).succeeded


async def test_a_wrong_static_bearer_is_refused_credentials_not_a_failed_event(
    stub: StubOrchestration,
) -> None:
    stub.require_bearer = "right"

    async with OrchestrationClient(stub.url, "v2", BearerTokenAuth("wrong"), 5.0) as client:
        attempt = await client.start_workflow("review-deposit", {}, idempotency_key="k")

    assert (attempt.transient, attempt.credentials_refused, attempt.status_code) == (
        True,
        True,
        401,
    )
    assert len(stub.calls) == 1
    assert "wrong" not in (attempt.error or "")


async def test_oauth_token_is_fetched_once_and_cached_across_calls(
    stub: StubOrchestration, make_client: MakeClient
) -> None:
    stub.oauth_clients = {"daemon": SECRET}
    client = make_client(auth=oauth(stub))

    results = await asyncio.gather(*(run(client, key=f"k-{n}") for n in range(20)))
    results.append(await run(client, key="k-last"))

    assert all(r.succeeded and r.attempts == 1 for r in results)
    assert stub.token_requests == 1
    assert len({c.headers["authorization"] for c in stub.calls}) == 1


async def test_oauth_token_is_refreshed_once_after_a_401(
    stub: StubOrchestration, make_client: MakeClient
) -> None:
    stub.oauth_clients = {"daemon": SECRET}
    client = make_client(auth=oauth(stub))
    await run(client)
    stub.revoke_tokens()

    result = await run(client, key="k-2")

    assert result.succeeded
    assert result.attempts == 1
    assert stub.token_requests == 2
    assert [c.answered_status for c in stub.calls] == [201, 401, 201]


async def test_oauth_token_is_fetched_again_when_it_expires(
    stub: StubOrchestration, make_client: MakeClient
) -> None:
    stub.oauth_clients = {"daemon": SECRET}
    stub.token_expires_in = 1  # the client replaces it half-way through its lifetime
    client = make_client(auth=oauth(stub))
    await run(client)

    await asyncio.sleep(0.6)
    result = await run(client, key="k-2")

    assert result.succeeded
    assert stub.token_requests == 2
    assert [c.answered_status for c in stub.calls] == [201, 201]


async def test_a_token_endpoint_refusing_our_client_is_refused_credentials(
    stub: StubOrchestration,
) -> None:
    stub.oauth_clients = {"daemon": "another-secret"}

    async with OrchestrationClient(stub.url, "v2", oauth(stub), 5.0) as client:
        attempt = await client.start_workflow("review-deposit", {}, idempotency_key="k")

    assert (attempt.transient, attempt.credentials_refused, attempt.status_code) == (
        True,
        True,
        None,
    )
    assert attempt.error == (
        "runWorkflow review-deposit: token endpoint answered HTTP 401 (invalid_client)"
    )
    assert stub.token_requests == 1
    assert stub.calls == []


async def test_a_token_no_header_can_carry_is_no_token_not_an_exception(
    stub: StubOrchestration,
) -> None:
    # An access token holding a line break made httpx refuse the header: the call raised, and
    # its record was handled again and again.
    body = b'{"access_token": "t\\nX-Injected: 1", "expires_in": 60}'
    answer = b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)

    async with answering(answer) as token_endpoint:
        auth = ClientCredentialsAuth(f"{token_endpoint}/token", "daemon", SECRET)
        async with OrchestrationClient(stub.url, "v2", auth, 5.0) as client:
            attempt = await client.start_workflow("review-deposit", {}, idempotency_key="k")

    assert attempt.transient
    assert attempt.error == (
        "runWorkflow review-deposit: token endpoint answered HTTP 200 with an access_token "
        "no HTTP header can carry"
    )
    assert stub.calls == []


async def test_secrets_are_absent_from_reprs(stub: StubOrchestration) -> None:
    for auth in (oauth(stub), BearerTokenAuth(SECRET)):
        async with OrchestrationClient(
            f"http://user:{SECRET}@127.0.0.1:1", "v2", auth, 1.0
        ) as client:
            assert SECRET not in repr(auth)
            assert SECRET not in repr(client)


async def test_stub_faults_and_calls_are_driven_over_http(stub: StubOrchestration) -> None:
    async with httpx.AsyncClient(base_url=stub.url) as control:
        fault = {"workflow_id": "w", "status": 500, "times": 1, "retry_after": 2}
        assert (await control.post("/_stub/faults", json=fault)).status_code == 204
        assert (await control.post("/_stub/faults", json={"status": 200})).status_code == 400
        first = await control.post("/v2/workflows/w/instances", json={})
        second = await control.post("/workflows/w/instances", json={"a": "b"})
        calls = (await control.get("/_stub/calls")).json()
        assert (await control.delete("/_stub/calls")).status_code == 204
        assert (await control.delete("/_stub/faults")).status_code == 204

    assert first.status_code == 500
    assert first.headers["Retry-After"] == "2"
    assert first.json() == {"errorCode": "INTERNAL", "errorMessage": "injected failure"}
    assert second.status_code == 201
    assert [(c["api_version"], c["answered_status"], c["body"]) for c in calls] == [
        ("v2", 500, {}),
        ("v1", 201, {"a": "b"}),
    ]
    assert stub.calls == []


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"))


def created(instance: dict[str, str]) -> bytes:
    body = json.dumps({"data": instance}).encode()
    head = b"HTTP/1.1 201 Created\r\nContent-Type: application/json\r\n"
    return head + b"Content-Length: %d\r\n\r\n" % len(body) + body


async def test_an_api_behind_a_private_ca_is_verified_against_ssl_cafile(pki: Pki) -> None:
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server.load_cert_chain(pki.server_cert, pki.server_key)
    instance = {"id": "i-1", "workflowID": "wf"}
    async with answering(created(instance), tls=server) as url:
        attempts = {}
        for name, cafile in (("ours", pki.ca), ("default", None), ("other", pki.other_ca)):
            path = None if cafile is None else str(cafile)
            async with OrchestrationClient(url, "v2", None, 5.0, ssl_cafile=path) as client:
                attempts[name] = await client.start_workflow("wf", {}, idempotency_key="k")

    assert attempts["ours"].instance == instance
    # A server the CAs do not vouch for is refused: the call fails, saying why.
    for refused in (attempts["default"], attempts["other"]):
        assert refused.instance is None
        assert "CERTIFICATE_VERIFY_FAILED" in (refused.error or "")


def test_an_ssl_cafile_that_cannot_be_read_stops_the_start_naming_the_setting(
    tmp_path: Path,
) -> None:
    missing = tmp_path / "missing.pem"
    with pytest.raises(
        ConfigError, match=re.escape(f"orchestration.ssl_cafile: cannot read {missing}")
    ):
        OrchestrationClient("https://api.example", "v2", None, 5.0, ssl_cafile=str(missing))
    garbage = tmp_path / "garbage.pem"
    garbage.write_text("not a certificate")
    with pytest.raises(ConfigError, match=re.escape("orchestration.ssl_cafile: cannot read")):
        OrchestrationClient("https://api.example", "v2", None, 5.0, ssl_cafile=str(garbage))
