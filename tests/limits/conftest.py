from tests.api.conftest import api, http, live_url, signer, wallet  # noqa: F401  (shared fixtures)
