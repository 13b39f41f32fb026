"""Key records: which keys were generated on which token, with their public keys."""
