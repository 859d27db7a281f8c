"""Engines for the store: the URL an operator writes, mapped to an async driver, and SQLite
set up so that a committed outcome survives an OS crash.

`sqlite:///PATH` becomes aiosqlite, `postgresql://…` becomes asyncpg. SQLite connections run
in WAL mode with `synchronous=FULL` (the Kafka offset is committed only after the outcome
write returns, so that write must be on disk), wait on locks instead of failing at once,
and enforce foreign keys.

The sqlite3 driver's own transaction handling starts no transaction for a SELECT, so a
read-then-write would not be atomic; here SQLAlchemy emits BEGIN itself, and
`BEGIN IMMEDIATE` for engines made by `writer()`, which takes the write lock up front so
two writers queue on `busy_timeout` instead of one failing with "database is locked".

PostgreSQL connections come from a bounded pool (`PoolLimits`): a replica holds at most
`pool_size + max_overflow` connections, waits up to `pool_timeout_seconds` for a free one
(then a retriable StoreError), and recycles each after half an hour (proxies and load
balancers drop idle connections). Connecting and each statement have a timeout, so a server
that stops answering fails the operation instead of hanging it. There is no ping before each
use (it would add a round trip to every operation): when a server restart has broken the
pooled connections, the first operation fails with a retriable StoreError, which the
pipeline retries, and SQLAlchemy then replaces every connection older than the failure.

The URL (it may hold a password) never goes into a message.
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from typing import Any, TypeVar

import orjson
import sqlalchemy
from sqlalchemy import event
from sqlalchemy.engine import URL, Connection, Engine, make_url
from sqlalchemy.exc import ArgumentError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import StaticPool

from trigger_daemon.errors import ConfigError

# How long a SQLite writer waits for another's lock before "database is locked".
SQLITE_BUSY_TIMEOUT_MS = 10_000

_ASYNC_DRIVERS = {
    "sqlite": "sqlite+aiosqlite",
    "sqlite+aiosqlite": "sqlite+aiosqlite",
    "postgresql": "postgresql+asyncpg",
    "postgres": "postgresql+asyncpg",
    "postgresql+asyncpg": "postgresql+asyncpg",
}


@dataclass(frozen=True, slots=True)
class PoolLimits:
    """Connections one process may hold to PostgreSQL, and how long it waits for one.

    Budget: replicas * (pool_size + max_overflow) must stay below the server's
    max_connections (100 by default) minus what other clients need.
    """

    pool_size: int = 5
    max_overflow: int = 5
    pool_timeout_seconds: float = 30.0
    recycle_seconds: int = 1800
    connect_timeout_seconds: float = 10.0
    statement_timeout_seconds: float = 60.0


AnyEngine = TypeVar("AnyEngine", Engine, AsyncEngine)

# An execution option read by the SQLite BEGIN hook: this engine's transactions write.
_WRITE_OPTION = "trigger_daemon_writes"

# Types orjson would write and json refuses: refused alike, so both paths accept the same.
_ORJSON_AS_JSON = orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_DATACLASS


def compact_json(value: Any) -> str:
    """A JSON column's text. orjson writes an event several times faster than json, and
    every occurrence write encodes its event; what orjson refuses, such as an integer beyond
    64 bits, json writes exactly."""
    try:
        return orjson.dumps(value, option=_ORJSON_AS_JSON).decode()
    except orjson.JSONEncodeError:
        return json.dumps(value, separators=(",", ":"))


def async_url(url: str) -> URL:
    """The URL with the async driver this project uses for its backend."""
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise ConfigError(
            "store.url: not a database URL; use sqlite:///PATH or postgresql://USER@HOST/DB"
        ) from None
    driver = _ASYNC_DRIVERS.get(parsed.drivername)
    if driver is None:
        raise ConfigError(
            f"store.url: unsupported database {parsed.drivername!r}; "
            "use sqlite:///PATH or postgresql://USER@HOST/DB"
        )
    return parsed.set(drivername=driver)


def create_engine(
    url: str,
    *,
    sqlite_busy_timeout_ms: int = SQLITE_BUSY_TIMEOUT_MS,
    pool: PoolLimits | None = None,
) -> AsyncEngine:
    """An engine for `url`; nothing is connected until first use."""
    target = async_url(url)
    try:
        if target.get_backend_name() == "sqlite":
            return _sqlite_engine(target, sqlite_busy_timeout_ms)
        return _postgresql_engine(target, pool or PoolLimits())
    except ImportError as exc:
        raise ConfigError(
            f"store.url: the {target.get_driver_name()} driver is not installed "
            f"(pip install {exc.name or target.get_driver_name()})"
        ) from None


def writer(engine: AnyEngine) -> AnyEngine:
    """The same engine and pool, whose transactions take SQLite's write lock when they begin."""
    return engine.execution_options(**{_WRITE_OPTION: True})


