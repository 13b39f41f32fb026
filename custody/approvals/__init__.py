"""Approvers, approval statements, quorum and expiry."""
