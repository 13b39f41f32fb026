"""Limit accounting: what signed and in-flight requests have used of each limit."""
