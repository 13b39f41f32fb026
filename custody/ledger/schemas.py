"""What auditors read over HTTP: entries, RFC 9162 proofs and the checkpoint key."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import ConfigDict, Field

from custody.jsonshape import JsonModel

Sha256Hex = Annotated[str, Field(pattern=r"^[0-9a-f]{64}$", description="lower-case hex")]


class LedgerEntryBody(JsonModel):
    """One entry as stored; its RFC 8785 canonical bytes are the Merkle leaf."""

    # Entries are immutable and outlive this code: keys a later version adds pass through.
    model_config = ConfigDict(extra="allow")

    actor: str
    data: dict[str, Any]
    index: int
    kind: str = Field(description="e.g. request.created, policy.evaluated, request.signed")
    time: str = Field(json_schema_extra={"format": "date-time"})


class LedgerEntryView(JsonModel):
    index: int
    entry: LedgerEntryBody
    leaf_hash: Sha256Hex


class LedgerEntries(JsonModel):
    entries: list[LedgerEntryView]


class InclusionProof(JsonModel):
    index: int
    tree_size: int
    leaf_hash: Sha256Hex
    root_hash: Sha256Hex
    proof: list[str] = Field(description="RFC 9162 §2.1.3 audit path, hex node hashes")


class ConsistencyProof(JsonModel):
    model_config = ConfigDict(validate_by_name=True, serialize_by_alias=True)

    from_size: int = Field(alias="from")
    to_size: int = Field(alias="to")
    old_root_hash: Sha256Hex
    new_root_hash: Sha256Hex
    proof: list[str] = Field(description="RFC 9162 §2.1.4 consistency proof, hex node hashes")


class LedgerKey(JsonModel):
    verifier_key: str = Field(description="note verifier key: <name>+<hex key id>+<base64 key>")
    origin: str
    algorithm: Literal["ed25519"]
    public_key: str = Field(description="hex")
