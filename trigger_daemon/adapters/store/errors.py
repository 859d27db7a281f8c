"""The database library's errors as the project's `StoreError`, at the store's boundary.

`store_errors(operation)` wraps every read and write of the store. SQLAlchemy's and the
driver's exceptions leave it as `StoreError`, with `retriable` set when trying again may help
(`is_retriable`: a lock, a lost connection, a restarting server, an exhausted pool) and a
message that names the operation and the driver's reason, never the SQL text, its parameters
or the URL.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import exc as sa_exc

from trigger_daemon.errors import StoreError

# PostgreSQL SQLSTATEs (or their two-character classes) that pass with time: a lost or
# refused connection, a server starting or shutting down, too many connections, a lock or
# serialisation conflict. https://www.postgresql.org/docs/current/errcodes-appendix.html
TRANSIENT_SQLSTATES = ("08", "53", "57P01", "57P02", "57P03", "40001", "40P01", "55P03")


@contextmanager
def store_errors(operation: str) -> Iterator[None]:
    """Turn the database library's errors into StoreError, saying whether a retry may help."""
    try:
        yield
    except (sa_exc.DBAPIError, sa_exc.TimeoutError, OSError) as exc:
        raise StoreError(
            f"store: {operation} failed: {_reason(exc)}", retriable=is_retriable(exc)
        ) from exc


def is_retriable(exc: BaseException) -> bool:
    """Locks, lost connections, a restarting server and exhausted pools pass; constraint or
    data errors do not."""
    if isinstance(exc, sa_exc.DBAPIError):
        sqlstate = getattr(exc.orig, "sqlstate", None) or ""
        return (
            exc.connection_invalidated
            or isinstance(exc, sa_exc.OperationalError | sa_exc.InterfaceError)
            or sqlstate.startswith(TRANSIENT_SQLSTATES)
        )
    return True


def _reason(exc: BaseException) -> str:
    # A DBAPIError's own text carries the SQL and its parameters; the driver's does not.
    cause = exc.orig if isinstance(exc, sa_exc.DBAPIError) else exc
    return f"{type(cause).__name__}: {cause}"
