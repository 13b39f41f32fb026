"""Freezes and circuit breakers: stopping signing in one step (issue 9 §3).

A freeze covers the whole installation or one wallet. While one is active the signer claims no
request of its scope (they wait, `approved`) and releases no signature for one; intake still takes
and decides requests. Operators freeze and lift from the CLI, operator clients freeze over the
API, breakers freeze by themselves; lifting needs the governance quorum when the active policy
has one. Every freeze and lift is a ledger entry and a webhook.
"""
