"""The stub's benchmark mode: calls counted over HTTP, none kept."""

from __future__ import annotations

import httpx

from trigger_daemon.devtools.stub_orchestration import StubOrchestration


async def test_count_only_counts_calls_without_keeping_them() -> None:
    async with StubOrchestration(count_only=True) as stub, httpx.AsyncClient() as client:
        url = f"{stub.url}/v2/workflows/wf/instances"
        for _ in range(3):
            answer = await client.post(url, json={"txid": "1"}, headers={"Idempotency-Key": "k"})
            assert answer.status_code == 201
        stats = (await client.get(f"{stub.url}/_stub/stats")).json()

    assert stats == {"calls": 3}
    assert stub.call_count == 3
    assert stub.calls == []  # nothing kept: memory stays flat however long it runs


async def test_stats_count_every_call_in_the_normal_mode_too() -> None:
    async with StubOrchestration() as stub, httpx.AsyncClient() as client:
        await client.post(f"{stub.url}/workflows/wf/instances", json={})
        stats = (await client.get(f"{stub.url}/_stub/stats")).json()

    assert stats == {"calls": 1}
    assert len(stub.calls) == 1
