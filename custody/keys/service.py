"""Recording a key generated on a token, with its ledger entry."""

from __future__ import annotations

from sqlalchemy.orm import Session

from custody.hsm.keys import KeyInfo
from custody.ledger import service as ledger
from custody.ledger.events import EventKind
from custody.store.base import utcnow
from custody.store.models import Key


def record_key(session: Session, *, info: KeyInfo, token: str, actor: str) -> Key:
    """Remember a key that was just generated on the token, and ledger the ceremony."""
    key = Key(
        label=info.label,
        algorithm=str(info.algorithm),
        token=token,
        key_id=info.key_id,
        public_key=info.public_key.hex(),
        created_at=utcnow(),
    )
    session.add(key)
    session.flush()
    ledger.append(
        session,
        EventKind.KEY_GENERATED,
        actor,
        {
            "label": info.label,
            "algorithm": str(info.algorithm),
            "token": token,
            "key_id": info.key_id,
            "public_key": info.public_key.hex(),
        },
    )
    return key
