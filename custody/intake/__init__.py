"""Intake: from a client's signed HTTP body to a stored, policy-decided request."""
