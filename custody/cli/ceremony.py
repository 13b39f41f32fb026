"""`custody ceremony`: back keys up under SLIP-39 shares, verify a backup, restore it (each
saving a transcript; under governance only once proposed and approved: ceremony_proposals.py).

The script custodians follow is docs/ceremonies.md. Shares appear only on a terminal, one
custodian at a time (or with --json, for automation), and are read back from a terminal or
standard input: never from arguments, files of custody's or the ledger.
"""

from __future__ import annotations

import secrets
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import click
import typer

from custody.ceremonies import transcript
from custody.cli import ceremony_proposals, context, quorum
from custody.cli.output import JsonOption, console, emit
from custody.errors import CustodyError

if TYPE_CHECKING:
    from custody.ceremonies.backup import Made
    from custody.ceremonies.transcript import Saved, Transcript
    from custody.runtime import Runtime

app = typer.Typer(
    help="Key ceremonies: backup, verify, restore; under governance, propose and approve them.",
    no_args_is_help=True,
)
app.add_typer(ceremony_proposals.propose_app, name="propose")
app.command("approve")(ceremony_proposals.approve)
app.command("proposals")(ceremony_proposals.proposals)

_COLUMNS = 3


class VerificationFailed(CustodyError):
    status = 422
    title = "Backup verification failed"
    slug = "backup-verification-failed"


@app.command("backup")
def backup(  # noqa: PLR0917  (Typer maps each parameter to one command-line option)
    directory: Annotated[Path, typer.Argument(help="A new (or empty) folder for the backup.")],
    shares: Annotated[int, typer.Option("--shares", help="N: how many shares (1-16).")],
    threshold: Annotated[
        int, typer.Option("--threshold", help="M: how many shares restore the keys.")
    ],
    custodian: Annotated[
        list[str] | None,
        typer.Option("--custodian", help="Who holds share 1, 2, … (once per share, in order)."),
    ] = None,
    cards: Annotated[
        bool,
        typer.Option(
            "--cards",
            help="Show each share as a printable card (boxed: custodian, share i of N, "
            "threshold, installation, date, numbered words); never written to disk.",
        ),
    ] = False,
    as_json: JsonOption = False,
) -> None:
    """Wrap every backup-able key under a new KEK and split the KEK into N shares, M of which
    restore; a ledger entry records the manifest's digest (never a share)."""
    from custody.ceremonies.backup import Plan, back_up
    from custody.ceremonies.errors import CeremonyRefused

    interactive = not as_json and sys.stdin.isatty() and sys.stdout.isatty()
    if not as_json and not interactive:
        raise CeremonyRefused(
            "shares are shown on a terminal, one custodian at a time (or printed with --json "
            "for automation): refusing to write them into a pipe or file"
        )
    names = list(custodian or [])
    if interactive and not names:
        # Refuse what can be refused before asking anyone for a name.
        Plan.make(directory.absolute(), shares=shares, threshold=threshold, custodians=[])
        names = [
            str(typer.prompt(f"Name of the custodian who will hold share {number} of {shares}"))
            for number in range(1, shares + 1)
        ]
    plan = Plan.make(directory.absolute(), shares=shares, threshold=threshold, custodians=names)
    with context.runtime() as rt:
        authorise = quorum.required(rt, "backup", plan.subject())
        record = transcript.begin(rt, "backup", context.operator())
        made = back_up(rt, plan, context.operator(), authorise)
        try:
            saved: Saved | str = _backup_transcript(rt, record, made)
        except (OSError, CustodyError) as exc:
            # The backup is made and recorded: its shares must still reach the custodians.
            saved = f"the transcript could not be saved ({exc}); the ledger holds the backup"
    if as_json:
        transcript_data = _saved(saved) if not isinstance(saved, str) else {"transcript": None}
        emit(_backup_data(made) | transcript_data | {"shares": made.shares}, as_json=True)
        return
    console.print(
        saved if isinstance(saved, str) else _saved_line(saved), highlight=False, markup=False
    )
    _hand_out(made, cards=cards)


@app.command("verify")
def verify(
    directory: Annotated[Path, typer.Argument(help="A backup folder.")],
    as_json: JsonOption = False,
) -> None:
    """Check a backup folder without shares: manifest, blob digests, the ledger's record of it,
    and that it holds every backup-able key and wallet of this installation."""
    from custody.ceremonies.verify import verify as verify_backup

    with context.runtime() as rt:
        record = transcript.begin(rt, "verify", context.operator())
        report = verify_backup(rt, directory.absolute())
        record.step(
            "backup folder checked without shares",
            directory=str(report.directory),
            manifest_sha256=report.manifest_sha256,
            recorded_by_ledger_entry=report.ledger_index,
            keys=report.keys,
            wallets=report.wallets,
            problems=report.problems,
            whole=report.ok,
        )
        saved = transcript.save(rt, record)
    data = {
        "ok": report.ok,
        "directory": str(report.directory),
        "manifest_sha256": report.manifest_sha256,
        "ledger_index": report.ledger_index,
        "keys": report.keys,
        "wallets": report.wallets,
        "problems": report.problems,
    } | _saved(saved)
    if as_json:
        emit(data, as_json=True)
    elif report.ok:
        console.print(
            f"backup {report.directory} is whole: {len(report.keys)} keys, "
            f"{len(report.wallets)} wallets, manifest {report.manifest_sha256} "
            f"(ledger entry {report.ledger_index})",
            highlight=False,
        )
    else:
        for problem in report.problems:
            console.print(f"problem: {problem}", highlight=False, markup=False)
    if not as_json:
        _print_saved(saved)
    if not report.ok:
        raise typer.Exit(1)


