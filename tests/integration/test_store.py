"""The Store contract against real databases and the in-memory fake, and the SQL store itself.

A test that takes `store` is the contract of `ports.Store`: it runs on SQLite (a file per
test), on PostgreSQL (a database per test on the session's private cluster, see postgres.py)
and on `testing.InMemoryStore`, so the fake the unit tests use cannot drift from the real
store. A test that takes `store_url` is about the SQL store itself (replicas sharing one
database, reopening, migrations, connection pools) and runs on the SQL backends only; one
that takes `sqlite_url` on SQLite only. Add a SQL backend by adding it to `SQL_BACKENDS`.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import sys
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import exc as sa_exc
from sqlalchemy import text
from sqlalchemy.engine import Connection

from trigger_daemon.adapters.store import PoolLimits, SqlStore, open_store
from trigger_daemon.adapters.store.engine import create_engine, sqlite_file_writer
from trigger_daemon.adapters.store.errors import store_errors
from trigger_daemon.adapters.store.schema import metadata
from trigger_daemon.adapters.store.thread_writer import ThreadWriter
from trigger_daemon.core.occurrences import NewOccurrence, Occurrence, OccurrenceStatus, Outcome
from trigger_daemon.core.triggers import Trigger, TriggerSource, parse_definition, yaml_trigger_id
from trigger_daemon.devtools.postgres import PostgresCluster
from trigger_daemon.errors import ConfigError, ConflictError, NotFoundError, StoreError
from trigger_daemon.ports import Store
from trigger_daemon.testing import InMemoryStore
from trigger_daemon.triggers.catalog import TriggerCatalog

from .conftest import wait_until

T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


SQL_BACKENDS = ["sqlite", "postgresql"]


def database_url(backend: str, request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if backend == "sqlite":
        return f"sqlite:///{tmp_path / 'store.db'}"
    if backend == "postgresql":
        # Asked for only here, so SQLite-only runs (-k sqlite) start no cluster.
        cluster: PostgresCluster = request.getfixturevalue("postgres")
        return cluster.new_database()
    raise NotImplementedError(backend)


@pytest.fixture(params=SQL_BACKENDS)
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    return database_url(request.param, request, tmp_path)


@pytest.fixture(params=[*SQL_BACKENDS, "memory"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Store]:
    if request.param == "memory":
        yield InMemoryStore()
        return
    opened = await open_store(database_url(request.param, request, tmp_path))
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


def unknown_occurrence(occurrence_id: str) -> Occurrence:
    return Occurrence(occurrence_id, "t-1", "e-1", T0, {}, OccurrenceStatus.PENDING)


# Triggers


async def test_created_trigger_reads_back_equal_with_aware_utc_date(store: Store) -> None:
    trigger = api_trigger("t-1", "Large deposit")
    await store.create_trigger(trigger)

    stored = await store.get_trigger("t-1")

    assert stored == trigger
    assert stored.created_at.tzinfo is UTC


async def test_creating_an_existing_id_is_a_conflict(store: Store) -> None:
    await store.create_trigger(api_trigger("t-1", "first"))

    with pytest.raises(ConflictError):
        await store.create_trigger(api_trigger("t-1", "second"))

    assert (await store.get_trigger("t-1")).name == "first"


async def test_triggers_are_listed_oldest_first_then_by_id(store: Store) -> None:
    for trigger in [api_trigger("b", minutes=1), api_trigger("c"), api_trigger("a", minutes=1)]:
        await store.create_trigger(trigger)

    assert [t.id for t in await store.list_triggers()] == ["c", "a", "b"]


async def test_name_search_is_a_case_insensitive_substring(store: Store) -> None:
    await store.create_trigger(api_trigger("1", "Large USD deposit"))
    await store.create_trigger(api_trigger("2", "small refund", minutes=1))
    await store.create_trigger(api_trigger("3", None, minutes=2))

    assert [t.id for t in await store.list_triggers(name="usd DEP")] == ["1"]
    assert [t.id for t in await store.list_triggers(name="")] == ["1", "2", "3"]


async def test_name_search_treats_like_wildcards_literally(store: Store) -> None:
    await store.create_trigger(api_trigger("1", "fee_100%"))
    await store.create_trigger(api_trigger("2", "feeX100 total", minutes=1))
    await store.create_trigger(api_trigger("3", "back\\slash", minutes=2))

    assert [t.id for t in await store.list_triggers(name="e_100%")] == ["1"]
    assert [t.id for t in await store.list_triggers(name="%")] == ["1"]
    assert [t.id for t in await store.list_triggers(name="k\\s")] == ["3"]


async def test_deleting_a_trigger_keeps_its_occurrences(store: Store) -> None:
    await store.create_trigger(api_trigger("t-1"))
    [occurrence] = await store.begin_occurrences([new_occurrence("t-1", "e-1")])

    await store.delete_trigger("t-1")

    with pytest.raises(NotFoundError, match="trigger t-1 not found"):
        await store.get_trigger("t-1")
    assert await store.get_occurrence(occurrence.id) == occurrence
    assert await store.list_occurrences("t-1", limit=10) == [occurrence]


async def test_unknown_ids_raise_not_found(store: Store) -> None:
    with pytest.raises(NotFoundError, match="trigger nope not found"):
        await store.get_trigger("nope")
    with pytest.raises(NotFoundError, match="trigger nope not found"):
        await store.delete_trigger("nope")
    with pytest.raises(NotFoundError, match="occurrence nope not found"):
        await store.get_occurrence("nope")
    with pytest.raises(NotFoundError, match="occurrence nope not found"):
        await store.finish_occurrence(unknown_occurrence("nope"), Outcome.failed("boom", 1))


# YAML reconciliation


async def test_reconcile_adds_changes_in_place_and_removes_yaml_triggers(store: Store) -> None:
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


async def test_reconciling_the_same_list_again_changes_nothing(store: Store) -> None:
    wanted = [yaml_trigger("a"), yaml_trigger("b")]
    await store.replace_yaml_triggers(wanted)

    again = await store.replace_yaml_triggers(wanted)

    assert again.unchanged == 2
    assert (again.added, again.changed, again.removed) == (0, 0, 0)


async def test_reconciling_an_empty_list_leaves_api_triggers(store: Store) -> None:
    await store.create_trigger(api_trigger("api-1"))
    await store.replace_yaml_triggers([yaml_trigger("a")])

    result = await store.replace_yaml_triggers([])

    assert result.removed == 1
    assert [t.id for t in await store.list_triggers()] == ["api-1"]


async def test_replicas_reconciling_the_same_file_at_once_store_one_copy(
    store_url: str,
) -> None:
    wanted = [yaml_trigger(f"trigger-{n}") for n in range(20)]
    replicas = [await open_store(store_url) for _ in range(4)]
    try:
        results = await asyncio.gather(*(r.replace_yaml_triggers(wanted) for r in replicas))
        stored = await replicas[0].list_triggers()
    finally:
        for replica in replicas:
            await replica.close()

    assert sorted(t.id for t in stored) == sorted(t.id for t in wanted)
    # They took turns: one applied the file, the others found it applied.
    assert sorted((r.added, r.unchanged) for r in results) == [(0, 20), (0, 20), (0, 20), (20, 0)]


# Changes seen by other replicas


async def test_every_trigger_change_moves_the_revision_and_nothing_else_does(
    store: Store,
) -> None:
    seen = [await store.triggers_revision()]

    async def moved() -> bool:
        seen.append(await store.triggers_revision())
        return seen[-1] != seen[-2]

    await store.create_trigger(api_trigger("t-1"))
    assert await moved()
    await store.replace_yaml_triggers([yaml_trigger("a")])
    assert await moved()
    await store.replace_yaml_triggers([yaml_trigger("a")])
    assert not await moved()
    await store.replace_yaml_triggers([yaml_trigger("a", "wf-2")])
    assert await moved()
    await store.replace_yaml_triggers([])
    assert await moved()
    await store.begin_occurrences([new_occurrence("t-1", "e-1")])
    with pytest.raises(ConflictError):
        await store.create_trigger(api_trigger("t-1"))
    with pytest.raises(NotFoundError):
        await store.delete_trigger("nope")
    assert not await moved()
    await store.delete_trigger("t-1")
    assert await moved()


async def test_a_trigger_changed_through_one_replica_is_active_on_another_within_a_second(
    store_url: str,
) -> None:
    here, there = await open_store(store_url), await open_store(store_url)
    writer, watcher = TriggerCatalog(here), TriggerCatalog(there)
    await watcher.refresh()
    stop = asyncio.Event()
    watching = asyncio.create_task(watcher.watch(0.05, stop))
    try:
        created = await writer.create(parse_definition({"event": "E", "workflowID": "wf"}))
        await wait_until(lambda: watcher.compiled(created.id) is not None, within_seconds=1)
        await writer.delete(created.id)
        await wait_until(lambda: watcher.compiled(created.id) is None, within_seconds=1)
        stop.set()
        await asyncio.wait_for(watching, timeout=5)
    finally:
        watching.cancel()
        await here.close()
        await there.close()


# Occurrences


async def test_begin_occurrences_records_pending_rows_in_input_order(store: Store) -> None:
    new = [new_occurrence("t-2", "e-1"), new_occurrence("t-1", "e-1")]

    begun = await store.begin_occurrences(new)

    assert [(o.trigger_id, o.event_id) for o in begun] == [("t-2", "e-1"), ("t-1", "e-1")]
    assert all(o.status is OccurrenceStatus.PENDING and o.attempts == 0 for o in begun)
    assert begun[0].date == T0
    assert begun[0].id != begun[1].id
    assert begun[0].seq > 0


async def test_begin_occurrences_again_returns_the_same_rows(store: Store) -> None:
    new = [new_occurrence("t-1", "e-1"), new_occurrence("t-2", "e-1")]
    first = await store.begin_occurrences(new)

    second = await store.begin_occurrences(new)

    assert second == first


async def test_a_finished_occurrence_stays_final_when_begun_again(store: Store) -> None:
    [pending] = await store.begin_occurrences([new_occurrence("t-1", "e-1")])
    finished = await store.finish_occurrence(pending, Outcome.failed("HTTP 400", attempts=1))

    [again, fresh] = await store.begin_occurrences(
        [new_occurrence("t-1", "e-1"), new_occurrence("t-1", "e-2")]
    )

    assert again == finished
    assert again.is_final
    assert not fresh.is_final


async def test_replicas_beginning_the_same_occurrences_at_once_share_one_row_each(
    store_url: str,
) -> None:
    pairs = [new_occurrence(f"t-{n % 3}", f"e-{n}") for n in range(60)]
    replicas = [await open_store(store_url) for _ in range(3)]
    try:
        begun = await asyncio.gather(
            replicas[0].begin_occurrences(pairs),
            replicas[1].begin_occurrences(pairs[::-1]),
            replicas[2].begin_occurrences(pairs[10:50]),
        )
        stored = await replicas[0].list_occurrences("t-0", limit=1000)
    finally:
        for replica in replicas:
            await replica.close()

    by_pair = {(o.trigger_id, o.event_id): o.id for o in begun[0]}
    assert {(o.trigger_id, o.event_id): o.id for o in begun[1]} == by_pair
    assert all(by_pair[(o.trigger_id, o.event_id)] == o.id for o in begun[2])
    assert len(stored) == 20


async def test_an_occurrence_keeps_its_first_outcome(store: Store) -> None:
    [pending] = await store.begin_occurrences([new_occurrence("t-1", "e-1")])
    first = await store.finish_occurrence(
        pending, Outcome.succeeded({"id": "wi-1"}, attempts=1, vars={})
    )

    second = await store.finish_occurrence(pending, Outcome.failed("late", attempts=2))

    assert second == first
    assert await store.get_occurrence(pending.id) == first


async def test_finish_occurrence_records_the_outcome(store: Store) -> None:
    [pending] = await store.begin_occurrences([new_occurrence("t-1", "e-1")])
    instance = {"id": "wi-1", "workflowID": "wf-1", "terminated": False}
    outcome = Outcome.succeeded(instance, attempts=3, vars={"txid": "42"})

    finished = await store.finish_occurrence(pending, outcome)

    assert finished.status is OccurrenceStatus.SUCCEEDED
    assert (finished.attempts, finished.vars) == (3, {"txid": "42"})
    assert (finished.workflow_instance_id, finished.workflow_instance) == ("wi-1", instance)
    assert finished.error is None
    assert (finished.id, finished.seq, finished.event) == (pending.id, pending.seq, pending.event)
    assert await store.get_occurrence(pending.id) == finished


async def test_concurrent_writers_each_get_back_their_own_rows(store: Store) -> None:
    # 200 records at once, as the pipeline's workers call: the SQL store's group commit puts
    # many in one transaction, and each caller must still get back exactly its own rows.
    async def one_record(n: int) -> tuple[str, str]:
        [pending] = await store.begin_occurrences([new_occurrence(f"t-{n % 4}", f"e-{n}")])
        outcome = Outcome.succeeded({"id": f"wi-{n}"}, attempts=1, vars={"n": str(n)})
        finished = await store.finish_occurrence(pending, outcome)
        return finished.event_id, finished.vars["n"]

    results = await asyncio.gather(*(one_record(n) for n in range(200)))

    assert results == [(f"e-{n}", str(n)) for n in range(200)]
    stored = await store.list_occurrences("t-1", limit=1000)
    assert len(stored) == 50
    assert all(o.status is OccurrenceStatus.SUCCEEDED for o in stored)
    assert {o.workflow_instance_id for o in stored} == {f"wi-{n}" for n in range(1, 200, 4)}


async def test_two_outcomes_for_one_occurrence_in_one_batch_keep_the_first(
    store: Store,
) -> None:
    [pending] = await store.begin_occurrences([new_occurrence("t-1", "e-1")])

    first, second = await asyncio.gather(
        store.finish_occurrence(pending, Outcome.succeeded({"id": "wi-1"}, 1, vars={})),
        store.finish_occurrence(pending, Outcome.failed("late", attempts=2)),
    )

    assert first == second
    assert first.workflow_instance_id == "wi-1"


async def test_an_unknown_occurrence_among_known_ones_fails_alone(store: Store) -> None:
    begun = await store.begin_occurrences([new_occurrence("t-1", f"e-{n}") for n in range(3)])
    outcome = Outcome.failed("HTTP 400", attempts=1)

    results = await asyncio.gather(
        *(store.finish_occurrence(o, outcome) for o in begun),
        store.finish_occurrence(unknown_occurrence("no-such-occurrence"), outcome),
        return_exceptions=True,
    )

    assert [r.status for r in results[:3] if not isinstance(r, BaseException)] == [
        OccurrenceStatus.FAILED
    ] * 3
    assert isinstance(results[3], NotFoundError)


async def test_integers_beyond_two_to_the_53_and_any_text_round_trip_exactly(
    store: Store,
) -> None:
    amount = 2**70 + 1
    payload = {"postings": [{"amount": amount, "asset": "USD/2"}], "ratio": 0.1, "memo": "café ☕"}
    [begun] = await store.begin_occurrences([new_occurrence("t-1", "e-1", payload)])
    instance = {"id": "wi-1", "balance": -amount}
    await store.finish_occurrence(begun, Outcome.succeeded(instance, 1, {"memo": "café ☕"}))

    stored = await store.get_occurrence(begun.id)

    assert stored.vars == {"memo": "café ☕"}
    assert stored.event["payload"] == payload
    assert stored.event["payload"]["postings"][0]["amount"] == amount
    assert stored.workflow_instance == instance


async def test_occurrences_page_newest_first_in_both_directions(store: Store) -> None:
    mine = await store.begin_occurrences([new_occurrence("t-1", f"e-{n}") for n in range(5)])
    await store.begin_occurrences([new_occurrence("t-other", "e-9")])
    seqs = [o.seq for o in mine]  # ascending: oldest first

    newest = await store.list_occurrences("t-1", limit=2)
    older = await store.list_occurrences("t-1", limit=2, before_seq=newest[-1].seq)
    back = await store.list_occurrences("t-1", limit=2, after_seq=older[0].seq)
    tail = await store.list_occurrences("t-1", limit=10, after_seq=seqs[2])
    next_up = await store.list_occurrences("t-1", limit=2, after_seq=seqs[0])

    assert [o.seq for o in newest] == [seqs[4], seqs[3]]
    assert [o.seq for o in older] == [seqs[2], seqs[1]]
    assert back == newest
    assert [o.seq for o in tail] == [seqs[4], seqs[3]]
    assert [o.seq for o in next_up] == [seqs[2], seqs[1]]  # the rows just above the cursor
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


async def test_replicas_starting_on_a_new_database_at_once_migrate_it_once(
    store_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="alembic"):
        replicas = await asyncio.gather(*(open_store(store_url) for _ in range(4)))

    for replica in replicas:
        await replica.ping()
        await replica.close()
    upgrades = [r for r in caplog.records if r.getMessage().startswith("Running upgrade")]
    assert [r.getMessage() for r in upgrades] == [
        "Running upgrade  -> 0001, Triggers and their occurrences.",
        "Running upgrade 0001 -> 0002, A change counter per kind of stored thing, for "
        "replicas to notice each other's changes.",
        "Running upgrade 0002 -> 0003, A trigger's own retry policy (the `retry` extension "
        "field), as JSON; null: the global one.",
        "Running upgrade 0003 -> 0004, The indexes that keep each occurrence query one "
        "bounded index range (occurrence_query.py).",
        "Running upgrade 0004 -> 0005, Finished backtests, kept for a while so that any replica "
        "can answer for them.",
        "Running upgrade 0005 -> 0006, A trigger's flow control (the `rateLimit` and "
        "`maxConcurrency` extension fields); null: none.",
        "Running upgrade 0006 -> 0007, Backfills: a trigger run for real over past events, with "
        "its position and its lease.",
        "Running upgrade 0007 -> 0008, Occurrence claims (`claimed_by`): a replica that lost a "
        "record to another stops trying it.",
    ]


async def test_operations_beyond_the_pool_wait_for_a_connection(store_url: str) -> None:
    store = await open_store(store_url, pool=PoolLimits(pool_size=1, max_overflow=0))
    try:
        await store.create_trigger(api_trigger("t-1"))
        pages = await asyncio.gather(
            *(store.list_occurrences("t-1", limit=1) for _ in range(30)),
            *(store.begin_occurrences([new_occurrence("t-1", f"e-{n}")]) for n in range(30)),
        )
        connections = await _connections_of(store, store_url)
    finally:
        await store.close()

    assert len(pages) == 60
    assert connections <= 1


async def _connections_of(store: SqlStore, store_url: str) -> int:
    """Server connections of this store's database (PostgreSQL), or 0 (SQLite)."""
    if not store_url.startswith("postgresql"):
        return 0
    database = store_url.rsplit("/", 1)[1]
    query = text(
        "SELECT count(*) FROM pg_stat_activity "
        "WHERE datname = :db AND application_name = 'trigger-daemon'"
    )
    async with store._engine.connect() as conn:  # the store's own (single) connection
        return int((await conn.execute(query, {"db": database})).scalar_one())


