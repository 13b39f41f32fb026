"""Building the runtime for one CLI invocation."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from custody.runtime import Runtime
from custody.seals.hooks import install as install_seal_hooks
from custody.settings import Settings, load_settings


def settings() -> Settings:
    return load_settings()


@contextmanager
def runtime() -> Iterator[Runtime]:
    rt = Runtime(settings())
    install_seal_hooks(rt)  # configuration changed from the CLI is sealed as it commits
    try:
        yield rt
    finally:
        rt.close()


def operator() -> str:
    """Who acted, as the ledger records it. The OS user is what an operator's CLI knows."""
    import getpass

    try:
        return f"operator:{getpass.getuser()}"
    except (KeyError, OSError):
        return "operator:unknown"
