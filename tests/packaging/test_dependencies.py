"""Every third-party package custody imports is declared in pyproject.toml: a package that only
arrives as another dependency's dependency can disappear with that dependency's next release."""

from __future__ import annotations

import ast
import re
import sys
import tomllib
from importlib import metadata
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def declared() -> set[str]:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    return {
        _canonical(re.split(r"[\[<>=!~; ]", spec, maxsplit=1)[0])
        for spec in project["dependencies"]
    }


def imported_roots() -> set[str]:
    roots: set[str] = set()
    for path in (REPO / "custody").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                roots |= {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                roots.add(node.module.split(".")[0])
    return roots - set(sys.stdlib_module_names) - {"custody", "__future__"}


def test_every_imported_package_is_declared() -> None:
    providers = metadata.packages_distributions()
    names = declared()
    undeclared = {
        root: providers.get(root, ["(no installed distribution)"])
        for root in imported_roots()
        if not names & {_canonical(dist) for dist in providers.get(root, [])}
    }
    assert not undeclared, f"imported by custody/ but not in pyproject dependencies: {undeclared}"


def test_the_check_sees_imports_of_undeclared_packages() -> None:
    # The packages issue 14 found undeclared: the check must see them being imported.
    assert {"click", "starlette", "rlp", "hexbytes", "eth_keys"} <= imported_roots()
