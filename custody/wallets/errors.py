from custody.errors import NotFound


class WalletNotFound(NotFound):
    slug = "wallet-not-found"
