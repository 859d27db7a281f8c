"""The orchestration client's aiohttp engine against servers that misbehave on a real socket:
what aiohttp raises arrives as httpx's error, so the client classifies it as before."""

from __future__ import annotations

import asyncio
import gzip
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from trigger_daemon.adapters.orchestration import OrchestrationClient
from trigger_daemon.adapters.orchestration.transport import AiohttpTransport
from trigger_daemon.adapters.store.engine import compact_json
from trigger_daemon.devtools.stub_orchestration import StubOrchestration
from trigger_daemon.ports import CallAttempt

from .conftest import answering

Serve = Callable[[bytes], Awaitable[str]]
GZIPPED = gzip.compress(b'{"data": {"id": "instance-1", "workflowID": "wf"}}')


@pytest.fixture
async def raw_server() -> AsyncIterator[Serve]:
    """Servers that read one request head, answer `answer` verbatim and close; their URLs."""
    async with AsyncExitStack() as servers:

        async def serve(answer: bytes) -> str:
            return await servers.enter_async_context(answering(answer))

        yield serve


@pytest.mark.parametrize(
    ("answer", "error"),
    [
        (b"", "RemoteProtocolError: Server disconnected"),
        (b"NOT HTTP\r\n\r\n", "RemoteProtocolError"),
        (b"HTTP/1.1 201 Created\r\nContent-Length: 100\r\n\r\n{", "ReadError"),
    ],
    ids=["closed-without-answer", "not-http", "body-cut-short"],
)
async def test_a_broken_answer_is_a_transient_transport_error(
    raw_server: Serve, answer: bytes, error: str
) -> None:
    url = await raw_server(answer)
    async with OrchestrationClient(url, "v2", None, 2.0) as client:
        attempt = await client.start_workflow("wf", {}, idempotency_key="k")

    assert attempt.transient
    assert attempt.status_code is None
    assert attempt.error is not None
    assert f"runWorkflow wf: {error}" in attempt.error


async def test_a_compressed_answer_is_decoded_by_httpx(
    raw_server: Serve,
) -> None:
    head = (
        b"HTTP/1.1 201 Created\r\nContent-Type: application/json\r\n"
        b"Content-Encoding: gzip\r\nContent-Length: %d\r\n\r\n" % len(GZIPPED)
    )
    url = await raw_server(head + GZIPPED)
    async with OrchestrationClient(url, "v2", None, 2.0) as client:
        attempt = await client.start_workflow("wf", {}, idempotency_key="k")

    assert attempt.succeeded
    assert attempt.instance == {"id": "instance-1", "workflowID": "wf"}


async def test_a_cancelled_call_leaves_the_pool_usable() -> None:
    async with StubOrchestration(delay_seconds=5.0) as stub:
        transport = AiohttpTransport(max_connections=1)
        async with httpx.AsyncClient(transport=transport, timeout=10) as client:
            url = f"{stub.url}/v2/workflows/wf/instances"
            slow = asyncio.create_task(client.post(url, json={}))
            await asyncio.sleep(0.2)
            slow.cancel()
            with pytest.raises(asyncio.CancelledError):
                await slow
            stub.delay_seconds = 0.0
            answer = await asyncio.wait_for(client.post(url, json={"txid": "1"}), 5)

    assert answer.status_code == 201


async def test_a_cookie_the_api_sets_is_not_sent_back() -> None:
    heads: list[bytes] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        heads.append(await reader.readuntil(b"\r\n\r\n"))
        writer.write(
            b"HTTP/1.1 201 Created\r\nSet-Cookie: session=abc; Path=/\r\n"
            b"Content-Type: application/json\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}"
        )
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    url = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
    try:
        async with OrchestrationClient(url, "v2", None, 2.0) as client:
            for key in ("k1", "k2"):
                assert (await client.start_workflow("wf", {}, idempotency_key=key)).succeeded
    finally:
        server.close()
        await server.wait_closed()

    assert len(heads) == 2
    assert b"\r\ncookie:" not in heads[1].lower()


def _answer(status_line: bytes, body: bytes, content_type: bytes = b"application/json") -> bytes:
    head = b"HTTP/1.1 %s\r\nContent-Type: %s\r\nContent-Length: %d\r\n\r\n"
    return head % (status_line, content_type, len(body)) + body


DEEP = b'{"data": ' * 100_000 + b"{}" + b"}" * 100_000


