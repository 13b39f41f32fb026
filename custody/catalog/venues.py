"""Trading venues: whose EIP-712 orders custody may sign, and how to read an order's notional.

A venue is a name, a chain, the verifying contract its orders name in their domain, and the
primary types it accepts, each with the message field that holds the order's notional and the
asset that field is denominated in. Anything a venue does not declare is refused at intake, so
a trade policy can cap notionals that the decoder actually read.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from custody.catalog.assets import checked_address, decimals_on_chain, validate_symbol
from custody.catalog.chains import chain_by_name
from custody.errors import AlreadyExists
from custody.ledger import service as ledger
from custody.ledger.events import EventKind
from custody.names import InvalidName, validate_name
from custody.store.base import utcnow
from custody.store.models import Chain, Venue

_IDENTIFIER = re.compile(r"[A-Za-z_$][A-Za-z0-9_$]*")
_SPEC_HELP = "like Order:notional_field=makerAmount:asset=USDC"


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


def parse_primary_type(spec: str) -> tuple[str, dict[str, str]]:
    """`Order:notional_field=makerAmount:asset=USDC` -> ("Order", {notional_field, asset})."""
    name, *parts = spec.split(":")
    if not _IDENTIFIER.fullmatch(name):
        raise InvalidName(f"primary type {spec!r}: {name!r} is not an EIP-712 type name")
    options: dict[str, str] = {}
    for part in parts:
        key, sep, value = part.partition("=")
        if not sep or key not in ("notional_field", "asset") or key in options:
            raise InvalidName(f"primary type {spec!r} must read {_SPEC_HELP}")
        options[key] = value
    if set(options) != {"notional_field", "asset"}:
        raise InvalidName(f"primary type {spec!r} must name notional_field and asset, {_SPEC_HELP}")
    if not _IDENTIFIER.fullmatch(options["notional_field"]):
        raise InvalidName(f"primary type {spec!r}: notional_field is not a field name")
    validate_symbol(options["asset"])
    return name, {"notional_field": options["notional_field"], "asset": options["asset"]}


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
    if not primary_types:
        raise InvalidName(f"a venue needs at least one --primary-type {_SPEC_HELP}")
    declared: dict[str, dict[str, str]] = {}
    for spec in primary_types:
        type_name, options = parse_primary_type(spec)
        if type_name in declared:
            raise InvalidName(f"primary type {type_name} is declared twice")
        if decimals_on_chain(session, chain, options["asset"]) is None:
            # A notional in an unknown asset could not be capped by any amount rule.
            raise InvalidName(
                f"asset {options['asset']} is not known on chain {chain.name} "
                "(see `custody assets add`)"
            )
        declared[type_name] = options
    if session.execute(select(Venue).where(Venue.name == name)).scalar_one_or_none() is not None:
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


def list_venues(session: Session) -> list[VenueRow]:
    rows = session.execute(
        select(Venue, Chain).join(Chain, Chain.id == Venue.chain_id).order_by(Venue.name)
    )
    return [
        VenueRow(v.name, c.name, v.verifying_contract, json.loads(v.primary_types)) for v, c in rows
    ]


def find_venue(session: Session, name: str) -> Venue | None:
    return session.execute(select(Venue).where(Venue.name == name)).scalar_one_or_none()


def declared_types(venue: Venue) -> dict[str, dict[str, str]]:
    loaded: dict[str, dict[str, str]] = json.loads(venue.primary_types)
    return loaded
