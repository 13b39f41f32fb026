from custody.errors import NotFound, ValidationFailed


class WalletNotFound(NotFound):
    slug = "wallet-not-found"


class WalletRetired(ValidationFailed):
    """The wallet's key was retired (`custody keys retire`): it signs nothing more."""

    title = "Wallet retired"
    slug = "wallet-retired"
