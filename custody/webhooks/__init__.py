"""Webhooks: signed HTTP notifications of request status changes, fed by the ledger.

The ledger is the transactional outbox: every status change already commits with its ledger
entry. The dispatcher turns entries into delivery rows (one per entry and target, in the same
transaction that advances its cursor); the deliverer POSTs them, signed with the service's
Ed25519 key in the HSM, retrying with backoff, in ledger order per target.
"""