async def test_a_postgresql_restart_is_survived_without_reopening_the_store() -> None:
    cluster = await asyncio.to_thread(PostgresCluster.start)
    store = await open_store(await asyncio.to_thread(cluster.new_database))
    try:
        await store.create_trigger(api_trigger("t-1"))
        await store.ping()  # the pool holds a connection the restart will break
        await asyncio.to_thread(cluster.pause)

        with pytest.raises(StoreError) as caught:
            await asyncio.wait_for(store.ping(), timeout=15)
        await asyncio.to_thread(cluster.resume)

        assert caught.value.retriable
        assert await store.get_trigger("t-1") == api_trigger("t-1")
        [begun] = await store.begin_occurrences([new_occurrence("t-1", "e-1")])
        assert begun.status is OccurrenceStatus.PENDING
    finally:
        await store.close()
        await asyncio.to_thread(cluster.stop)


async def test_migrated_schema_matches_schema_module(store_url: str) -> None:
    await (await open_store(store_url)).close()
    engine = create_engine(store_url)
    try:
        async with engine.connect() as conn:
            diff = await conn.run_sync(_schema_diff)
            [[revision]] = await conn.execute(text("SELECT version_num FROM alembic_version"))
    finally:
        await engine.dispose()

    assert diff == []
    assert revision == "0008"


