"""Fixtures for intake tests through the real ASGI app, as tests/api/conftest.py sets them up."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from tests.api.conftest import api, http, signer, wallet  # noqa: F401  (shared fixtures)
from tests.support.installation import Installation


@pytest.fixture
def policy(installation: Installation) -> Iterator[Callable[[str], str]]:
    """Apply a policy for one test; the shared installation gets allow-all back afterwards."""
    try:
        yield installation.apply_policy
    finally:
        installation.allow_all_policy()
