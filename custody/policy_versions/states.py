"""The states of a stored policy version (`PolicyVersion.state`)."""

APPLIED = "applied"
PROPOSED = "proposed"
REJECTED = "rejected"
