"""The transcript of a ceremony: what was done, by whom, when, with which digests and ledger
entries, saved for custodians to sign off.

Each ceremony writes `CUSTODY_HOME/ceremonies/<UTC time>-<kind>.json` (sorted keys, two-space
indent) and the same as readable text beside it (`.txt`, ending with the JSON's SHA-256); a
backup also puts both into its folder. Then a `ceremony.transcript` ledger entry records the
JSON's SHA-256, so a printed transcript can be checked against the ledger by anyone, and each
custodian signs the paper (docs/ceremonies.md). A transcript never holds a share: it is built
from what the ceremony returned, never from the words.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from custody.ceremonies import repository
from custody.ledger import service as ledger
from custody.ledger.events import EventKind
from custody.ledger.service import rfc3339
from custody.runtime import Runtime
from custody.store.base import utcnow

FORMAT = "custody.ceremony_transcript.v1"
FOLDER = "ceremonies"


@dataclass
class Transcript:
    kind: str
    actor: str
    installation: str  # the ledger origin
    token: str
    started_at: datetime = field(default_factory=utcnow)
    steps: list[dict[str, Any]] = field(default_factory=list)

    def step(self, what: str, **detail: Any) -> None:
        self.steps.append({"time": rfc3339(utcnow()), "step": what, **detail})

    def body(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "ceremony": self.kind,
            "actor": self.actor,
            "installation": self.installation,
            "token": self.token,
            "started_at": rfc3339(self.started_at),
            "finished_at": rfc3339(utcnow()),
            "steps": self.steps,
        }


@dataclass(frozen=True)
class Saved:
    path: Path  # the JSON
    text_path: Path
    sha256: str
    ledger_index: int


def begin(runtime: Runtime, kind: str, actor: str) -> Transcript:
    return Transcript(kind, actor, runtime.settings.ledger_origin, runtime.token_label)


def recorded(runtime: Runtime, transcript: Transcript, kind: str, index: int) -> None:
    """A step for the ceremony's own ledger entry, with the governance approvals it names."""
    with runtime.db.read() as session:
        data = repository.entry_data(session, index)
    approvals = {k: data[k] for k in ("proposal", "approved_by") if k in data}
    transcript.step(f"ledger entry {kind} recorded", ledger_index=index, **approvals)


def save(runtime: Runtime, transcript: Transcript, *, also_in: Path | None = None) -> Saved:
    """Write the transcript (and its text form), then ledger its digest."""
    body = transcript.body()
    data = (json.dumps(body, indent=2, sort_keys=True, ensure_ascii=False) + "\n").encode()
    digest = hashlib.sha256(data).hexdigest()
    text = render_text(body, digest).encode()
    folder = runtime.settings.home / FOLDER
    folder.mkdir(mode=0o700, exist_ok=True)
    stem = f"{body['started_at'][:19].replace('-', '').replace(':', '')}Z-{transcript.kind}"
    path = _free(folder / f"{stem}.json")
    _write(path, data)
    _write(path.with_suffix(".txt"), text)
    if also_in is not None:
        _write(also_in / "transcript.json", data)
        _write(also_in / "transcript.txt", text)
    with runtime.db.write() as session:
        entry = ledger.append(
            session,
            EventKind.CEREMONY_TRANSCRIPT,
            transcript.actor,
            {"ceremony": transcript.kind, "file": path.name, "sha256": digest},
        )
    return Saved(path, path.with_suffix(".txt"), digest, entry.index)


def render_text(body: dict[str, Any], digest: str) -> str:
    """The readable form custodians print, read and sign."""
    lines = [
        f"custody key ceremony: {body['ceremony']}",
        f"installation {body['installation']}, token {body['token']}",
        f"run by {body['actor']}, {body['started_at']} to {body['finished_at']}",
        "",
    ]
    for number, step in enumerate(body["steps"], 1):
        details = {k: v for k, v in step.items() if k not in {"time", "step"}}
        lines.append(f"{number:>2}. {step['time']}  {step['step']}")
        lines += [f"      {k}: {_shown(v)}" for k, v in details.items()]
    lines += [
        "",
        f"transcript SHA-256 (of the .json file): {digest}",
        "the ledger's ceremony.transcript entry records the same digest",
        "",
        "signed off by (name, signature, date):",
        "",
        "______________________________________________",
        "",
    ]
    return "\n".join(lines)


def _shown(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, sort_keys=True)


def _free(path: Path) -> Path:
    """`path`, or with a counter when a ceremony of the same kind began in the same second."""
    candidate, number = path, 1
    while candidate.exists():
        number += 1
        candidate = path.with_name(f"{path.stem}-{number}{path.suffix}")
    return candidate


def _write(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
