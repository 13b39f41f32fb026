from custody.errors import Conflict, ValidationFailed


class InvalidBody(ValidationFailed):
    slug = "invalid-body"


class IdempotencyConflict(Conflict):
    slug = "idempotency-conflict"


class NonceInUse(Conflict):
    slug = "nonce-in-use"


class OutpointInUse(Conflict):
    """A Bitcoin PSBT spends a coin that a live request of the wallet already spends."""

    slug = "outpoint-in-use"