def _schema_diff(conn: Connection) -> list[object]:
    context = MigrationContext.configure(conn, opts={"compare_type": True})
    return list(compare_metadata(context, metadata))


async def test_a_database_from_a_newer_release_is_refused(store_url: str) -> None:
    await (await open_store(store_url)).close()
    engine = create_engine(store_url)
    try:
        async with engine.begin() as conn:
            await conn.execute(text("UPDATE alembic_version SET version_num = '9999'"))
    finally:
        await engine.dispose()

    with pytest.raises(StoreError, match="9999") as caught:
        await open_store(store_url)

    assert not caught.value.retriable


# SQLite only


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'store.db'}"


async def test_sqlite_runs_in_wal_mode_with_full_sync(sqlite_url: str) -> None:
    await (await open_store(sqlite_url)).close()
    engine = create_engine(sqlite_url)
    try:
        async with engine.connect() as conn:
            journal = (await conn.execute(text("PRAGMA journal_mode"))).scalar()
            synchronous = (await conn.execute(text("PRAGMA synchronous"))).scalar()
    finally:
        await engine.dispose()

    assert (journal, synchronous) == ("wal", 2)  # 2 is FULL


def test_the_writer_threads_engine_is_set_up_like_the_async_one(sqlite_url: str) -> None:
    engine = sqlite_file_writer(sqlite_url, sqlite_busy_timeout_ms=1234)
    assert engine is not None
    try:
        with engine.begin() as conn:
            pragmas = [
                conn.exec_driver_sql(f"PRAGMA {name}").scalar()
                for name in ("journal_mode", "synchronous", "busy_timeout", "foreign_keys")
            ]
    finally:
        engine.dispose()

    assert pragmas == ["wal", 2, 1234, 1]
    assert sqlite_file_writer("sqlite:///:memory:") is None
    assert sqlite_file_writer("postgresql://u@127.0.0.1/db") is None


