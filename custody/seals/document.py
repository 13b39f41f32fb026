"""The configuration document: every row that decides what gets signed, as one JSON document.

Each section maps a stable name to what the signer relies on. Columns that do not decide a
signature stay out (webhook and notify URLs, passkey sign counts, timestamps of creation), so
that changing them needs no new seal. Relations are spelled by name and by id: the signer looks
rows up by id, and a swapped id must show as a change.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from functools import cached_property
from typing import Any

from sqlalchemy.orm import Session

from custody.ledger.service import rfc3339
from custody.seals import repository
from custody.store.models import (
    Approver,
    ApproverGroup,
    ApproverGroupSettings,
    Asset,
    Chain,
    Client,
    Key,
    ReferencePrice,
    Venue,
    Wallet,
    WebauthnCredential,
)

DOCUMENT_TYPE = "custody.configuration.v1"
Sections = dict[str, dict[str, Any]]


@dataclass(frozen=True)
class Document:
    sections: Sections

    @property
    def body(self) -> dict[str, Any]:
        return {"type": DOCUMENT_TYPE, **self.sections}

    @cached_property
    def canonical(self) -> bytes:
        """Sorted, compact JSON: deterministic for what the document holds (names, ids,
        integers, booleans, nulls, ASCII keys), and C-fast, since sealing writes all of it."""
        return json.dumps(
            self.body, sort_keys=True, separators=(",", ":"), ensure_ascii=False
        ).encode()

    @cached_property
    def digest(self) -> str:
        return hashlib.sha256(self.canonical).hexdigest()


@dataclass(frozen=True)
class Scope:
    """The rows one claim relies on, beyond the small sections read whole."""

    client_ids: frozenset[str]
    wallet_ids: frozenset[int]
    approver_ids: frozenset[str]


# Read whole on every check: few rows, and which of them decoding and policy use is not known
# in advance (an asset by symbol, a price by chain, an allowlist in a policy version).
WHOLE_SECTIONS = ("chains", "assets", "venues", "prices", "groups", "policies")


def current(session: Session, scope: Scope | None = None) -> Document:
    """The configuration as the rows say it is now: all of it, or the small sections and the
    items `scope` names (keys: those of its wallets; passkeys: those of its approvers)."""
    session.flush()
    chains = repository.rows(session, Chain)
    chain_names = {c.id: c.name for c in chains}
    if scope is None:
        wallets = repository.rows(session, Wallet)
        keys = repository.rows(session, Key)
        clients = repository.rows(session, Client)
        approvers = repository.rows(session, Approver)
        memberships = repository.rows(session, ApproverGroup)
        passkeys = repository.rows(session, WebauthnCredential)
    else:
        wallets = repository.rows_where(session, Wallet, "id", scope.wallet_ids)
        keys = repository.rows_where(session, Key, "id", {w.key_id for w in wallets})
        clients = repository.rows_where(session, Client, "id", scope.client_ids)
        approvers = repository.rows_where(session, Approver, "id", scope.approver_ids)
        memberships = repository.rows_where(
            session, ApproverGroup, "approver_id", scope.approver_ids
        )
        passkeys = repository.rows_where(
            session, WebauthnCredential, "approver_id", scope.approver_ids
        )
    key_labels = {k.id: k.label for k in keys}
    groups: dict[str, list[str]] = {}
    for membership in memberships:
        groups.setdefault(membership.approver_id, []).append(membership.group)
    sections: Sections = {
        "chains": {
            c.name: {
                "id": c.id,
                "kind": c.kind,
                "evm_chain_id": c.evm_chain_id,
                "native_asset": c.native_asset,
                "native_decimals": c.native_decimals,
            }
            for c in chains
        },
        "assets": {
            f"{_name(chain_names, a.chain_id)}/{a.symbol}": {
                "id": a.id,
                "chain_id": a.chain_id,
                "contract": a.contract,
                "decimals": a.decimals,
                "standard": a.standard,
            }
            for a in repository.rows(session, Asset)
        },
        "venues": {
            v.name: {
                "id": v.id,
                "chain_id": v.chain_id,
                "verifying_contract": v.verifying_contract,
                "primary_types": v.primary_types,
            }
            for v in repository.rows(session, Venue)
        },
        "prices": {
            f"{_name(chain_names, p.chain_id)}/{p.asset}": {
                "chain_id": p.chain_id,
                "contract": p.contract,
                "usd_per_unit": p.usd_per_unit,
                "decimals": p.decimals,
                "as_of": rfc3339(p.as_of),
            }
            for p in repository.rows(session, ReferencePrice)
        },
        "keys": {
            k.label: {
                "id": k.id,
                "algorithm": k.algorithm,
                "token": k.token,
                "key_id": k.key_id,
                "public_key": k.public_key,
                # Only when set: seals made before retirement existed stay equal to the rows.
                **({"retired_at": _moment(k.retired_at)} if k.retired_at else {}),
            }
            for k in keys
        },
        "wallets": {
            w.name: {
                "id": w.id,
                "chain_id": w.chain_id,
                "key_id": w.key_id,
                "key": _name(key_labels, w.key_id),
                "address": w.address,
                # Only when set (Bitcoin): the script its requests must spend is sealed too.
                **({"descriptor": w.descriptor} if w.descriptor is not None else {}),
            }
            for w in wallets
        },
        "clients": {
            c.id: {
                "name": c.name,
                "public_key_pem": c.public_key_pem,
                "role": c.role,
                "disabled_at": _moment(c.disabled_at),
            }
            for c in clients
        },
        "approvers": {
            a.id: {
                "name": a.name,
                "device_public_key": a.device_public_key,
                "disabled_at": _moment(a.disabled_at),
                "groups": sorted(groups.get(a.id, [])),
            }
            for a in approvers
        },
        "groups": {
            g.group: {"maker": bool(g.maker)}
            for g in repository.rows(session, ApproverGroupSettings)
        },
        "passkeys": {
            p.id: {
                "approver_id": p.approver_id,
                "public_key_sha256": hashlib.sha256(p.public_key).hexdigest(),
            }
            for p in passkeys
        },
        "policies": {
            str(v.id): {"digest": v.digest, "applied_at": rfc3339(v.applied_at)}
            for v in repository.applied_policies(session)
        },
    }
    return Document(sections)


def differences(sealed: Document, rows: Document, *, whole: bool) -> list[str]:
    """What the rows say that the sealed document does not: everything when `whole`, else the
    small sections whole and each scoped item against its sealed namesake."""
    if not whole:
        sealed = Document(
            {
                section: (
                    sealed.sections.get(section, {})
                    if section in WHOLE_SECTIONS
                    else {n: v for n, v in sealed.sections.get(section, {}).items() if n in items}
                )
                for section, items in rows.sections.items()
            }
        )
    return changes(sealed, rows)


def parse(canonical: bytes) -> Document:
    body = json.loads(canonical)
    if not isinstance(body, dict) or body.pop("type", None) != DOCUMENT_TYPE:
        raise ValueError("not a custody configuration document")
    return Document({name: dict(section) for name, section in body.items()})


def changes(before: Document | None, after: Document) -> list[str]:
    """What differs, one `section/name: added|changed|removed` per item, for people to read."""
    return [describe(*item) for item in changed_items(before, after)]


Item = dict[str, Any]


def changed_items(
    before: Document | None, after: Document
) -> Iterator[tuple[str, str, Item | None, Item | None]]:
    """Each item that differs, as (section, name, before, after); None where it is absent."""
    old = before.sections if before is not None else {}
    for section in sorted(set(old) | set(after.sections)):
        was, now = old.get(section, {}), after.sections.get(section, {})
        for name in sorted(set(was) | set(now)):
            if was.get(name) != now.get(name):
                yield section, name, was.get(name), now.get(name)


def describe(section: str, name: str, was: Item | None, now: Item | None) -> str:
    if was is None:
        return f"{section}/{name}: added"
    if now is None:
        return f"{section}/{name}: removed"
    fields = sorted(f for f in set(was) | set(now) if was.get(f) != now.get(f))
    return f"{section}/{name}: changed ({', '.join(fields)})"


def _name(names: dict[int, str], row_id: int) -> str:
    return names.get(row_id, f"#{row_id}")


def _moment(moment: datetime | None) -> str | None:
    return None if moment is None else rfc3339(moment)
