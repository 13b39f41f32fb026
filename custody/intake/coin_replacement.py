"""Replacing a Bitcoin transaction: a new PSBT that names the request it replaces (BIP-125).

The Bitcoin twin of custody.intake.replacement. Two signed transactions spending one coin are
never both made by custody unless the second names the first: it spends at least one of the
first one's coins (so at most one of them can be mined) and pays more, both in absolute fee and
in fee rate (BIP-125 rules 3 and 4 in spirit: a node would not relay it otherwise, and a
replacement that pays less could only be a way round the one-request-per-coin rule). Only a
signed transaction can be replaced, the newest of its line, by its own client and wallet: a
replaced request still waiting could be signed after its replacement, and then custody would
have signed a second spend of the coin nobody named as a replacement. It passes the policy and
approvals like any request. The ledger links the two (`replaces` in the new request's
`request.created`), and the replaced request's view names its replacement.
"""

from __future__ import annotations

import json

from sqlalchemy.orm import Session

from custody.chains.bitcoin import decode_psbt, wallet_script
from custody.chains.bitcoin.psbt import DecodedPsbt
from custody.errors import Conflict, CustodyError, NotFound
from custody.intake.draft import Draft
from custody.intake.errors import InvalidBody
from custody.intake.replacement import REPLACEABLE
from custody.requests import repository as requests
from custody.store.models import Request


def replaced_request(session: Session, *, client_id: str, request_id: str, draft: Draft) -> Request:
    """The request a Bitcoin replacement names, if it may be replaced now (the caller holds the
    ledger head lock)."""
    replaced = session.get(Request, request_id)
    if replaced is None or replaced.client_id != client_id:
        raise NotFound(f"no request {request_id!r} to replace")
    if replaced.wallet_id != draft.wallet.id or replaced.type != draft.type:
        raise InvalidBody(
            f"request {request_id} is not a PSBT of wallet {draft.wallet.name}: a replacement "
            "spends the same wallet's coins"
        )
    if replaced.status not in REPLACEABLE:
        raise Conflict(
            f"request {request_id} is {replaced.status}: only a signed transaction can be "
            "replaced (one still waiting can be cancelled instead)"
        )
    newer = requests.replacement_of(session, request_id)
    if newer is not None:
        raise Conflict(f"request {request_id} is already replaced by request {newer.id}")
    return replaced


def check(draft: Draft, replaced: Request) -> None:
    """Spends one of the replaced transaction's coins, and pays more in fee and in fee rate."""
    old, new = _decoded(replaced.payload), _decoded(json.dumps(draft.payload))
    if not draft.spends & old.spends:
        raise InvalidBody(
            f"the psbt spends none of the coins of request {replaced.id}, so it replaces nothing"
        )
    # Compared exactly (fee / vsize), not as the rounded sat/vB shown to people.
    if new.fee <= old.fee or new.fee * old.vsize <= old.fee * new.vsize:
        raise InvalidBody(
            f"a replacement must pay a higher fee and fee rate than request {replaced.id} "
            f"({old.fee} sats, ~{old.fee_rate} sat/vB), not {new.fee} sats "
            f"(~{new.fee_rate} sat/vB)"
        )


def line_of(session: Session, replaced: Request) -> set[str]:
    """The replaced request and every one it replaced in turn: they spend the coins the new
    transaction spends again, by name."""
    line: set[str] = set()
    current: Request | None = replaced
    while current is not None and current.id not in line:
        line.add(current.id)
        current = session.get(Request, current.replaces) if current.replaces else None
    return line


def _decoded(payload_json: str) -> DecodedPsbt:
    payload = json.loads(payload_json)
    try:
        return decode_psbt(payload["psbt"], wallet_script(payload["descriptor"]), payload["chain"])
    except (KeyError, TypeError, CustodyError):
        # A stored row that no longer decodes was edited behind custody's back.
        raise Conflict("the request to replace does not hold a PSBT custody can read") from None
