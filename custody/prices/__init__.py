"""Reference prices operators set for USD-denominated rules: stored and ledgered."""
