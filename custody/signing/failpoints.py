"""Named crash points for crash tests, e.g. CUSTODY_FAILPOINTS=after-hsm-sign.

A failpoint kills the process abruptly (as a power cut would), so tests can prove that a
request interrupted mid-way is finished exactly once. Ignored in production.
"""

from __future__ import annotations

import os


def hit(name: str) -> None:
    if os.environ.get("CUSTODY_ENVIRONMENT", "development") == "production":
        return
    armed = os.environ.get("CUSTODY_FAILPOINTS", "")
    if name in {part.strip() for part in armed.split(",") if part.strip()}:
        os._exit(86)
