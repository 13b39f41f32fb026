"""The append-only ledger: canonical entries, RFC 9162 hashing, verification."""
