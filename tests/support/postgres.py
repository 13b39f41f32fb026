"""The PostgreSQL server the machines run on 127.0.0.1:5432; each run gets fresh databases."""

from __future__ import annotations

import functools
import secrets
from dataclasses import dataclass

import psycopg

ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"


@dataclass(frozen=True)
class PostgresServer:
    admin_url: str
    available: bool
    reason: str = ""

    def create_database(self, template: str | None = None) -> str:
        """A new database (a copy of the database at URL `template`, if given); its URL."""
        name = f"custody_test_{secrets.token_hex(6)}"
        copy = f' TEMPLATE "{template.rsplit("/", 1)[1]}"' if template else ""
        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"{copy}')
            # A commit need not wait for its WAL to reach the disk: the server crashing is not
            # what these tests are about, and visibility and locking are unchanged.
            conn.execute(f'ALTER DATABASE "{name}" SET synchronous_commit TO off')
        return self.admin_url.rsplit("/", 1)[0] + f"/{name}"

    def drop_database(self, url: str) -> None:
        name = url.rsplit("/", 1)[1]
        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@functools.cache
def postgres_server() -> PostgresServer:
    try:
        with psycopg.connect(ADMIN_URL, connect_timeout=3) as conn:
            conn.execute("SELECT 1")
    except psycopg.Error as exc:
        return PostgresServer(ADMIN_URL, available=False, reason=str(exc).splitlines()[0])
    return PostgresServer(ADMIN_URL, available=True)
