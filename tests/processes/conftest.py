"""Each module here gets an installation of its own: the tests kill, stop and restart the
processes that write to it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.installation import (
    Installation,
    InstallationFactory,
    allow_all_installation,
)


@pytest.fixture(scope="module")
def home(installations: InstallationFactory) -> Iterator[Installation]:
    # The process model is the same on both databases; SQLite is the one that shares a file
    # between processes, and the default of a single-host installation.
    with allow_all_installation(installations) as inst:
        yield inst
