"""The SQL store against real databases: one suite, one fresh database per test and backend.

Add a backend by adding a param to `store_url` (PostgreSQL: a URL on the test cluster with a
fresh database per test); every test then runs against it too.
"""

from __future__ import annotations

import asyncio
import importlib.util
import logging
import sqlite3
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import text
from sqlalchemy.engine import Connection

from trigger_daemon.adapters.store import SqlStore, open_store
from trigger_daemon.adapters.store.engine import create_engine
from trigger_daemon.adapters.store.schema import metadata
from trigger_daemon.core.occurrences import NewOccurrence, OccurrenceStatus, Outcome
from trigger_daemon.core.triggers import Trigger, TriggerSource, yaml_trigger_id
from trigger_daemon.errors import ConfigError, ConflictError, NotFoundError, StoreError

T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


@pytest.fixture(params=["sqlite"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'store.db'}"
    raise NotImplementedError(request.param)


@pytest.fixture
async def store(store_url: str) -> AsyncIterator[SqlStore]:
    opened = await open_store(store_url)
    yield opened
    await opened.close()


def api_trigger(trigger_id: str, name: str | None = None, *, minutes: int = 0) -> Trigger:
    return Trigger.model_validate(
        {
            "id": trigger_id,
            "name": name,
            "event": "COMMITTED_TRANSACTIONS",
            "workflowID": "wf-1",
            "vars": {"txid": "event.transactions[0].id"},
            "createdAt": T0 + timedelta(minutes=minutes),
        }
    )


def yaml_trigger(name: str, workflow_id: str = "wf-1", *, created_at: datetime = T0) -> Trigger:
    return Trigger.model_validate(
        {
            "id": yaml_trigger_id(name),
            "name": name,
            "event": "SAVED_PAYMENT",
            "filter": "event.status == 'SUCCEEDED'",
            "workflowID": workflow_id,
            "createdAt": created_at,
            "source": TriggerSource.YAML,
        }
    )


def new_occurrence(trigger_id: str, event_id: str, payload: object = None) -> NewOccurrence:
    event = {"type": "SAVED_PAYMENT", "payload": payload if payload is not None else {}}
    return NewOccurrence(trigger_id=trigger_id, event_id=event_id, event=event, date=T0)


# Triggers


async def test_created_trigger_reads_back_equal_with_aware_utc_date(store: SqlStore) -> None:
    trigger = api_trigger("t-1", "Large deposit")
    await store.create_trigger(trigger)

    stored = await store.get_trigger("t-1")

    assert stored == trigger
    assert stored.created_at.tzinfo is UTC


async def test_creating_an_existing_id_is_a_conflict(store: SqlStore) -> None:
    await store.create_trigger(api_trigger("t-1", "first"))

    with pytest.raises(ConflictError):
        await store.create_trigger(api_trigger("t-1", "second"))

    assert (await store.get_trigger("t-1")).name == "first"


async def test_triggers_are_listed_oldest_first_then_by_id(store: SqlStore) -> None:
    for trigger in [api_trigger("b", minutes=1), api_trigger("c"), api_trigger("a", minutes=1)]:
        await store.create_trigger(trigger)

    assert [t.id for t in await store.list_triggers()] == ["c", "a", "b"]


async def test_name_search_is_a_case_insensitive_substring(store: SqlStore) -> None:
    await store.create_trigger(api_trigger("1", "Large USD deposit"))
    await store.create_trigger(api_trigger("2", "small refund", minutes=1))
    await store.create_trigger(api_trigger("3", None, minutes=2))

    assert [t.id for t in await store.list_triggers(name="usd DEP")] == ["1"]
    assert [t.id for t in await store.list_triggers(name="")] == ["1", "2", "3"]


async def test_name_search_treats_like_wildcards_literally(store: SqlStore) -> None:
    await store.create_trigger(api_trigger("1", "fee_100%"))
    await store.create_trigger(api_trigger("2", "feeX100 total", minutes=1))
    await store.create_trigger(api_trigger("3", "back\\slash", minutes=2))

    assert [t.id for t in await store.list_triggers(name="e_100%")] == ["1"]
    assert [t.id for t in await store.list_triggers(name="%")] == ["1"]
    assert [t.id for t in await store.list_triggers(name="k\\s")] == ["3"]


async def test_deleting_a_trigger_keeps_its_occurrences(store: SqlStore) -> None:
    await store.create_trigger(api_trigger("t-1"))
    [occurrence] = await store.begin_occurrences([new_occurrence("t-1", "e-1")])

    await store.delete_trigger("t-1")

    with pytest.raises(NotFoundError, match="trigger t-1 not found"):
        await store.get_trigger("t-1")
    assert await store.get_occurrence(occurrence.id) == occurrence
    assert await store.list_occurrences("t-1", limit=10) == [occurrence]


async def test_unknown_ids_raise_not_found(store: SqlStore) -> None:
    with pytest.raises(NotFoundError, match="trigger nope not found"):
        await store.get_trigger("nope")
    with pytest.raises(NotFoundError, match="trigger nope not found"):
        await store.delete_trigger("nope")
    with pytest.raises(NotFoundError, match="occurrence nope not found"):
        await store.get_occurrence("nope")
    with pytest.raises(NotFoundError, match="occurrence nope not found"):
        await store.finish_occurrence("nope", Outcome.failed("boom", attempts=1))


# YAML reconciliation


async def test_reconcile_adds_changes_in_place_and_removes_yaml_triggers(store: SqlStore) -> None:
    await store.create_trigger(api_trigger("api-1", "from the API"))
    first = await store.replace_yaml_triggers([yaml_trigger("keep"), yaml_trigger("drop")])
    later = T0 + timedelta(days=1)

    second = await store.replace_yaml_triggers(
        [yaml_trigger("keep", "wf-2", created_at=later), yaml_trigger("new", created_at=later)]
    )

    assert first.added == 2
    assert (second.added, second.changed, second.removed, second.unchanged) == (1, 1, 1, 0)
    by_name = {t.name: t for t in await store.list_triggers()}
    assert set(by_name) == {"from the API", "keep", "new"}
    assert by_name["keep"].id == yaml_trigger_id("keep")
    assert by_name["keep"].workflow_id == "wf-2"
    assert by_name["keep"].created_at == T0
    assert by_name["from the API"] == api_trigger("api-1", "from the API")


async def test_reconciling_the_same_list_again_changes_nothing(store: SqlStore) -> None:
    wanted = [yaml_trigger("a"), yaml_trigger("b")]
    await store.replace_yaml_triggers(wanted)

    again = await store.replace_yaml_triggers(wanted)

    assert again.unchanged == 2
    assert (again.added, again.changed, again.removed) == (0, 0, 0)


async def test_reconciling_an_empty_list_leaves_api_triggers(store: SqlStore) -> None:
    await store.create_trigger(api_trigger("api-1"))
    await store.replace_yaml_triggers([yaml_trigger("a")])

    result = await store.replace_yaml_triggers([])

    assert result.removed == 1
    assert [t.id for t in await store.list_triggers()] == ["api-1"]


async def test_two_processes_reconciling_at_once_store_one_copy(store_url: str) -> None:
    wanted = [yaml_trigger(f"trigger-{n}") for n in range(20)]
    first, second = await open_store(store_url), await open_store(store_url)
    try:
        await asyncio.gather(
            first.replace_yaml_triggers(wanted), second.replace_yaml_triggers(wanted)
        )
        stored = await first.list_triggers()
    finally:
        await first.close()
        await second.close()

    assert sorted(t.id for t in stored) == sorted(t.id for t in wanted)


# Occurrences


async def test_begin_occurrences_records_pending_rows_in_input_order(store: SqlStore) -> None:
    new = [new_occurrence("t-2", "e-1"), new_occurrence("t-1", "e-1")]

    begun = await store.begin_occurrences(new)

    assert [(o.trigger_id, o.event_id) for o in begun] == [("t-2", "e-1"), ("t-1", "e-1")]
    assert all(o.status is OccurrenceStatus.PENDING and o.attempts == 0 for o in begun)
    assert begun[0].date == T0
    assert begun[0].id != begun[1].id
    assert begun[0].seq > 0


async def test_begin_occurrences_again_returns_the_same_rows(store: SqlStore) -> None:
    new = [new_occurrence("t-1", "e-1"), new_occurrence("t-2", "e-1")]
    first = await store.begin_occurrences(new)

    second = await store.begin_occurrences(new)

    assert second == first


async def test_a_finished_occurrence_stays_final_when_begun_again(store: SqlStore) -> None:
    [pending] = await store.begin_occurrences([new_occurrence("t-1", "e-1")])
    finished = await store.finish_occurrence(pending.id, Outcome.failed("HTTP 400", attempts=1))

    [again, fresh] = await store.begin_occurrences(
        [new_occurrence("t-1", "e-1"), new_occurrence("t-1", "e-2")]
    )

    assert again == finished
    assert again.is_final
    assert not fresh.is_final


async def test_finish_occurrence_records_the_outcome(store: SqlStore) -> None:
    [pending] = await store.begin_occurrences([new_occurrence("t-1", "e-1")])
    instance = {"id": "wi-1", "workflowID": "wf-1", "terminated": False}
    outcome = Outcome.succeeded(instance, attempts=3, vars={"txid": "42"})

    finished = await store.finish_occurrence(pending.id, outcome)

    assert finished.status is OccurrenceStatus.SUCCEEDED
    assert (finished.attempts, finished.vars) == (3, {"txid": "42"})
    assert (finished.workflow_instance_id, finished.workflow_instance) == ("wi-1", instance)
    assert finished.error is None
    assert (finished.id, finished.seq, finished.event) == (pending.id, pending.seq, pending.event)
    assert await store.get_occurrence(pending.id) == finished


async def test_integers_beyond_two_to_the_53_round_trip_exactly(store: SqlStore) -> None:
    amount = 2**70 + 1
    payload = {"postings": [{"amount": amount, "asset": "USD/2"}], "ratio": 0.1}
    [begun] = await store.begin_occurrences([new_occurrence("t-1", "e-1", payload)])
    instance = {"id": "wi-1", "balance": -amount}
    await store.finish_occurrence(begun.id, Outcome.succeeded(instance, 1, {}))

    stored = await store.get_occurrence(begun.id)

    assert stored.event["payload"] == payload
    assert stored.event["payload"]["postings"][0]["amount"] == amount
    assert stored.workflow_instance == instance


async def test_occurrences_page_newest_first_in_both_directions(store: SqlStore) -> None:
    mine = await store.begin_occurrences([new_occurrence("t-1", f"e-{n}") for n in range(5)])
    await store.begin_occurrences([new_occurrence("t-other", "e-9")])
    seqs = [o.seq for o in mine]  # ascending: oldest first

    newest = await store.list_occurrences("t-1", limit=2)
    older = await store.list_occurrences("t-1", limit=2, before_seq=newest[-1].seq)
    back = await store.list_occurrences("t-1", limit=2, after_seq=older[0].seq)
    tail = await store.list_occurrences("t-1", limit=10, after_seq=seqs[2])

    assert [o.seq for o in newest] == [seqs[4], seqs[3]]
    assert [o.seq for o in older] == [seqs[2], seqs[1]]
    assert back == newest
    assert [o.seq for o in tail] == [seqs[4], seqs[3]]
    assert await store.list_occurrences("t-1", limit=10, before_seq=seqs[0]) == []
    assert await store.list_occurrences("nobody", limit=10) == []


# The database itself


async def test_data_survives_closing_and_reopening(
    store_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    first = await open_store(store_url)
    await first.create_trigger(api_trigger("t-1"))
    [occurrence] = await first.begin_occurrences([new_occurrence("t-1", "e-1")])
    await first.close()

    with caplog.at_level(logging.INFO, logger="alembic"):
        reopened = await open_store(store_url)
    try:
        assert await reopened.get_trigger("t-1") == api_trigger("t-1")
        assert await reopened.get_occurrence(occurrence.id) == occurrence
    finally:
        await reopened.close()
    assert not [r for r in caplog.records if r.getMessage().startswith("Running upgrade")]


async def test_two_processes_starting_on_a_new_database_both_open_it(store_url: str) -> None:
    first, second = await asyncio.gather(open_store(store_url), open_store(store_url))

    await first.ping()
    await second.ping()
    await first.close()
    await second.close()


async def test_migrated_schema_matches_schema_module(store: SqlStore, store_url: str) -> None:
    engine = create_engine(store_url)
    try:
        async with engine.connect() as conn:
            diff = await conn.run_sync(_schema_diff)
            [[revision]] = await conn.execute(text("SELECT version_num FROM alembic_version"))
    finally:
        await engine.dispose()

    assert diff == []
    assert revision == "0001"


def _schema_diff(conn: Connection) -> list[object]:
    context = MigrationContext.configure(conn, opts={"compare_type": True})
    return list(compare_metadata(context, metadata))


async def test_a_database_from_a_newer_release_is_refused(store: SqlStore, store_url: str) -> None:
    engine = create_engine(store_url)
    try:
        async with engine.begin() as conn:
            await conn.execute(text("UPDATE alembic_version SET version_num = '9999'"))
    finally:
        await engine.dispose()

    with pytest.raises(StoreError, match="9999") as caught:
        await open_store(store_url)

    assert not caught.value.retriable


async def test_sqlite_runs_in_wal_mode_with_full_sync(store_url: str) -> None:
    if not store_url.startswith("sqlite"):
        pytest.skip("SQLite only")
    engine = create_engine(store_url)
    try:
        async with engine.connect() as conn:
            journal = (await conn.execute(text("PRAGMA journal_mode"))).scalar()
            synchronous = (await conn.execute(text("PRAGMA synchronous"))).scalar()
    finally:
        await engine.dispose()

    assert (journal, synchronous) == ("wal", 2)  # 2 is FULL


async def test_a_locked_sqlite_database_is_a_retriable_store_error(
    store: SqlStore, store_url: str
) -> None:
    if not store_url.startswith("sqlite"):
        pytest.skip("SQLite only")
    impatient = SqlStore(create_engine(store_url, sqlite_busy_timeout_ms=50))
    holder = sqlite3.connect(store_url.removeprefix("sqlite:///"), isolation_level=None)
    try:
        holder.execute("BEGIN IMMEDIATE")
        with pytest.raises(StoreError) as caught:
            await impatient.create_trigger(api_trigger("t-1"))
    finally:
        holder.close()
        await impatient.close()

    assert caught.value.retriable
    assert str(caught.value) == "store: create trigger failed: OperationalError: database is locked"


async def test_an_unusable_url_is_a_config_error_without_the_password() -> None:
    with pytest.raises(ConfigError) as caught:
        await open_store("mysql://user:s3cret@db/triggers")

    assert "s3cret" not in str(caught.value)
    assert "mysql" in str(caught.value)


async def test_a_missing_driver_is_a_config_error_without_the_password() -> None:
    if importlib.util.find_spec("asyncpg") is not None:
        pytest.skip("asyncpg is installed")
    with pytest.raises(ConfigError, match="asyncpg") as caught:
        await open_store("postgresql://user:s3cret@localhost/triggers")

    assert "s3cret" not in str(caught.value)


async def test_memory_store_works_across_calls() -> None:
    store = await open_store("sqlite:///:memory:")
    try:
        await store.create_trigger(api_trigger("t-1"))
        assert [t.id for t in await store.list_triggers()] == ["t-1"]
    finally:
        await store.close()
