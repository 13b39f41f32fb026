"""Persistence: SQLAlchemy models, the unit of work, migrations."""

from custody.store.base import Base, utcnow
from custody.store.database import Database, DatabaseTimeouts, DatabaseUnavailable

__all__ = ["Base", "Database", "DatabaseTimeouts", "DatabaseUnavailable", "utcnow"]
