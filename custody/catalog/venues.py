"""Trading venues: whose EIP-712 orders custody may sign, and how to read what an order trades.

A venue is a name, a chain, the verifying contract its orders name in their domain, and the
primary types it accepts, each with the message fields that say what the order sells, what it
buys and whom it pays (`venue_terms.py`). Anything a venue does not declare is refused at
intake, so trade policies judge what the decoder actually read from the order.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from custody.catalog.assets import checked_address
from custody.catalog.chains import chain_by_name
from custody.catalog.venue_terms import SPEC_HELP, OrderTerms, parse_primary_type
from custody.errors import AlreadyExists, NotFound
from custody.ledger import service as ledger
from custody.ledger.events import EventKind
from custody.names import InvalidName, validate_name
from custody.store.base import utcnow
from custody.store.models import Chain, Venue


@dataclass(frozen=True)
class VenueRow:
    name: str
    chain: str
    verifying_contract: str
    primary_types: dict[str, dict[str, str]]

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "chain": self.chain,
            "verifying_contract": self.verifying_contract,
            "primary_types": self.primary_types,
        }


def parse_declarations(primary_types: list[str]) -> dict[str, dict[str, str]]:
    """`--primary-type` specs as stored: {"Order": {"sell_token": "sellToken", ...}}."""
    if not primary_types:
        raise InvalidName(f"a venue needs at least one --primary-type {SPEC_HELP}")
    declared: dict[str, dict[str, str]] = {}
    for spec in primary_types:
        type_name, terms = parse_primary_type(spec)
        if type_name in declared:
            raise InvalidName(f"primary type {type_name} is declared twice")
        declared[type_name] = terms.as_dict()
    return declared


def add_venue(
    session: Session,
    *,
    name: str,
    chain_name: str,
    verifying_contract: str,
    primary_types: list[str],
    actor: str,
) -> VenueRow:
    validate_name("venue", name)
    contract = checked_address(verifying_contract, "verifying contract")
    chain = chain_by_name(session, chain_name)
    declared = parse_declarations(primary_types)
    if find_venue(session, name) is not None:
        raise AlreadyExists(f"venue {name!r} already exists")
    venue = Venue(
        name=name,
        chain_id=chain.id,
        verifying_contract=contract,
        primary_types=json.dumps(declared, sort_keys=True),
        created_at=utcnow(),
    )
    session.add(venue)
    session.flush()
    row = VenueRow(name, chain.name, contract, declared)
    ledger.append(session, EventKind.VENUE_ADDED, actor, row.as_dict())
    return row


def set_primary_types(
    session: Session, *, name: str, primary_types: list[str], actor: str
) -> VenueRow:
    """Declare a venue's order types anew (all of them), e.g. a first-version declaration."""
    declared = parse_declarations(primary_types)
    venue = find_venue(session, name)
    if venue is None:
        raise NotFound(f"unknown venue {name!r} (see `custody venues list`)")
    venue.primary_types = json.dumps(declared, sort_keys=True)
    session.flush()
    chain = session.get_one(Chain, venue.chain_id)
    row = VenueRow(name, chain.name, venue.verifying_contract, declared)
    ledger.append(session, EventKind.VENUE_TYPES_SET, actor, row.as_dict())
    return row


def list_venues(session: Session) -> list[VenueRow]:
    rows = session.execute(
        select(Venue, Chain).join(Chain, Chain.id == Venue.chain_id).order_by(Venue.name)
    )
    return [
        VenueRow(v.name, c.name, v.verifying_contract, json.loads(v.primary_types)) for v, c in rows
    ]


def find_venue(session: Session, name: str) -> Venue | None:
    return session.execute(select(Venue).where(Venue.name == name)).scalar_one_or_none()


def declared_types(venue: Venue) -> dict[str, OrderTerms | None]:
    """Each declared primary type's terms; None for a first-version (notional) declaration."""
    loaded: dict[str, dict[str, str]] = json.loads(venue.primary_types)
    return {name: OrderTerms.from_stored(stored) for name, stored in loaded.items()}
