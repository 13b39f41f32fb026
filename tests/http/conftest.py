"""The API's fixtures and the webhook receiver, for the call id's way through both."""

from tests.api.conftest import api, http, signer, wallet  # noqa: F401
from tests.webhooks.conftest import pump, receiver  # noqa: F401
