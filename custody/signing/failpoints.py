"""Named crash points for crash tests, e.g. CUSTODY_FAILPOINTS=after-hsm-sign.

A failpoint kills the process abruptly (as a power cut would), so tests can prove that a
request interrupted mid-way is finished exactly once. Never armed in production, whether the
environment variable or `custody.toml` says so: a signer disarms them from its settings.
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


def hit(name: str) -> None:
    if _production or os.environ.get("CUSTODY_ENVIRONMENT", "development") == "production":
        return
    armed = os.environ.get("CUSTODY_FAILPOINTS", "")
    if name in {part.strip() for part in armed.split(",") if part.strip()}:
        os._exit(86)
