from custody.errors import Conflict, ValidationFailed


class InvalidBody(ValidationFailed):
    slug = "invalid-body"


class IdempotencyConflict(Conflict):
    slug = "idempotency-conflict"


class NonceInUse(Conflict):
    slug = "nonce-in-use"