async def test_a_locked_sqlite_database_is_a_retriable_store_error(sqlite_url: str) -> None:
    await (await open_store(sqlite_url)).close()
    impatient = SqlStore(create_engine(sqlite_url, sqlite_busy_timeout_ms=50))
    holder = sqlite3.connect(sqlite_url.removeprefix("sqlite:///"), isolation_level=None)
    try:
        holder.execute("BEGIN IMMEDIATE")
        with pytest.raises(StoreError) as caught:
            await impatient.create_trigger(api_trigger("t-1"))
    finally:
        holder.close()
        await impatient.close()

    assert caught.value.retriable
    assert str(caught.value) == "store: create trigger failed: OperationalError: database is locked"


async def test_a_locked_database_fails_an_occurrence_write_retriably(sqlite_url: str) -> None:
    await (await open_store(sqlite_url)).close()
    writer = sqlite_file_writer(sqlite_url, sqlite_busy_timeout_ms=50)
    assert writer is not None
    impatient = SqlStore(create_engine(sqlite_url), ThreadWriter(writer))
    holder = sqlite3.connect(sqlite_url.removeprefix("sqlite:///"), isolation_level=None)
    try:
        holder.execute("BEGIN IMMEDIATE")
        with pytest.raises(StoreError) as caught:
            await impatient.begin_occurrences([new_occurrence("t-1", "e-1")])
        holder.execute("ROLLBACK")
        [begun] = await impatient.begin_occurrences([new_occurrence("t-1", "e-1")])
    finally:
        holder.close()
        await impatient.close()

    assert caught.value.retriable
    assert (
        str(caught.value)
        == "store: record occurrences failed: OperationalError: database is locked"
    )
    assert begun.status is OccurrenceStatus.PENDING


