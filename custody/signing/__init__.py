"""The signer: claims approved requests, re-checks them, signs in the HSM, verifies, records."""
