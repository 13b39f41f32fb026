"""How pytest-xdist hands the tests to its workers: `--dist load`, except that a module with
fixtures of module scope goes to one worker in one piece.

Under `load` every worker that got one of such a module's tests made its module fixtures again:
a `custody serve` tree, a home of its own made by `custody` processes, an installation from the
wheel (10-60 s each on the 2-core machines). Here the tests of such a module that pytest runs one
after another (its collection order: parametrised session fixtures, such as the installation of
each backend, split a module into runs) are one unit of work, which one worker runs in order; any
other test is a unit of its own, as under `load`. Units go out in collection order, so a worker
switches between the backends' installations no more often than under `load`.

Which modules: those whose file, or a conftest.py above it, declares a fixture of module scope
(read from the source; the controller, which schedules, collects nothing itself).
"""

from __future__ import annotations

import functools
from pathlib import Path

import pytest
from xdist.remote import Producer
from xdist.scheduler import LoadScopeScheduling

MODULE_SCOPE = ('scope="module"', "scope='module'")


class ModuleFixtureScheduling(LoadScopeScheduling):
    def __init__(self, config: pytest.Config, log: Producer | None = None) -> None:
        super().__init__(config, log)
        self._root = Path(config.rootpath)
        self._units: dict[str, str] | None = None

    def schedule(self) -> None:
        # LoadScopeScheduling would send the largest units first: a worker would then switch
        # between the backends' session installations at every unit, making them again each time.
        self.config.option.loadscopereorder = False
        super().schedule()

    def _split_scope(self, nodeid: str) -> str:
        if self._units is None:
            self._units = self._group(next(iter(self.registered_collections.values())))
        return self._units.get(nodeid, nodeid)

    def _group(self, collection: list[str]) -> dict[str, str]:
        """nodeid -> its unit, for the tests of modules with module fixtures (`module#run`)."""
        units: dict[str, str] = {}
        runs: dict[str, int] = {}
        previous = None
        for nodeid in collection:
            module = nodeid.split("::", 1)[0]
            if module != previous:
                runs[module] = runs.get(module, -1) + 1
                previous = module
            if has_module_fixtures(self._root, module):
                units[nodeid] = f"{module}#{runs[module]}"
        return units


@functools.cache
def has_module_fixtures(root: Path, module: str) -> bool:
    path = root / module
    files = [path, *(folder / "conftest.py" for folder in path.parents if root in folder.parents)]
    return any(_declares_module_scope(file) for file in files)


@functools.cache
def _declares_module_scope(file: Path) -> bool:
    try:
        source = file.read_text()
    except OSError:
        return False
    return any(declaration in source for declaration in MODULE_SCOPE)