@pytest.mark.parametrize(
    ("answer", "instance", "error"),
    [
        (
            _answer(b"201 Created", b'{"data": {"id": "wi-\\u0000", "n": "\\udc00"}}'),
            {"id": "wi-\ufffd", "n": "\ufffd"},
            None,
        ),
        (_answer(b"201 Created", DEEP), None, "HTTP 201: the answer is not a JSON object"),
        (
            _answer(b"503 Busy", b"no such workflow", b"text/plain; charset=base64"),
            None,
            "HTTP 503: no such workflow",
        ),
        (
            _answer(b"500 Requ\xeate incorrecte", b""),
            None,
            "HTTP 500: Requte incorrecte",  # httpx reads a reason phrase as ASCII
        ),
    ],
    ids=["nul-and-lone-surrogate", "nested-too-deep", "charset-no-text-encoding", "latin1-reason"],
)
async def test_an_answer_no_store_could_keep_or_python_could_read_is_still_an_answer(
    raw_server: Serve, answer: bytes, instance: dict[str, str] | None, error: str | None
) -> None:
    # Each used to raise out of the client (the record was handled again and again) or to
    # make the outcome write fail on every try. httpx's own transport must agree.
    attempts = []
    for transport in (None, httpx.AsyncHTTPTransport()):
        url = await raw_server(answer)
        async with OrchestrationClient(url, "v2", None, 2.0, transport=transport) as client:
            attempts.append(await client.start_workflow("wf", {}, idempotency_key="k"))

    ours, httpxs = attempts
    assert ours.instance == instance
    assert ours.error == (None if error is None else f"runWorkflow wf: {error}")
    assert ours == httpxs


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=5), children, max_size=3)
    ),
    max_leaves=8,
)
BODIES = st.one_of(
    st.binary(max_size=64),
    st.builds(
        lambda value, ascii: json.dumps(value, ensure_ascii=ascii).encode("utf-8", "surrogatepass"),
        JSON_VALUES,
        st.booleans(),
    ),
    st.builds(lambda value: json.dumps({"data": value}).encode(), JSON_VALUES),
    st.builds(lambda message: json.dumps({"errorMessage": message}).encode(), st.text()),
    st.just(DEEP),
)
CHARSETS = st.sampled_from(
    [
        "",
        "; charset=utf-8",
        "; charset=latin-1",
        "; charset=utf-16",
        "; charset=base64",
        "; charset=rot13",
        "; charset=no-such",
    ]
)
ENCODINGS = st.sampled_from([b"", b"gzip", b"deflate", b"br", b"zstd", b"identity", b"what"])


@st.composite
def raw_answers(draw: st.DrawFn) -> bytes:
    """An HTTP/1.1 answer as a misbehaving server might send it."""
    status = draw(st.integers(200, 599))
    reason = draw(st.binary(max_size=16).map(lambda b: b.replace(b"\r", b"").replace(b"\n", b"")))
    body = draw(BODIES)
    lines = [b"HTTP/1.1 %d %s" % (status, reason)]
    lines.append(b"Content-Type: application/json" + draw(CHARSETS).encode())
    if encoding := draw(ENCODINGS):
        lines.append(b"Content-Encoding: " + encoding)
    if draw(st.booleans()):
        lines.append(
            b"Retry-After: " + draw(st.binary(max_size=8)).replace(b"\r", b"").replace(b"\n", b"")
        )
    if draw(st.booleans()):
        lines.append(b"Content-Length: %d" % len(body))
    return b"\r\n".join(lines) + b"\r\n\r\n" + body


@settings(max_examples=150, derandomize=True, database=None, deadline=None)
@given(answer=raw_answers())
def test_any_answer_is_an_attempt_whose_outcome_a_store_can_keep(answer: bytes) -> None:
    attempt = asyncio.run(_one_call(answer))

    assert isinstance(attempt, CallAttempt)
    for text in [attempt.error or "", *_strings(attempt.instance)]:
        assert "\x00" not in text
        text.encode("utf-8")  # no lone surrogate
    compact_json(attempt.instance)


def _strings(value: object) -> list[str]:
    """Every string in a JSON value, object keys included."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for key, item in value.items() for s in [key, *_strings(item)]]
    if isinstance(value, list):
        return [s for item in value for s in _strings(item)]
    return []


async def _one_call(answer: bytes) -> CallAttempt:
    async with answering(answer) as url, OrchestrationClient(url, "v2", None, 2.0) as client:
        return await client.start_workflow("wf", {}, idempotency_key="k")
