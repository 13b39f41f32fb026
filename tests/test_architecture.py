"""Architecture rules the import contracts cannot express (docs/architecture.md).

SQL lives in repositories: a module may build or run SQL only if it is a `repository.py`, a
foundation (store, ledger), or still on the list below of modules whose queries have not moved
yet. The list is a ratchet: a module that no longer holds SQL must leave it, and nothing new may
join it.
"""

from __future__ import annotations

import ast
from pathlib import Path

SOURCE = Path(__file__).resolve().parents[1] / "custody"
SQL_CALLS = frozenset({"select", "insert", "update", "delete", "text"})
# The database's own layer: engines, models, migrations, the append-only ledger and its tree.
FOUNDATIONS = ("store/", "ledger/")
NOT_YET_MOVED = frozenset(
    {
        "approvals/approvers.py",
        "approvals/policy_approvals.py",
        "catalog/assets.py",
        "catalog/chains.py",
        "catalog/venues.py",
        "clients/auth.py",
        "clients/service.py",
        "limits/usage.py",
        "policy_versions/governance.py",
        "policy_versions/service.py",
        "prices/places.py",
        "prices/service.py",
        "setup/demo.py",
        "web/detail.py",
        "web/enrolment.py",
        "web/maker.py",
        "web/passkeys.py",
        "web/sessions.py",
        "webhooks/service.py",
    }
)


def _holds_sql(path: Path) -> bool:
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Call):
            called = node.func
            if isinstance(called, ast.Name) and called.id in SQL_CALLS:
                return True
            if isinstance(called, ast.Attribute) and called.attr == "execute":
                return True
    return False


def _modules_with_sql() -> set[str]:
    found = set()
    for path in SOURCE.rglob("*.py"):
        relative = path.relative_to(SOURCE).as_posix()
        if path.name == "repository.py" or relative.startswith(FOUNDATIONS):
            continue
        if _holds_sql(path):
            found.add(relative)
    return found


def test_sql_lives_in_repositories() -> None:
    holding = _modules_with_sql()
    assert holding - NOT_YET_MOVED == set(), "move these queries into the package's repository.py"
    assert NOT_YET_MOVED - holding == set(), "these hold no SQL any more: take them off the list"


def test_the_flow_holds_no_sql() -> None:
    """Intake, the signer and request approvals read and write only through repositories."""
    flow = {m for m in _modules_with_sql() if m.startswith(("intake/", "signing/", "requests/"))}
    flow |= {m for m in _modules_with_sql() if m in {"approvals/service.py", "approvals/quorum.py"}}
    assert flow == set()