def sqlite_file_writer(
    url: str, *, sqlite_busy_timeout_ms: int = SQLITE_BUSY_TIMEOUT_MS
) -> Engine | None:
    """For a SQLite file, a synchronous writer engine set up as the async one is, for the
    store's writer thread (thread_writer.py); None for any other database."""
    target = async_url(url)
    if target.get_backend_name() != "sqlite" or _is_memory(target):
        return None
    engine = sqlalchemy.create_engine(
        target.set(drivername="sqlite+pysqlite"), json_serializer=compact_json
    )
    _configure_sqlite_engine(engine, sqlite_busy_timeout_ms)
    return writer(engine)


def _postgresql_engine(url: URL, limits: PoolLimits) -> AsyncEngine:
    libpq = {name: value for name, value in url.query.items() if name in _LIBPQ_ONLY}
    return create_async_engine(
        url.difference_update_query(libpq),
        json_serializer=compact_json,
        pool_size=limits.pool_size,
        max_overflow=limits.max_overflow,
        pool_timeout=limits.pool_timeout_seconds,
        pool_recycle=limits.recycle_seconds,
        pool_pre_ping=False,  # see the module docstring
        connect_args=_asyncpg_options(url, libpq, limits),
    )


# Parameters of libpq's URLs, as managed databases document them (`?sslmode=require`), that
# asyncpg takes from a DSN only: SQLAlchemy passes a URL's parameters to asyncpg as keywords,
# and these raised TypeError at start. The others (asyncpg's own `ssl=require`, SQLAlchemy's
# dialect options) stay in the URL.
_LIBPQ_ONLY = frozenset(
    {
        "sslmode",
        "sslrootcert",
        "sslcert",
        "sslkey",
        "sslpassword",
        "sslcrl",
        "sslnegotiation",
        "ssl_min_protocol_version",
        "ssl_max_protocol_version",
        "krbsrvname",
        "gsslib",
        "application_name",
        "connect_timeout",
    }
)


def _asyncpg_options(
    url: URL, libpq: dict[str, str | tuple[str, ...]], limits: PoolLimits
) -> dict[str, Any]:
    """asyncpg's connect options: the daemon's timeouts and application name, unless the URL
    sets libpq's `connect_timeout` or `application_name`, and the URL's other libpq
    parameters in a DSN, which asyncpg reads as libpq does."""
    given = {name: value if isinstance(value, str) else value[-1] for name, value in libpq.items()}
    timeout = given.pop("connect_timeout", None)
    application = given.pop("application_name", "trigger-daemon")
    try:
        seconds = float(timeout) if timeout else limits.connect_timeout_seconds
    except ValueError:
        raise ConfigError("store.url: connect_timeout must be a number of seconds") from None
    options: dict[str, Any] = {
        "timeout": seconds,
        "command_timeout": limits.statement_timeout_seconds,
        "server_settings": {"application_name": application},
    }
    if given:
        dsn = url.set(drivername="postgresql", query=given)
        options["dsn"] = dsn.render_as_string(hide_password=False)
    return options


def _sqlite_engine(url: URL, busy_timeout_ms: int) -> AsyncEngine:
    # A memory database lives in its connection: every checkout must get the same one.
    pool: dict[str, Any] = {"poolclass": StaticPool} if _is_memory(url) else {}
    engine = create_async_engine(url, json_serializer=compact_json, **pool)
    _configure_sqlite_engine(engine.sync_engine, busy_timeout_ms)
    return engine


def _configure_sqlite_engine(engine: Engine, busy_timeout_ms: int) -> None:
    configure = functools.partial(_configure_sqlite_connection, busy_timeout_ms=busy_timeout_ms)
    event.listen(engine, "connect", configure)
    event.listen(engine, "begin", _begin_sqlite_transaction)


def _is_memory(url: URL) -> bool:
    return url.database in (None, "", ":memory:")


def _configure_sqlite_connection(
    dbapi_connection: Any, _record: Any, *, busy_timeout_ms: int
) -> None:
    dbapi_connection.isolation_level = None  # the driver must not emit BEGIN: the hook does
    pragmas = (
        f"PRAGMA busy_timeout = {int(busy_timeout_ms)}",  # first: switching to WAL may wait
        "PRAGMA journal_mode = WAL",
        "PRAGMA synchronous = FULL",
        "PRAGMA foreign_keys = ON",
    )
    cursor = dbapi_connection.cursor()
    try:
        for pragma in pragmas:
            cursor.execute(pragma)
    finally:
        cursor.close()


def _begin_sqlite_transaction(connection: Connection) -> None:
    writes = connection.get_execution_options().get(_WRITE_OPTION, False)
    connection.exec_driver_sql("BEGIN IMMEDIATE" if writes else "BEGIN")
