"""Schemathesis against the daemon's own OpenAPI document, over real HTTP.

The API runs as in production (uvicorn, the SQLite store, token authentication on) in a thread
with its own event loop; schemathesis generates valid and invalid requests for every operation
from the document the API serves and checks each answer: no 5xx, status codes, content types,
headers and bodies as documented, invalid input refused. Deterministic (derandomized) and
bounded (EXAMPLES per operation and mode), so it finishes in well under a minute.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import positive_data_acceptance

from trigger_daemon.adapters.api import ApiAuth, StaticTokens, create_api, serving
from trigger_daemon.adapters.store import open_store
from trigger_daemon.core.triggers import parse_definition
from trigger_daemon.triggers.catalog import TriggerCatalog

TOKEN = "fuzz-token-0123456789abcdef"
EXAMPLES = 40


# "Schema-valid data must be accepted" does not hold here: the document cannot say "a JMESPath
# expression that compiles" or "a cursor this server issued", so a valid-looking trigger or
# cursor is rightly refused with 400. Every other check runs, invalid-data rejection included.
EXCLUDED_CHECKS = [positive_data_acceptance]


class ApiThread:
    """The API on its own event loop in a thread, so synchronous schemathesis can call it."""

    def __init__(self, database: Path) -> None:
        self._database = database
        self._started = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._thread = threading.Thread(target=lambda: asyncio.run(self._serve()), daemon=True)
        self.url = ""
        self.trigger_id = ""

    async def _serve(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        store = await open_store(f"sqlite:///{self._database}")
        try:
            catalog = TriggerCatalog(store)
            await catalog.refresh()
            trigger = await catalog.create(
                parse_definition(
                    {"event": "SAVED_PAYMENT", "workflowID": "wf", "vars": {"id": "event.id"}}
                )
            )
            self.trigger_id = trigger.id
            auth = ApiAuth(StaticTokens([(TOKEN, ["orchestration:write"])]), protect_metrics=True)
            app = create_api(catalog, store, version="9.9.9-fuzz", auth=auth)
            async with serving(app, host="127.0.0.1", port=0) as port:
                self.url = f"http://127.0.0.1:{port}"
                self._started.set()
                await self._stop.wait()
        finally:
            await store.close()

    def __enter__(self) -> ApiThread:
        self._thread.start()
        if not self._started.wait(30):
            raise RuntimeError("the API did not start")
        return self

    def __exit__(self, *exc_info: object) -> None:
        assert self._loop is not None
        assert self._stop is not None
        self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(30)


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApiThread]:
    with ApiThread(tmp_path_factory.mktemp("fuzz") / "t.db") as running:
        yield running


def run_operation(api: ApiThread, operation: Any, mode: GenerationMode) -> int:
    """Every example for one operation in one mode; returns how many requests were made."""
    calls = 0

    @settings(
        max_examples=EXAMPLES,
        derandomize=True,
        database=None,
        deadline=None,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(case=operation.as_strategy(generation_mode=mode))
    def check(case: Any) -> None:
        nonlocal calls
        if case.path_parameters and "triggerID" in case.path_parameters and calls % 2:
            case.path_parameters["triggerID"] = api.trigger_id  # half the calls hit a real one
        calls += 1
        # A real token replaces the generated one; a negative case that dropped the header on
        # purpose is sent without one, as generated.
        dropped = mode is GenerationMode.NEGATIVE and "authorization" not in {
            name.lower() for name in case.headers or {}
        }
        case.call_and_validate(
            headers=None if dropped else {"Authorization": f"Bearer {TOKEN}"},
            excluded_checks=EXCLUDED_CHECKS,
            timeout=10,
        )

    try:
        check()
    except Unsatisfiable:
        assert mode is GenerationMode.NEGATIVE  # an operation with no input cannot get bad input
    return calls


def test_schemathesis_finds_no_server_error_and_no_schema_violation(api: ApiThread) -> None:
    schema = schemathesis.openapi.from_url(f"{api.url}/openapi.json")
    # Unknown query parameters are ignored, as by the Formance API: an SDK that sends a
    # parameter newer than this daemon must still work. So they are not generated as "invalid".
    schema.config.generation.update(allow_extra_parameters=False)
    counts: dict[str, int] = {}
    for result in schema.get_all_operations():
        operation = result.ok()
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            counts[f"{operation.label} {mode.value}"] = run_operation(api, operation, mode)

    total = sum(counts.values())
    print(f"schemathesis: {total} requests over {len(counts)} operation/mode pairs: {counts}")
    assert len({label.rsplit(" ", 1)[0] for label in counts}) == 19  # 16 trigger routes, 3 ops
    assert total > 500
