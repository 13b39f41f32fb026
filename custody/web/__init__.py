"""The approver web app (`/app`): server-rendered pages, passkeys (WebAuthn), approvals.

Approvers are people on phones. Every approval or rejection is a WebAuthn assertion whose challenge
is SHA-256 of the approval statement (the same bytes a device key signs over the API), so the
evidence names the request's payload digest and a compromised page cannot move it elsewhere.
"""
