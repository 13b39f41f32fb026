"""`custody init`, `custody serve`, `custody worker`."""

from __future__ import annotations

import logging
from enum import StrEnum
from typing import TYPE_CHECKING, Annotated

import typer

from custody.cli import context
from custody.cli.output import JsonOption, emit, fail_line, warn_line
from custody.errors import CustodyError

if TYPE_CHECKING:
    from custody.settings import Settings


def init(as_json: JsonOption = False) -> None:
    """Create or complete CUSTODY_HOME: config, database, dev HSM token, ledger key."""
    from custody.setup.init import initialise

    report = initialise(context.settings())
    lines = [f"custody home {report.home}"]
    if report.created_config:
        lines.append("  wrote custody.toml")
    if report.created_dev_token:
        lines.append("  created the DEVELOPMENT SoftHSM2 token (PINs in hsm/pins.json, mode 0600)")
    if report.created_root_key:
        lines.append("  generated the installation root key (Ed25519) in the HSM")
    if report.sealed_epoch is not None:
        lines.append(f"  configuration sealed by the root key (seal {report.sealed_epoch})")
    if report.added_chains:
        lines.append(f"  added chains: {', '.join(report.added_chains)}")
    if report.created_ledger_key:
        lines.append("  generated the ledger signing key (Ed25519) in the HSM")
    if report.created_webhook_key:
        lines.append("  generated the webhook signing key (Ed25519) in the HSM")
    if report.checkpoint_size is not None:
        lines.append(f"  signed a ledger checkpoint at size {report.checkpoint_size}")
    lines.append(f"  database {report.as_dict()['database']} at head")
    lines.extend(f"  made {name} readable by its owner only" for name in report.tightened)
    emit(report.as_dict(), as_json=as_json, human="\n".join(lines))
    for warning in report.warnings:
        warn_line(warning)


