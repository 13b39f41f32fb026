"""Alembic environment: the URL comes from the caller's config or from custody's settings."""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine, pool

from custody.store import models  # noqa: F401  (registers the tables on Base.metadata)
from custody.store.base import Base
from custody.store.database import DatabaseTimeouts, is_sqlite, normalise_url, postgres_connect_args

config = context.config


def _url() -> str:
    url = config.get_main_option("sqlalchemy.url")
    if url:
        return normalise_url(url)
    from custody.settings import load_settings

    return normalise_url(load_settings().resolved_database_url)


def run_migrations_offline() -> None:
    context.configure(url=_url(), target_metadata=Base.metadata, literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    url = _url()
    # Bounded connecting and keepalives, but no statement timeout: one migration may rewrite a
    # large table for longer than any request should take.
    connect_args = (
        {}
        if is_sqlite(url)
        else postgres_connect_args(url, DatabaseTimeouts(), statement_seconds=0)
    )
    engine = create_engine(url, poolclass=pool.NullPool, connect_args=connect_args)
    with engine.connect() as conn:
        _run(conn)
    engine.dispose()


def _run(connection: object) -> None:
    context.configure(
        connection=connection,  # type: ignore[arg-type]
        target_metadata=Base.metadata,
        render_as_batch=connection.dialect.name == "sqlite",  # type: ignore[attr-defined]
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