class _DriverError(Exception):
    def __init__(self, sqlstate: str) -> None:
        super().__init__(f"SQLSTATE {sqlstate}")
        self.sqlstate = sqlstate


@pytest.mark.parametrize(
    ("sqlstate", "retriable"),
    [
        ("57P03", True),  # cannot connect now: the server is starting
        ("57P01", True),  # admin shutdown: a fast stop or restart
        ("08006", True),  # connection failure
        ("53300", True),  # too many connections
        ("40P01", True),  # deadlock detected
        ("23505", False),  # unique violation
        ("22P02", False),  # invalid text representation
    ],
)
def test_postgresql_errors_that_pass_with_time_are_retriable(
    sqlstate: str, retriable: bool
) -> None:
    with pytest.raises(StoreError) as caught, store_errors("read trigger"):
        raise sa_exc.DBAPIError("SELECT 1", None, _DriverError(sqlstate))

    assert caught.value.retriable is retriable
    assert str(caught.value) == f"store: read trigger failed: _DriverError: SQLSTATE {sqlstate}"


async def _application_name(url: str) -> str:
    engine = create_engine(url)
    try:
        async with engine.connect() as conn:
            return str(
                (await conn.execute(text("SELECT current_setting('application_name')"))).scalar()
            )
    finally:
        await engine.dispose()


