from custody.errors import Conflict, NotFound, ValidationFailed


class ChainNotFound(NotFound):
    slug = "chain-not-found"


class WalletNotFound(NotFound):
    slug = "wallet-not-found"


class KeyRecordNotFound(NotFound):
    slug = "key-not-found"


class AlreadyExists(Conflict):
    slug = "already-exists"


class InvalidName(ValidationFailed):
    slug = "invalid-name"