def serve(  # noqa: PLR0917  (Typer maps each parameter to one command-line option)
    host: Annotated[
        str | None, typer.Option("--host", help="Default: settings (127.0.0.1).")
    ] = None,
    port: Annotated[int | None, typer.Option("--port", help="Default: settings (8000).")] = None,
    worker: Annotated[
        bool | None,
        typer.Option(
            "--worker/--no-worker",
            help="Run signer and background processes too. Default: settings (on).",
            show_default=False,
        ),
    ] = None,
    workers: Annotated[
        int | None,
        typer.Option(
            "--workers",
            min=1,
            max=64,
            help="API processes. Default: settings, else sized to the cores and the database.",
        ),
    ] = None,
    signers: Annotated[
        int | None,
        typer.Option(
            "--signers",
            min=1,
            max=64,
            help="Signer processes. Default: settings, else sized to the cores and the database.",
        ),
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Serve the HTTP API, with signer and background processes, under one supervisor."""
    from custody.processes import launch, sizing

    settings = context.settings()
    with_workers = settings.worker_in_process if worker is None else worker
    processes = sizing.for_settings(settings, api_flag=workers, signers_flag=signers)
    _logging(settings, "supervisor")
    _tracing(settings, as_json=as_json)
    _preflight(settings, as_json=as_json)
    bind_host, bind_port = host or settings.host, port or settings.port
    try:
        listener = launch.listen(bind_host, bind_port)
    except OSError as exc:
        fail_line(
            f"cannot listen on {bind_host}:{bind_port}: {exc.strerror or exc}", as_json=as_json
        )
        raise typer.Exit(3) from None  # uvicorn's own exit status for a server that cannot start
    signer_processes = processes.signers if with_workers else 0
    emit(
        {
            "host": bind_host,
            "port": bind_port,
            "api_processes": processes.api,
            "signer_processes": signer_processes,
            "cores": processes.cores,
        },
        as_json=as_json,
        human=f"custody serving on http://{bind_host}:{bind_port} (home {settings.home})\n"
        + (
            processes.describe()
            if with_workers
            else f"{processes.describe_api()}; no signer or background process (--no-worker)"
        ),
    )
    with listener:
        code = launch.serve(
            settings,
            listener,
            api_processes=processes.api,
            signer_processes=processes.signers,
            with_workers=with_workers,
        )
    raise typer.Exit(code)


class WorkerPart(StrEnum):
    SIGNERS = "signers"
    BACKGROUND = "background"


def worker(
    processes: Annotated[
        int | None,
        typer.Option(
            "--processes",
            min=1,
            max=64,
            help="Signer processes. Default: settings, else as `custody serve` would run.",
        ),
    ] = None,
    only: Annotated[
        WorkerPart | None,
        typer.Option(
            "--only",
            help="Run only the signer processes, or only the background process (checkpoints, "
            "webhooks, broadcasts): to run each as a service of its own.",
        ),
    ] = None,
    once: Annotated[bool, typer.Option("--once", help="Sign what is waiting, then exit.")] = False,
    as_json: JsonOption = False,
) -> None:
    """Run signer processes and the background process (checkpoints, webhooks, broadcasts),
    no API."""
    settings = context.settings()
    if once:
        _logging(settings, "worker")
        _tracing(settings, as_json=as_json)
        signed = _drain(settings)
        emit({"signed": signed}, as_json=as_json, human=f"signed {signed} requests")
        return
    if only is WorkerPart.BACKGROUND and processes is not None:
        raise typer.BadParameter("--processes does not go with --only background")
    from custody.processes import launch, sizing

    _logging(settings, "supervisor")
    _tracing(settings, as_json=as_json)
    _preflight(settings, as_json=as_json)
    planned = sizing.for_settings(settings, api_flag=None, signers_flag=processes)
    signers = 0 if only is WorkerPart.BACKGROUND else planned.signers
    background = only is not WorkerPart.SIGNERS
    emit(
        {"signers": signers, "background": background},
        as_json=as_json,
        human=f"custody worker: {planned.describe_signers() if signers else 'no signer process'}"
        f"{', the background process' if background else ''} (home {settings.home})",
    )
    raise typer.Exit(launch.work(settings, signer_processes=signers, background=background))


# sysexits.h: a temporary failure, worth starting again (a service manager restarts on it).
EX_TEMPFAIL = 75


def _preflight(settings: Settings, *, as_json: bool) -> None:
    """Exit with one line when the HSM cannot be used: nothing was bound or started.

    2 when only a person can fix it (a refused PIN or a login hold, a missing key or module):
    service managers must not start again into a PIN lockout. 75 when it may pass (the token
    away, the database down): starting again later is right.
    """
    from custody.hsm.errors import (
        HsmError,
        HsmModuleNotFound,
        KeyNotFound,
        LoginHeld,
        PinIncorrect,
    )
    from custody.processes import launch
    from custody.store.database import DatabaseUnavailable

    try:
        launch.preflight(settings)
    except CustodyError as exc:
        fail_line(f"cannot start: {exc.message}", as_json=as_json, status=exc.status)
        passing = isinstance(exc, DatabaseUnavailable) or (
            isinstance(exc, HsmError)
            and exc.retryable
            and not isinstance(exc, PinIncorrect | LoginHeld | HsmModuleNotFound | KeyNotFound)
        )
        raise typer.Exit(EX_TEMPFAIL if passing else 2) from None


def _tracing(settings: Settings, *, as_json: bool) -> None:
    """Exit with one line when tracing is switched on but cannot run (the `otel` extra is not
    installed, or an exporter it does not ship is named): before anything is started, instead
    of every child failing the same way. Off by default: nothing of OpenTelemetry is imported."""
    from custody import tracing

    try:
        reason = tracing.check(settings.tracing)
    except tracing.TracingUnavailable as exc:
        fail_line(f"cannot start: {exc.message}", as_json=as_json, status=exc.status)
        raise typer.Exit(2) from None  # only a person can fix it: not worth starting again
    if reason is not None:
        logging.getLogger("custody.tracing").info("tracing on (%s)", reason)


def _drain(settings: Settings) -> int:
    from custody import tracing
    from custody.runtime import Runtime
    from custody.signing.worker import SignerWorker

    tracing.start("worker", settings.tracing)
    runtime = Runtime(settings)
    try:
        return SignerWorker(runtime).drain()
    finally:
        runtime.close()
        tracing.stop()


def _logging(settings: Settings, role: str) -> None:
    from custody.processes import logs

    logs.configure(role, settings.log_format)
