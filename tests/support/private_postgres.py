"""A PostgreSQL server of a test's own, to stop and to freeze, never the shared one.

The fault tests (tests/faults) stop this server (`pg_ctl stop -m immediate`) and freeze it
(SIGSTOP to the postmaster and to every process it started) while custody runs against it. It
listens on a free port of 127.0.0.1 with no Unix socket, from a temporary folder, so the shared
server on 127.0.0.1:5432 that the rest of the suite uses is never touched.

initdb refuses to run as root, and tests may run as root (containers, CI): then every server
program runs as an unprivileged system user (`postgres`, else `nobody`) through runuser, setpriv
or su, in a temporary folder that user owns.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shlex
import shutil
import signal
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

SERVER_PROGRAMS = ("initdb", "pg_ctl", "postgres")
UNPRIVILEGED_USERS = ("postgres", "nobody")
# Speed over durability where only a crash of the whole machine would lose data: the faults
# injected are a stopped or frozen server process, never a lost disk. A commit still waits for
# its WAL to reach the kernel (no `synchronous_commit=off`): `pg_ctl stop -m immediate` is a
# crash of the server, and must lose nothing that was acknowledged.
SERVER_OPTIONS = (
    "-c fsync=off -c full_page_writes=off "
    "-c listen_addresses=127.0.0.1 -c unix_socket_directories=''"
)


class Unsupported(Exception):
    """No private PostgreSQL server can run here; the message says why (a skip reason)."""


def find_bindir() -> Path | None:
    """The folder holding initdb, pg_ctl and postgres: pg_config's, the one on PATH, or the
    newest /usr/lib/postgresql/*/bin (Debian and Ubuntu keep them off PATH)."""
    candidates: list[Path] = []
    pg_config = shutil.which("pg_config")
    if pg_config:
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            found = subprocess.run(
                [pg_config, "--bindir"], capture_output=True, text=True, timeout=10, check=True
            )
            candidates.append(Path(found.stdout.strip()))
    for program in SERVER_PROGRAMS:
        on_path = shutil.which(program)
        if on_path:
            candidates.append(Path(on_path).resolve().parent)
    versions = Path("/usr/lib/postgresql").glob("*/bin")
    candidates += sorted(versions, key=_version, reverse=True)
    candidates += [Path("/usr/local/pgsql/bin"), Path("/usr/local/bin"), Path("/usr/bin")]
    for folder in candidates:
        if all(os.access(folder / program, os.X_OK) for program in SERVER_PROGRAMS):
            return folder
    return None


def _version(bindir: Path) -> tuple[int, ...]:
    name = bindir.parent.name
    return tuple(int(part) for part in name.split(".") if part.isdigit())


def _unprivileged_prefix() -> tuple[list[str], pwd.struct_passwd | None]:
    """How to run a program as a user initdb accepts: nothing to do unless we are root."""
    if os.geteuid() != 0:
        return [], None
    for name in UNPRIVILEGED_USERS:
        with contextlib.suppress(KeyError):
            user = pwd.getpwnam(name)
            if runuser := shutil.which("runuser"):
                return [runuser, "-u", name, "--"], user
            if setpriv := shutil.which("setpriv"):
                return [
                    setpriv,
                    f"--reuid={user.pw_uid}",
                    f"--regid={user.pw_gid}",
                    "--init-groups",
                ], user
            if su := shutil.which("su"):
                return [su, name, "-s", "/bin/sh", "-c"], user
    raise Unsupported(
        "running as root, and initdb refuses root: no unprivileged user "
        f"({', '.join(UNPRIVILEGED_USERS)}) or no runuser, setpriv or su to run PostgreSQL as"
    )


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _parent_of(pid: int) -> int | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return int(stat.rsplit(")", 1)[1].split()[1])  # the name in parentheses may hold spaces


