"""One writer of request status: the table, the database trigger built from it, the guard."""

from __future__ import annotations

import ast
import secrets
from pathlib import Path

import pytest
from sqlalchemy import insert, text, update
from sqlalchemy.exc import DBAPIError

from custody.requests.states import ALL, INITIAL, TERMINAL, TRAITS, TRANSITIONS, RequestStatus
from custody.store.base import utcnow
from custody.store.models import Request
from tests.support.installation import Installation

SOURCE = Path(__file__).resolve().parents[2] / "custody"
# Rows of other tables that happen to have a `status` column (webhook deliveries).
OTHER_STATUS_OWNERS = {"webhooks/deliverer.py", "webhooks/service.py"}


def test_table_covers_every_state_and_terminal_states_have_no_exit() -> None:
    assert set(TRANSITIONS) == set(RequestStatus) == set(TRAITS) == set(ALL)
    for status in TERMINAL:
        assert TRANSITIONS[status] == frozenset(), status
    for status in set(RequestStatus) - TERMINAL:
        assert TRANSITIONS[status], f"{status} can never end"
    assert set(RequestStatus) >= INITIAL
    # Every state is reachable from some initial state.
    reached, frontier = set(INITIAL), list(INITIAL)
    while frontier:
        for target in TRANSITIONS[frontier.pop()]:
            if target not in reached:
                reached.add(target)
                frontier.append(target)
    assert reached == set(RequestStatus)


def test_no_module_but_the_lifecycle_assigns_a_status() -> None:
    offenders = []
    for path in SOURCE.rglob("*.py"):
        relative = path.relative_to(SOURCE).as_posix()
        if relative == "requests/lifecycle.py" or relative in OTHER_STATUS_OWNERS:
            continue
        for node in ast.walk(ast.parse(path.read_text(), relative)):
            targets: list[ast.expr] = []
            if isinstance(node, ast.Assign):
                targets = node.targets
            elif isinstance(node, ast.AugAssign | ast.AnnAssign):
                targets = [node.target]
            offenders += [
                f"{relative}:{node.lineno}"
                for t in targets
                # `self.status` is an error's HTTP status; Request has no methods that write.
                if isinstance(t, ast.Attribute)
                and t.attr == "status"
                and not (isinstance(t.value, ast.Name) and t.value.id == "self")
            ]
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Name)
                and node.func.id == "Request"
                and any(k.arg == "status" for k in node.keywords)
            ):
                offenders.append(f"{relative}:{node.lineno}")
    assert offenders == []


def test_orm_refuses_a_status_written_outside_the_lifecycle() -> None:
    request = Request(id="req_guard")
    with pytest.raises(RuntimeError, match=r"custody\.requests\.lifecycle"):
        request.status = "signed"


def _request_row(installation: Installation, status: RequestStatus) -> str:
    """A row inserted directly (the trigger watches updates only), in any status."""
    client = installation.client()
    wallet = installation.wallet()
    request_id = "req_" + secrets.token_hex(12)
    now = utcnow()
    with installation.runtime.db.write() as session:
        wallet_id = session.execute(
            text("SELECT id FROM wallets WHERE name = :n"), {"n": wallet.name}
        ).scalar_one()
        session.execute(
            insert(Request).values(
                id=request_id,
                client_id=client.id,
                idempotency_key=request_id,
                body_hash="0" * 64,
                type="withdrawal",
                wallet_id=wallet_id,
                asset="ETH",
                amount="1",
                status=status.value,
                payload="{}",
                digest="0x" + "0" * 64,
                summary="",
                policy_decision="{}",
                first_response="{}",
                signing_attempts=0,
                created_at=now,
                updated_at=now,
            )
        )
    return request_id


def test_database_refuses_every_transition_the_table_does_not_allow(
    own_installation: Installation,
) -> None:
    """The trigger of migration 0006 and the table in custody/requests/states.py agree: a
    change to the table without a migration fails here."""
    installation = own_installation
    for current in RequestStatus:
        request_id = _request_row(installation, current)
        for target in RequestStatus:
            allowed = target == current or target in TRANSITIONS[current]
            assert _database_moves(installation, request_id, target) == allowed, (
                f"{current.value} -> {target.value}"
            )


def _database_moves(installation: Installation, request_id: str, target: RequestStatus) -> bool:
    """Whether the database accepts this status; never keeps it either way."""
    try:
        with installation.runtime.db.write() as session:
            session.execute(
                update(Request).where(Request.id == request_id).values(status=target.value)
            )
            raise _Undo  # so that the next target starts from the same status again
    except _Undo:
        return True
    except DBAPIError as exc:
        if "lifecycle table" not in str(exc):
            raise
        return False


class _Undo(Exception):
    pass


def test_architecture_page_shows_the_table_as_it_is() -> None:
    page = (SOURCE.parent / "docs" / "architecture.md").read_text()
    table = page.split("<!-- transitions:start -->")[1].split("<!-- transitions:end -->")[0]
    shown: dict[str, set[str]] = {}
    for line in table.strip().splitlines()[2:]:
        source, targets = (cell.strip() for cell in line.strip("|").split("|"))
        shown[source.strip("`")] = {t.strip().strip("`") for t in targets.split(",")}
    assert shown.pop("(new)") == {s.value for s in INITIAL}
    expected = {
        s.value: ({t.value for t in TRANSITIONS[s]} or {"(terminal)"}) for s in RequestStatus
    }
    assert shown == expected
