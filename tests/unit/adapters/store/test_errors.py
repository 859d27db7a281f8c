"""The store's error boundary: which library errors are worth retrying, and what the
StoreError says."""

from __future__ import annotations

import sqlite3

import pytest
import sqlalchemy
from sqlalchemy import exc as sa_exc

from trigger_daemon.adapters.store.errors import is_retriable, store_errors
from trigger_daemon.errors import StoreError


class PostgresDriverError(Exception):
    """Shaped like the error SQLAlchemy's asyncpg adapter raises: the SQLSTATE as an attribute."""

    def __init__(self, sqlstate: str) -> None:
        super().__init__(f"SQLSTATE {sqlstate}")
        self.sqlstate = sqlstate


def postgres_error(sqlstate: str) -> sa_exc.DBAPIError:
    return sa_exc.DBAPIError("SELECT 1", None, PostgresDriverError(sqlstate))


@pytest.mark.parametrize(
    ("error", "retriable"),
    [
        # PostgreSQL, by SQLSTATE (the class alone for 08 and 53)
        pytest.param(postgres_error("08006"), True, id="connection failure"),
        pytest.param(postgres_error("08001"), True, id="cannot establish a connection"),
        pytest.param(postgres_error("53300"), True, id="too many connections"),
        pytest.param(postgres_error("57P01"), True, id="admin shutdown (restart)"),
        pytest.param(postgres_error("57P02"), True, id="crash shutdown"),
        pytest.param(postgres_error("57P03"), True, id="server starting"),
        pytest.param(postgres_error("40001"), True, id="serialisation failure"),
        pytest.param(postgres_error("40P01"), True, id="deadlock detected"),
        pytest.param(postgres_error("55P03"), True, id="lock not available"),
        pytest.param(postgres_error("57014"), False, id="query cancelled (not all of 57)"),
        pytest.param(postgres_error("23505"), False, id="unique violation"),
        pytest.param(postgres_error("23514"), False, id="check violation"),
        pytest.param(postgres_error("22P02"), False, id="invalid text representation"),
        pytest.param(postgres_error("42P01"), False, id="undefined table"),
        pytest.param(sa_exc.DBAPIError("SELECT 1", None, Exception("?")), False, id="no sqlstate"),
        # By SQLAlchemy's class, whatever the driver
        pytest.param(
            sa_exc.OperationalError("BEGIN", None, sqlite3.OperationalError("database is locked")),
            True,
            id="sqlite locked (operational)",
        ),
        pytest.param(
            sa_exc.InterfaceError("SELECT 1", None, sqlite3.InterfaceError("closed")),
            True,
            id="interface",
        ),
        pytest.param(
            sa_exc.IntegrityError("INSERT", None, sqlite3.IntegrityError("UNIQUE failed")),
            False,
            id="integrity",
        ),
        pytest.param(
            sa_exc.DataError("INSERT", None, sqlite3.DataError("too big")), False, id="data"
        ),
        pytest.param(
            sa_exc.ProgrammingError("SELEC", None, sqlite3.ProgrammingError("syntax")),
            False,
            id="programming",
        ),
        pytest.param(
            sa_exc.DBAPIError(
                "SELECT 1", None, PostgresDriverError("XX000"), connection_invalidated=True
            ),
            True,
            id="connection invalidated, whatever the error",
        ),
        # No answer at all
        pytest.param(
            sa_exc.TimeoutError("QueuePool limit of size 5 overflow 0 reached"),
            True,
            id="pool exhausted",
        ),
        pytest.param(ConnectionRefusedError(111, "Connection refused"), True, id="refused"),
        pytest.param(TimeoutError("timed out"), True, id="socket timeout"),
    ],
)
def test_errors_that_pass_with_time_are_retriable(error: Exception, retriable: bool) -> None:
    assert is_retriable(error) is retriable

    with pytest.raises(StoreError) as caught, store_errors("read trigger"):
        raise error

    assert caught.value.retriable is retriable
    assert caught.value.__cause__ is error


def test_the_message_names_the_operation_and_the_drivers_reason_not_the_sql() -> None:
    error = sa_exc.IntegrityError(
        "INSERT INTO triggers (id) VALUES (?)", ("s3cret-id",), sqlite3.IntegrityError("boom")
    )

    with pytest.raises(StoreError) as caught, store_errors("create trigger"):
        raise error

    assert str(caught.value) == "store: create trigger failed: IntegrityError: boom"


def test_a_real_constraint_violation_is_not_retriable() -> None:
    engine = sqlalchemy.create_engine("sqlite://")
    try:
        with engine.begin() as conn:
            conn.exec_driver_sql("CREATE TABLE t (id INTEGER PRIMARY KEY)")
            with pytest.raises(StoreError) as caught, store_errors("insert row"):
                conn.exec_driver_sql("INSERT INTO t (id) VALUES (1), (1)")
    finally:
        engine.dispose()

    assert not caught.value.retriable
    assert str(caught.value) == (
        "store: insert row failed: IntegrityError: UNIQUE constraint failed: t.id"
    )


def test_other_errors_pass_through_unchanged() -> None:
    with pytest.raises(ValueError, match="limit must not be negative"), store_errors("list"):
        raise ValueError("limit must not be negative, got -1")
