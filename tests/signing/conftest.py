from __future__ import annotations

from tests.api.conftest import api, http, signer, wallet  # noqa: F401  (shared fixtures)
