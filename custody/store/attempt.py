"""A refusal that waits for its transaction to commit.

Some steps must stay done even when what follows them is refused: a passkey prompt is used up, a
request past its deadline is expired. Running what follows in a savepoint keeps the whole thing
one transaction: a refusal undoes only the savepoint, the caller's transaction commits the rest,
and the refusal is raised after that commit.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy.orm import Session

from custody.errors import CustodyError


class Attempt:
    def __init__(self) -> None:
        self.refusal: CustodyError | None = None

    @contextmanager
    def savepoint(self, session: Session) -> Iterator[None]:
        try:
            with session.begin_nested():
                yield
        except CustodyError as exc:
            self.refusal = exc

    def raise_refusal(self) -> None:
        """Call once the enclosing transaction has committed."""
        if self.refusal is not None:
            raise self.refusal