@dataclass
class PrivatePostgres:
    bindir: Path
    root: Path
    prefix: list[str]
    port: int = field(default_factory=_free_port)
    frozen: list[int] = field(default_factory=list)

    @property
    def data(self) -> Path:
        return self.root / "data"

    @property
    def log(self) -> Path:
        return self.root / "server.log"

    @property
    def url(self) -> str:
        return f"postgresql://custody@127.0.0.1:{self.port}/postgres"

    # -- the server's life -------------------------------------------------------------------

    def init(self) -> None:
        self._run("initdb", "-D", str(self.data), "-U", "custody", "-A", "trust", "-E", "UTF8",
                  "--no-sync")  # fmt: skip

    def start(self) -> None:
        options = f"{SERVER_OPTIONS} -p {self.port}"
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.log), "-w", "-t", "60",
                  "-o", options, "start")  # fmt: skip

    def stop(self, mode: str = "immediate") -> None:
        self._run("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "-t", "60", "stop")

    def running(self) -> bool:
        return self._postmaster() is not None

    def freeze(self) -> list[int]:
        """SIGSTOP the postmaster, then every process it started (each backend is its own
        process group, so one killpg would not reach them). Returns the stopped pids."""
        postmaster = self._postmaster()
        assert postmaster is not None, "the private PostgreSQL server is not running"
        os.kill(postmaster, signal.SIGSTOP)  # first: it starts no new backend while frozen
        self.frozen = [postmaster, *self._children(postmaster)]
        for pid in self.frozen[1:]:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGSTOP)
        return self.frozen

    def thaw(self) -> None:
        for pid in reversed(self.frozen):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGCONT)
        self.frozen = []

    @contextlib.contextmanager
    def frozen_for_a_while(self) -> Iterator[None]:
        self.freeze()
        try:
            yield
        finally:
            self.thaw()

    def close(self) -> None:
        self.thaw()
        with contextlib.suppress(Exception):
            if self.running():
                self.stop()
        shutil.rmtree(self.root, ignore_errors=True)

    # -- helpers -----------------------------------------------------------------------------

    def _postmaster(self) -> int | None:
        try:
            pid = int((self.data / "postmaster.pid").read_text().splitlines()[0])
        except (OSError, ValueError, IndexError):
            return None
        return pid if _parent_of(pid) is not None else None

    @staticmethod
    def _children(parent: int) -> list[int]:
        return [
            int(entry)
            for entry in os.listdir("/proc")
            if entry.isdigit() and _parent_of(int(entry)) == parent
        ]

    def _run(self, program: str, *args: str) -> None:
        command = [str(self.bindir / program), *args]
        if self.prefix and self.prefix[-1] == "-c":  # su takes one shell command line
            argv = [*self.prefix, shlex.join(command)]
        else:
            argv = [*self.prefix, *command]
        done = subprocess.run(
            argv, cwd=self.root, capture_output=True, text=True, timeout=120, check=False
        )
        if done.returncode != 0:
            log = self.log.read_text(errors="replace")[-2000:] if self.log.exists() else ""
            raise RuntimeError(
                f"{program} {' '.join(args)} failed ({done.returncode}):\n"
                f"{done.stdout}{done.stderr}\n{log}"
            )


@contextlib.contextmanager
def private_postgres() -> Iterator[PrivatePostgres]:
    """A started private server, stopped and deleted afterwards. Raises Unsupported (a reason
    to skip) when this machine has no PostgreSQL server programs, or no way to run them."""
    bindir = find_bindir()
    if bindir is None:
        raise Unsupported(
            "no PostgreSQL server programs (initdb, pg_ctl, postgres) found: not via pg_config "
            "--bindir, PATH or /usr/lib/postgresql/*/bin"
        )
    prefix, user = _unprivileged_prefix()
    # As root, under /tmp: the server's user must reach its folder, and TMPDIR may be private.
    root = Path(tempfile.mkdtemp(prefix="custody-private-pg-", dir="/tmp" if user else None))
    if user is not None:
        os.chown(root, user.pw_uid, user.pw_gid)
    server = PrivatePostgres(bindir, root, prefix)
    try:
        server.init()
        server.start()
        yield server
    finally:
        server.close()
