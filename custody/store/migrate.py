"""Run Alembic migrations programmatically (used by `custody init` and the tests)."""

from __future__ import annotations

from functools import cache
from importlib import resources

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import create_engine, pool

from custody.errors import Unavailable
from custody.store.database import (
    DatabaseTimeouts,
    create_private,
    is_sqlite,
    normalise_url,
    postgres_connect_args,
)

# A package resource, so an installed wheel finds the migrations it ships with; Alembic resolves
# `package:directory` through importlib.resources. (alembic.ini names the same directory by path.)
MIGRATIONS = "custody.store:migrations"


def alembic_config(url: str) -> Config:
    if not resources.files("custody.store").joinpath("migrations", "env.py").is_file():
        raise Unavailable(f"migrations not found in the installed package ({MIGRATIONS})")
    config = Config()
    config.set_main_option("script_location", MIGRATIONS)
    # ConfigParser interpolation would choke on a '%' in a password.
    config.set_main_option("sqlalchemy.url", normalise_url(url).replace("%", "%%"))
    return config


def upgrade_to_head(url: str) -> None:
    create_private(url)  # the migration's own engine would create the file world-readable
    current = _current_heads(url)
    # A database at head needs nothing, and saying so needs no Alembic run: that run loads every
    # migration module again (a third of a second per `initialise`, which a process that sets
    # up many installations, the tests, pays each time). An empty database goes straight on.
    if current and current == _script_heads():
        return
    command.upgrade(alembic_config(url), "head")


def _current_heads(url: str) -> frozenset[str]:
    """The revisions the database records (none for a new database)."""
    url = normalise_url(url)
    connect_args = {} if is_sqlite(url) else postgres_connect_args(url, DatabaseTimeouts())
    engine = create_engine(url, poolclass=pool.NullPool, connect_args=connect_args)
    try:
        with engine.connect() as connection:
            return frozenset(MigrationContext.configure(connection).get_current_heads())
    finally:
        engine.dispose()


@cache
def _script_heads() -> frozenset[str]:
    """The heads of the migrations this package ships, read once per process."""
    return frozenset(ScriptDirectory.from_config(alembic_config("sqlite://")).get_heads())
