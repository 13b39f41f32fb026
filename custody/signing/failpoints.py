"""Named crash points for crash tests, e.g. CUSTODY_FAILPOINTS=after-hsm-sign.

A failpoint kills the process abruptly (as a power cut would), so tests can prove that a
request interrupted mid-way is finished exactly once. Never armed in production, whether the
environment variable or `custody.toml` says so: a signer disarms them from its settings.
(A hung HSM call is tested by stopping the signer process: tests/processes.)
"""

from __future__ import annotations

import os

from custody.settings import Settings
from custody.settings.config import Environment

_production = False


def disarm_for(settings: Settings) -> None:
    """Called by every signer with its settings: production never crashes on purpose."""
    global _production  # noqa: PLW0603 -- one process, one environment
    _production = _production or settings.environment is Environment.PRODUCTION


def _armed() -> dict[str, str]:
    if _production or os.environ.get("CUSTODY_ENVIRONMENT", "development") == "production":
        return {}
    parts = (part.strip() for part in os.environ.get("CUSTODY_FAILPOINTS", "").split(","))
    return {part.partition("=")[0]: part.partition("=")[2] for part in parts if part}


def hit(name: str) -> None:
    if name in _armed():
        os._exit(86)
