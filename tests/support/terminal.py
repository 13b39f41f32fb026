"""A command on a pseudo-terminal, driven like a person at the keyboard (prompts, hidden input,
screens cleared)."""

from __future__ import annotations

import fcntl
import os
import re
import select
import struct
import subprocess
import termios
import time

_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


class Terminal:
    """A process on a pseudo-terminal of its own (a new session: no controlling terminal of
    the test run to read passwords from)."""

    def __init__(self, argv: list[str], env: dict[str, str]) -> None:
        self.master, slave = os.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 50, 160, 0, 0))
        self.process = subprocess.Popen(
            argv, stdin=slave, stdout=slave, stderr=slave, env=env, start_new_session=True
        )
        os.close(slave)
        self.raw = ""
        self._position = 0

    def expect(self, pattern: str, timeout: float = 60) -> re.Match[str]:
        """The next match of `pattern` in what the terminal showed (escape codes removed)."""
        deadline = time.monotonic() + timeout
        while True:
            found = re.compile(pattern).search(screen_text(self.raw), self._position)
            if found:
                self._position = found.end()
                return found
            remaining = deadline - time.monotonic()
            ready, _, _ = select.select([self.master], [], [], max(remaining, 0))
            if not ready:
                raise AssertionError(f"no {pattern!r} on the screen:\n{screen_text(self.raw)}")
            try:
                chunk = os.read(self.master, 65536)
            except OSError:
                chunk = b""
            if not chunk:
                raise AssertionError(f"exited before {pattern!r}:\n{screen_text(self.raw)}")
            self.raw += chunk.decode(errors="replace")

    def send(self, text: str) -> None:
        os.write(self.master, text.encode())

    def close(self) -> int:
        code = self.process.wait(timeout=60)
        os.close(self.master)
        return code


def screen_text(raw: str) -> str:
    """What the terminal showed, without its escape codes."""
    return _ANSI.sub("", raw)
