"""Approvers: people (and their devices) who approve requests. Only public keys are stored."""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from sqlalchemy import exists, select
from sqlalchemy.orm import Session

from custody.errors import Conflict, NotFound, ValidationFailed
from custody.ledger import service as ledger
from custody.ledger.events import EventKind
from custody.names import validate_name
from custody.store.base import utcnow
from custody.store.models import Approver, ApproverGroup, ApproverGroupSettings, EnrolmentInvite

GROUP_PATTERN = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")
INVITE_LIFETIME = timedelta(hours=24)


class Permission(StrEnum):
    """What an operator may grant a group beyond approving."""

    MAKER = "maker"  # start withdrawals in the approver app (never approving them: duties.py)


@dataclass(frozen=True)
class ApproverInfo:
    id: str
    name: str
    groups: tuple[str, ...]
    device_public_key: str | None
    disabled: bool
    passkeys: int = 0
    maker: bool = False


def parse_device_key(pem: bytes) -> bytes:
    """An approver's device key: Ed25519, PEM SubjectPublicKeyInfo; returns the raw 32 bytes."""
    try:
        key = serialization.load_pem_public_key(pem)
    except (ValueError, TypeError):
        raise ValidationFailed("device key is not a PEM-encoded public key") from None
    if not isinstance(key, Ed25519PublicKey):
        raise ValidationFailed("device keys must be Ed25519 (PEM SubjectPublicKeyInfo)")
    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def add_approver(
    session: Session, *, name: str, groups: list[str], device_key_pem: bytes | None, actor: str
) -> Approver:
    validate_name("approver", name)
    if not groups:
        raise ValidationFailed("an approver needs at least one --group")
    for group in groups:
        check_group(group)
    if session.execute(select(Approver).where(Approver.name == name)).scalar_one_or_none():
        raise Conflict(f"approver {name!r} already exists")
    device = parse_device_key(device_key_pem).hex() if device_key_pem else None
    approver = Approver(
        id="apr_" + secrets.token_hex(12), name=name, device_public_key=device, created_at=utcnow()
    )
    session.add(approver)
    session.flush()
    for group in sorted(set(groups)):
        session.add(ApproverGroup(approver_id=approver.id, group=group))
    ledger.append(
        session,
        EventKind.APPROVER_ADDED,
        actor,
        {
            "id": approver.id,
            "name": name,
            "groups": sorted(set(groups)),
            "device_public_key": device,
        },
    )
    return approver


def check_group(group: str) -> None:
    if not GROUP_PATTERN.fullmatch(group):
        raise ValidationFailed(f"group name {group!r} must be lower-case letters, digits, . _ -")


def set_permission(
    session: Session, *, group: str, permission: Permission, granted: bool, actor: str
) -> bool:
    """Grant or revoke a group's permission; False when it already was so (nothing recorded)."""
    check_group(group)
    row = session.get(ApproverGroupSettings, group, with_for_update=True)
    if row is None:
        row = ApproverGroupSettings(group=group, maker=False)
        session.add(row)
    if row.maker == granted:
        return False
    row.maker = granted
    session.flush()
    kind = EventKind.GROUP_PERMISSION_GRANTED if granted else EventKind.GROUP_PERMISSION_REVOKED
    ledger.append(session, kind, actor, {"group": group, "permission": permission.value})
    return True


def may_make(session: Session, approver_id: str) -> bool:
    """Whether an enabled approver is in a group granted `maker` (read now, never cached: a
    revocation or a disabling takes effect on the next request)."""
    in_maker_group = exists().where(
        ApproverGroup.approver_id == approver_id,
        ApproverGroupSettings.group == ApproverGroup.group,
        ApproverGroupSettings.maker.is_(True),
    )
    query = select(Approver.id).where(
        Approver.id == approver_id, Approver.disabled_at.is_(None), in_maker_group
    )
    return session.execute(query).first() is not None


def by_name(session: Session, name: str) -> Approver:
    approver = session.execute(select(Approver).where(Approver.name == name)).scalar_one_or_none()
    if approver is None:
        raise NotFound(f"unknown approver {name!r}")
    return approver


def groups_of(session: Session, approver_id: str) -> tuple[str, ...]:
    rows = session.execute(
        select(ApproverGroup.group)
        .where(ApproverGroup.approver_id == approver_id)
        .order_by(ApproverGroup.group)
    ).scalars()
    return tuple(rows)


def disable(session: Session, *, name: str, actor: str) -> Approver:
    """From now on this approver's approvals count for nothing, also on pending requests."""
    approver = by_name(session, name)
    if approver.disabled_at is None:
        approver.disabled_at = utcnow()
        ledger.append(
            session, EventKind.APPROVER_DISABLED, actor, {"id": approver.id, "name": approver.name}
        )
    return approver


def list_approvers(session: Session) -> list[ApproverInfo]:
    from custody.store.models import WebauthnCredential

    result = []
    for approver in session.execute(select(Approver).order_by(Approver.name)).scalars():
        passkeys = len(
            session.execute(
                select(WebauthnCredential.id).where(WebauthnCredential.approver_id == approver.id)
            ).all()
        )
        result.append(
            ApproverInfo(
                approver.id,
                approver.name,
                groups_of(session, approver.id),
                approver.device_public_key,
                approver.disabled_at is not None,
                passkeys,
                may_make(session, approver.id),
            )
        )
    return result


def invite(session: Session, *, name: str, actor: str, now: datetime | None = None) -> str:
    """A one-time enrolment token for a passkey; only its hash is stored."""
    approver = by_name(session, name)
    if approver.disabled_at is not None:
        raise Conflict(f"approver {name!r} is disabled")
    token = secrets.token_urlsafe(32)
    moment = now or utcnow()
    session.add(
        EnrolmentInvite(
            token_hash=hash_token(token),
            approver_id=approver.id,
            expires_at=moment + INVITE_LIFETIME,
        )
    )
    ledger.append(
        session,
        EventKind.APPROVER_INVITED,
        actor,
        {
            "id": approver.id,
            "name": approver.name,
            "expires_at": (moment + INVITE_LIFETIME).strftime("%Y-%m-%dT%H:%M:%SZ"),
        },
    )
    return token


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()