async def test_a_postgresql_url_written_for_libpq_connects(postgres: PostgresCluster) -> None:
    # As managed databases document it: SQLAlchemy handed each parameter to asyncpg as a
    # keyword it does not take, and the daemon stopped at start with a TypeError.
    url = postgres.new_database()
    assert await _application_name(url) == "trigger-daemon"
    libpq = f"{url}?sslmode=prefer&connect_timeout=5&application_name=billing-triggers"
    assert await _application_name(libpq) == "billing-triggers"
    opened = await open_store(libpq)
    await opened.close()
    # The SSL mode reaches the driver: this cluster serves no TLS.
    with pytest.raises(StoreError, match="rejected SSL upgrade"):
        await open_store(f"{url}?sslmode=require")
    with pytest.raises(StoreError, match="rejected SSL upgrade"):
        await open_store(f"{url}?ssl=require")  # asyncpg's own spelling, as before
    with pytest.raises(ConfigError, match="connect_timeout must be a number of seconds"):
        await open_store(f"{url}?connect_timeout=soon")


async def test_an_unusable_url_is_a_config_error_without_the_password() -> None:
    with pytest.raises(ConfigError) as caught:
        await open_store("mysql://user:s3cret@db/triggers")

    assert "s3cret" not in str(caught.value)
    assert "mysql" in str(caught.value)


