"""Alembic's entry point for the store's migrations.

At run time `upgrade_to_head` hands over a connection already inside a transaction
(`config.attributes["connection"]`). Without one (a developer drafting a revision), the
`sqlalchemy.url` option is opened with the async driver and driven through `run_sync`.
`target_metadata` is schema.py, only so that autogenerate can draft a diff; the revisions
themselves never import it.
"""

from __future__ import annotations

import asyncio

from alembic import context
from sqlalchemy.engine import Connection

from trigger_daemon.adapters.store.engine import create_engine
from trigger_daemon.adapters.store.schema import metadata


def _run_on(connection: Connection) -> None:
    context.configure(connection=connection, target_metadata=metadata)
    with context.begin_transaction():
        context.run_migrations()


async def _run_on_url(url: str) -> None:
    engine = create_engine(url)
    try:
        async with engine.connect() as connection:
            await connection.run_sync(_run_on)
    finally:
        await engine.dispose()


def _run_offline(url: str) -> None:
    context.configure(url=url, target_metadata=metadata, literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()


def _main() -> None:
    given = context.config.attributes.get("connection")
    if given is not None:
        _run_on(given)
        return
    url = context.config.get_main_option("sqlalchemy.url")
    if not url:
        raise RuntimeError("set sqlalchemy.url, or run through upgrade_to_head(connection)")
    if context.is_offline_mode():
        _run_offline(url)
    else:
        asyncio.run(_run_on_url(url))


_main()