@app.command("restore")
def restore(
    directory: Annotated[Path, typer.Argument(help="A backup folder.")],
    token: Annotated[
        str | None,
        typer.Option(
            "--token", help="The token to restore into, by name or label (default: the main one)."
        ),
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Rebuild the KEK from M shares (standard input, one a line, or prompted on a terminal),
    unwrap every key into the token and register its wallets; all or nothing."""
    from custody.ceremonies.manifest import open_folder
    from custody.ceremonies.restore import restore as restore_backup
    from custody.ceremonies.restore import subject
    from custody.runtime import resolve_token

    backup = open_folder(directory.absolute())  # a damaged folder is refused before any share
    threshold = backup.manifest.shares.threshold
    with context.runtime() as rt:
        label = resolve_token(rt.settings, token)  # an unknown token: one line, before shares
        authorise = quorum.required(rt, "restore", subject(backup, label))
        record = transcript.begin(rt, "restore", context.operator())
        record.step(
            "backup folder read and checked",
            directory=str(backup.directory),
            manifest_sha256=backup.sha256,
            backup_created_at=backup.manifest.created_at,
            source=backup.manifest.source.model_dump(mode="json"),
        )
        shares = _prompt_shares(threshold) if sys.stdin.isatty() else _read_shares()
        done = restore_backup(rt, backup, shares, context.operator(), authorise, token=label)
        record.step(
            "KEK rebuilt from the shares and checked; keys unwrapped, each checked by a signature",
            shares_used=done.shares_used,
            keys={k.label: k.public_key.hex() for k in done.keys},
        )
        transcript.recorded(rt, record, "ceremony.restore", done.ledger_index)
        record.step("wallets registered", wallets=done.wallets, not_recreated=done.not_recreated)
        saved = transcript.save(rt, record)
    data: dict[str, Any] = {
        "manifest_sha256": done.manifest_sha256,
        "ledger_index": done.ledger_index,
        "token": done.token,
        "shares_used": done.shares_used,
        "keys": [
            {"label": k.label, "algorithm": str(k.algorithm), "public_key": k.public_key.hex()}
            for k in done.keys
        ],
        "wallets": done.wallets,
        "wallets_not_recreated": done.not_recreated,
    } | _saved(saved)
    lines = [
        f"restored {len(done.keys)} keys into token {done.token} from backup "
        f"{done.manifest_sha256} (shares {', '.join(map(str, done.shares_used))}; "
        f"ledger entry {done.ledger_index})"
    ]
    lines += [f"  wallet {w['name']} on {w['chain']}: {w['address']}" for w in done.wallets]
    lines += [
        f"  not re-created: wallet {w['name']}: {w['reason']}"
        if w["name"]
        else f"  not re-created: {w['reason']}"
        for w in done.not_recreated
    ]
    lines.append(_saved_line(saved))
    emit(data, as_json=as_json, human="\n".join(lines))


def _backup_transcript(rt: Runtime, record: Transcript, made: Made) -> Saved:
    """Steps from what the backup returned: never a share."""
    manifest = made.manifest
    record.step(
        "keys wrapped under a new KEK (AES-256, in memory only); each blob unwrapped again in "
        "the token and checked by a signature",
        keys={key.label: key.public_key for key in manifest.keys},
        not_included=[n.label for n in manifest.not_included],
        kek_check_value=manifest.kek.check_value,
    )
    record.step(
        "backup folder written",
        directory=str(made.directory),
        manifest_sha256=made.manifest_sha256,
        blobs={key.blob: key.blob_sha256 for key in manifest.keys},
    )
    transcript.recorded(rt, record, "ceremony.backup", made.ledger_index)
    record.step(
        f"KEK split into {manifest.shares.count} SLIP-39 shares, any "
        f"{manifest.shares.threshold} restore; each shown only to its custodian",
        slip39_identifier=manifest.shares.identifier,
        custodians={str(c.share): c.name for c in manifest.custodians},
    )
    return transcript.save(rt, record, also_in=made.directory)


def _saved(saved: Saved) -> dict[str, Any]:
    return {
        "transcript": {
            "path": str(saved.path),
            "text": str(saved.text_path),
            "sha256": saved.sha256,
            "ledger_index": saved.ledger_index,
        }
    }


def _saved_line(saved: Saved) -> str:
    return (
        f"transcript {saved.path} (and .txt; SHA-256 {saved.sha256}, "
        f"ledger entry {saved.ledger_index})"
    )


def _print_saved(saved: Saved) -> None:
    console.print(_saved_line(saved), highlight=False, markup=False)


def _backup_data(made: Made) -> dict[str, Any]:
    manifest = made.manifest
    return {
        "directory": str(made.directory),
        "manifest_sha256": made.manifest_sha256,
        "ledger_index": made.ledger_index,
        "threshold": manifest.shares.threshold,
        "custodians": [c.name for c in manifest.custodians],
        "keys": [
            {
                "label": key.label,
                "algorithm": key.algorithm,
                "public_key": key.public_key,
                "wallets": [w.model_dump(mode="json") for w in key.wallets],
            }
            for key in manifest.keys
        ],
        "not_included": [n.model_dump(mode="json") for n in manifest.not_included],
        "bitcoin_wallets": [w.model_dump(mode="json") for w in manifest.bitcoin_wallets or ()],
    }


def _hand_out(made: Made, *, cards: bool) -> None:
    """One custodian at a time: name, share number, the words, a check that they were written
    down, and a cleared screen before the next custodian steps up."""
    manifest = made.manifest
    count, needed = manifest.shares.count, manifest.shares.threshold
    console.print(
        f"backup written to {made.directory}: {len(manifest.keys)} keys, manifest "
        f"{made.manifest_sha256} (ledger entry {made.ledger_index}).\n"
        f"Each custodian now receives one share, alone at the screen. Any {needed} of the "
        f"{count} shares restore the keys; fewer reveal nothing.",
        highlight=False,
    )
    for custodian, words in zip(manifest.custodians, made.shares, strict=True):
        name = custodian.name or f"custodian {custodian.share}"
        click.prompt(
            f"\n{name}: step up to the screen alone, then press Enter",
            default="",
            show_default=False,
            prompt_suffix="",
        )
        console.clear()
        if cards:
            console.print(
                share_card(made, custodian.share, name, words.split()),
                highlight=False,
                markup=False,
            )
            console.print(
                "Print this screen for the custodian (or copy it onto their card), then "
                "check the paper:",
                highlight=False,
            )
        else:
            console.print(
                f"[bold]Share {custodian.share} of {count}[/bold] for [bold]{name}[/bold] "
                f"(any {needed} restore). Write the words down in order, on paper:\n",
                highlight=False,
            )
            console.print(_word_grid(words.split()), highlight=False, markup=False)
        _confirm_written(words.split())
        console.clear()
    console.print(
        "every share handed out; nothing of them was stored. Keep the backup folder "
        f"({made.directory}) apart from the shares (docs/ceremonies.md).",
        highlight=False,
    )


def share_card(made: Made, number: int, name: str, words: list[str]) -> str:
    """One custodian's share as a boxed card, for the screen only (printed from there)."""
    manifest = made.manifest
    inner = [
        "CUSTODY KEY BACKUP - SHARE CARD (SLIP-39)",
        "",
        f"Custodian:     {name}",
        f"Share:         {number} of {manifest.shares.count}",
        f"Threshold:     any {manifest.shares.threshold} shares restore the keys",
        f"Installation:  {manifest.source.ledger_origin}",
        f"Date:          {manifest.created_at[:10]}",
        f"Backup:        manifest {made.manifest_sha256[:16]}",
        "",
        *_word_grid(words).splitlines(),
        "",
        "Keep this card apart from the backup folder. Never photograph or type it.",
    ]
    width = max(len(line) for line in inner)
    top, bottom = "+" + "-" * (width + 4) + "+", "+" + "-" * (width + 4) + "+"
    return "\n".join([top, *(f"|  {line:<{width}}  |" for line in inner), bottom])


def _word_grid(words: list[str]) -> str:
    rows = -(-len(words) // _COLUMNS)
    lines = []
    for row in range(rows):
        cells = [f"{index + 1:>2}. {words[index]:<10}" for index in range(row, len(words), rows)]
        lines.append("   ".join(cells))
    return "\n".join(lines)


def _confirm_written(words: list[str]) -> None:
    """Two words at random positions, typed back from the paper (hidden), until both match."""
    first, second = sorted(secrets.SystemRandom().sample(range(1, len(words) + 1), 2))
    while True:
        typed = [
            str(click.prompt(f"From your paper, word {n}", hide_input=True)).strip().lower()
            for n in (first, second)
        ]
        if typed == [words[first - 1], words[second - 1]]:
            return
        console.print("that is not what the share says: check the paper and try again")


def _read_shares() -> list[str]:
    return [line.strip() for line in sys.stdin.read().splitlines() if line.strip()]


def _prompt_shares(threshold: int) -> list[str]:
    """On a terminal: each custodian types a share (hidden); a share whose checksum fails is
    asked for again."""
    from custody.ceremonies.errors import SharesInvalid
    from custody.ceremonies.kek import read_share

    shares: list[str] = []
    while len(shares) < threshold:
        position = len(shares) + 1
        text = str(click.prompt(f"Share {position} of {threshold}", hide_input=True))
        try:
            read_share(text, position)
        except SharesInvalid as exc:
            console.print(exc.message, highlight=False, markup=False)
            continue
        shares.append(text)
    return shares
