"""Deciding a request now: the active policy, what it may know, and its limits."""