async def test_a_missing_driver_is_a_config_error_without_the_password(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "asyncpg", None)  # `import asyncpg` now fails
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


async def test_only_a_failed_occurrence_can_be_reopened_and_only_once(store: Store) -> None:
    [pending] = await store.begin_occurrences([new_occurrence("t-1", "e-1")])
    with pytest.raises(ConflictError, match="is pending; only failed occurrences"):
        await store.reopen_occurrence(pending.id)
    await store.finish_occurrence(pending, Outcome.failed("HTTP 503", attempts=3))

    reopened = await store.reopen_occurrence(pending.id)

    assert reopened.status is OccurrenceStatus.PENDING
    assert reopened.attempts == 3
    with pytest.raises(ConflictError):
        await store.reopen_occurrence(pending.id)
    with pytest.raises(NotFoundError):
        await store.reopen_occurrence("no-such-occurrence")


async def test_beginning_a_pending_occurrence_again_claims_it_a_final_one_stays(
    store: Store,
) -> None:
    await store.create_trigger(api_trigger("t-1"))
    claimed = [
        NewOccurrence("t-1", event, {"type": "E"}, T0, claimed_by=replica)
        for event, replica in (("e-1", "replica-a"), ("e-2", "replica-a"))
    ]
    [first, second] = await store.begin_occurrences(claimed)
    assert (first.claimed_by, second.claimed_by) == ("replica-a", "replica-a")
    await store.finish_occurrence(second, Outcome.succeeded({"id": "wi-1"}, 1, {}))

    again = [replace(new, claimed_by="replica-b") for new in claimed]
    [first_again, second_again] = await store.begin_occurrences(again)

    assert first_again.claimed_by == "replica-b"
    assert (await store.get_occurrence(first.id)).claimed_by == "replica-b"
    assert second_again.claimed_by == "replica-a"  # final: nobody runs it again
    assert second_again.status is OccurrenceStatus.SUCCEEDED
