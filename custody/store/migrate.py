"""Run Alembic migrations programmatically (used by `custody init` and the tests)."""

from __future__ import annotations

from importlib import resources

from alembic import command
from alembic.config import Config

from custody.errors import Unavailable
from custody.store.database import create_private, normalise_url

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
    command.upgrade(alembic_config(url), "head")
