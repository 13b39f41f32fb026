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


# Modules that may import the packages of an optional extra, and which extra: custody runs
# without them (the import-linter contract `optional-tracing` keeps every other module off them).
OPTIONAL_MODULES = {"tracing/otel.py": "otel"}


def declared(extra: str | None = None) -> set[str]:
    """The required dependencies, or (`extra`) those of that optional extra."""
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    specs = project["dependencies"] if extra is None else project["optional-dependencies"][extra]
    return {_canonical(re.split(r"[\[<>=!~; ]", spec, maxsplit=1)[0]) for spec in specs}


def _sources(optional: bool) -> list[Path]:
    """custody's modules, but those of OPTIONAL_MODULES; or (`optional`) only those."""
    paths = sorted((REPO / "custody").rglob("*.py"))
    return [
        path
        for path in paths
        if (path.relative_to(REPO / "custody").as_posix() in OPTIONAL_MODULES) == optional
    ]


def imported_roots(paths: list[Path] | None = None) -> set[str]:
    roots: set[str] = set()
    for path in _sources(optional=False) if paths is None else paths:
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


def test_optional_modules_import_only_their_extra() -> None:
    """tracing/otel.py imports OpenTelemetry, declared in the `otel` extra (and nothing that is
    neither there nor required)."""
    providers = metadata.packages_distributions()
    for module, extra in OPTIONAL_MODULES.items():
        names = declared() | declared(extra)
        roots = imported_roots([REPO / "custody" / module])
        assert "opentelemetry" in roots
        undeclared = {
            root: providers.get(root, ["(no installed distribution)"])
            for root in roots
            if not names & {_canonical(dist) for dist in providers.get(root, [])}
        }
        assert not undeclared, f"{module} imports what its extra {extra!r} lacks: {undeclared}"


def test_no_other_module_imports_an_optional_package() -> None:
    """custody imports and runs without the extras: only OPTIONAL_MODULES import them."""
    assert "opentelemetry" not in imported_roots()


def test_dev_installs_every_optional_extra() -> None:
    """The tests of an optional module run its packages: `pip install -e '.[dev]'` brings them."""
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    extras = project["optional-dependencies"]
    for extra in set(OPTIONAL_MODULES.values()):
        assert set(extras[extra]) <= set(extras["dev"]), extra
