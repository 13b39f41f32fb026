"""`custody freeze`, `custody unfreeze` and `custody freezes`: stop signing in one step.

    custody freeze [--wallet W] --reason TEXT        all signing, or one wallet's
    custody unfreeze [--wallet W | --freeze ID] --reason TEXT
    custody freezes [--all]                           what is frozen (with --all: lifted too)

`unfreeze` lifts every active freeze of the scope it names (or the one freeze given by id): at
once, or, when the active policy has `governance`, once that quorum has signed the lift.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Annotated, Any

import typer

from custody.cli import context
from custody.cli.output import JsonOption, emit, table

if TYPE_CHECKING:
    from custody.freezes.schemas import UnfreezeView

WalletOption = Annotated[
    str | None,
    typer.Option("--wallet", help="Only this wallet (default: the whole installation)."),
]
ReasonOption = Annotated[str, typer.Option("--reason", help="Why, in words (kept in the ledger).")]


def freeze(reason: ReasonOption, wallet: WalletOption = None, as_json: JsonOption = False) -> None:
    """Stop signing: nothing is signed for the scope until it is unfrozen; requests wait."""
    from custody.freezes import service, views

    with context.runtime() as rt, rt.db.write() as session:
        row, new = service.freeze_named(
            session, wallet=wallet, reason=reason, actor=context.operator(), source="operator"
        )
        (view,) = views.freeze_views(session, [row])
    scope = service.describe_scope(view.wallet)
    human = (
        f"{scope} frozen (freeze {view.id}): {view.reason}"
        if new
        else f"{scope} is already frozen for that reason (freeze {view.id}); nothing changed"
    )
    emit(view.model_dump(mode="json") | {"new": new}, as_json=as_json, human=human)


def unfreeze(
    reason: ReasonOption,
    wallet: WalletOption = None,
    freeze_id: Annotated[
        int | None, typer.Option("--freeze", help="Lift only this freeze (see custody freezes).")
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Lift freezes: at once, or under governance once its quorum has signed the lift."""
    from custody.freezes import service, unfreezes, views

    with context.runtime() as rt:
        with rt.db.write() as session:
            outcome = unfreezes.unfreeze(
                session,
                wallet=wallet,
                freeze_id=freeze_id,
                reason=reason,
                actor=context.operator(),
            )
            lifted = views.freeze_views(session, outcome.lifted)
            pending = [views.unfreeze_view(session, row) for row in outcome.pending]
            frozen = [row.freeze_id for row in outcome.pending]
        if lifted:
            rt.notify_signer()  # what waited for the freeze is signed now, not at the next poll
    data: dict[str, Any] = {
        "lifted": [v.model_dump(mode="json") for v in lifted],
        "pending": [
            {"freeze": freeze, **view.model_dump(mode="json")}
            for freeze, view in zip(frozen, pending, strict=True)
        ],
    }
    lines = [f"lifted freeze {v.id} ({service.describe_scope(v.wallet)})" for v in lifted]
    for freeze, view in zip(frozen, pending, strict=True):
        needs = ", ".join(f"{q.count} from {q.group}" for q in view.required_approvals)
        template = json.dumps(view.statement | {"decision": "approve", "approver": "<name>"})
        lines.append(
            f"freeze {freeze}: unfreeze {view.id} waits for the governance quorum ({needs}). "
            f"Each approver signs with their device key the RFC 8785 JSON of {template} "
            f'and posts {{"approver", "decision", "signature"}} to '
            f"POST /v1/freezes/{freeze}/approvals"
        )
    emit(data, as_json=as_json, human="\n".join(lines))


def list_freezes(
    show_all: Annotated[
        bool, typer.Option("--all", help="Lifted freezes too (the newest 200).")
    ] = False,
    as_json: JsonOption = False,
) -> None:
    """What is frozen now, and lifts waiting for their quorum."""
    from custody.freezes import repository, views

    with context.runtime() as rt, rt.db.read() as session:
        rows = repository.recent(session, 200) if show_all else repository.active(session)
        shown = views.freeze_views(session, rows)
    if as_json:
        emit([v.model_dump(mode="json") for v in shown], as_json=True)
        return
    table(
        [
            {
                "id": v.id,
                "scope": v.wallet or "installation",
                "reason": v.reason,
                "source": v.source,
                "since": v.created_at,
                "lifted": v.lifted_at or "",
                "unfreeze": _pending(v.unfreeze) if v.unfreeze else "",
            }
            for v in shown
        ],
        ["id", "scope", "reason", "source", "since", "lifted", "unfreeze"],
        as_json=False,
        empty="nothing is frozen",
    )


def _pending(view: UnfreezeView) -> str:
    approvals = sum(1 for d in view.decisions if d.decision == "approve")
    return f"{view.id}: {approvals} approval(s) so far"
