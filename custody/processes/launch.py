"""The process trees of `custody serve` and `custody worker`, from settings to a running
supervisor: check the HSM first, bind the shared sockets, start the children."""

from __future__ import annotations

import os
import socket

from custody.processes import api, signer
from custody.processes import background as background_process
from custody.processes.backoff import Backoff
from custody.processes.children import ChildSpec
from custody.processes.supervisor import Supervisor
from custody.runtime import Runtime
from custody.settings import Settings
from custody.wakeup import Doorbell

LISTEN_BACKLOG = 2048  # uvicorn's default


def preflight(settings: Settings) -> None:
    """Log in to the token and find the ledger key, or raise the CustodyError that says why.

    Before anything is bound or started: a wrong PIN stops here with one login attempt, instead
    of every child of the tree failing its own logins over and over (a real HSM locks the PIN
    after a few). The token is closed again: children must open their own.
    """
    runtime = Runtime(settings)
    try:
        runtime.preflight()
    finally:
        runtime.close()


def listen(host: str, port: int) -> socket.socket:
    """The socket every API process accepts on (OSError when it cannot be bound).

    The supervisor keeps it open, so connections that arrive while an API process restarts wait
    in the backlog instead of being refused.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # Named IPPROTO_TCP, not 0 (as socket.create_server makes it): the connections accepted from
    # it inherit the protocol, and asyncio turns Nagle's algorithm off only on sockets that say
    # TCP. With Nagle on, a response written in two parts waits for the client's delayed ACK:
    # 40 ms added to every call on Linux.
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)  # as create_server does
        sock.bind((host, port))
        sock.listen(LISTEN_BACKLOG)
    except OSError:
        sock.close()
        raise
    return sock


def serve(
    settings: Settings,
    listener: socket.socket,
    *,
    api_processes: int,
    signer_processes: int,
    with_workers: bool,
) -> int:
    """Run the API processes (and, `with_workers`, signers and the background process) until
    stopped; the supervisor's exit status."""
    signers = signer_processes if with_workers else 0
    settings = sharing_connections(settings, api_processes + signers + int(with_workers))
    specs = [
        ChildSpec(f"api-{n}", api.main, (f"api-{n}", settings, os.getpid(), listener))
        for n in range(1, api_processes + 1)
    ]
    return _supervise(settings, specs, signer_processes=signers, background=with_workers)


def work(settings: Settings, *, signer_processes: int, background: bool) -> int:
    """`custody worker`: signer processes and (or only) the background process, no API."""
    settings = sharing_connections(settings, signer_processes + int(background))
    return _supervise(settings, [], signer_processes=signer_processes, background=background)


# Below this a process would queue its own calls for connections.
MIN_PROCESS_CONNECTIONS = 4


def sharing_connections(settings: Settings, processes: int) -> Settings:
    """The settings each of `processes` children runs with: an equal share of
    `database_connections` (PostgreSQL), so that the tree never opens more than that however
    many cores size it (8 API processes of 30 connections each would pass PostgreSQL's default
    `max_connections` of 100, and the server would refuse connections to everyone). A share set
    by hand is kept; never fewer than MIN_PROCESS_CONNECTIONS each."""
    if settings.database_process_connections is not None or processes < 1:
        return settings
    share = max(MIN_PROCESS_CONNECTIONS, settings.database_connections // processes)
    return settings.model_copy(update={"database_process_connections": share})


def _supervise(
    settings: Settings, specs: list[ChildSpec], *, signer_processes: int, background: bool
) -> int:
    doorbell = Doorbell.bind(settings.home) if signer_processes else None
    bell = doorbell.sock if doorbell else None
    parent = os.getpid()
    specs = specs + [
        ChildSpec(f"signer-{n}", signer.main, (f"signer-{n}", settings, parent, bell))
        for n in range(1, signer_processes + 1)
    ]
    if background:
        specs.append(
            ChildSpec(
                "background", background_process.main, ("background", settings, parent), last=True
            )
        )
    supervisor = Supervisor(
        specs,
        shutdown_timeout=settings.shutdown_timeout_seconds,
        backoff=Backoff(cap=settings.restart_backoff_max_seconds),
    )
    try:
        return supervisor.run()
    finally:
        if doorbell is not None:
            doorbell.close()
