from custody.errors import Conflict, CustodyError, Forbidden, ValidationFailed


class ApprovalRefused(Forbidden):
    slug = "approval-refused"


class MakerRefused(Forbidden):
    """An approver without the maker permission tried to start a request."""

    title = "Not allowed to start withdrawals"
    slug = "maker-refused"


class ApprovalConflict(Conflict):
    slug = "approval-conflict"


class BadApprovalSignature(CustodyError):
    status = 401
    title = "Approval signature invalid"
    slug = "approval-signature-invalid"


class InvalidApproval(ValidationFailed):
    slug = "invalid-approval"
