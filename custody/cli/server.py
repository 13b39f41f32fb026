"""`custody init`, `custody serve`, `custody worker`."""

from __future__ import annotations

import logging
import multiprocessing
import signal
import threading
from typing import Annotated

import typer

from custody.cli import context
from custody.cli.output import JsonOption, emit, warn_line


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


def serve(
    host: Annotated[
        str | None, typer.Option("--host", help="Default: settings (127.0.0.1).")
    ] = None,
    port: Annotated[int | None, typer.Option("--port", help="Default: settings (8000).")] = None,
    worker: Annotated[
        bool, typer.Option("--worker/--no-worker", help="Run a signer worker in this process.")
    ] = True,
    as_json: JsonOption = False,
) -> None:
    """Serve the HTTP API (and an in-process signer worker)."""
    from custody.app import create_app
    from custody.http.serving import ServerConfig, run
    from custody.runtime import Runtime

    settings = context.settings()
    runtime = Runtime(settings)
    app = create_app(runtime, run_worker=worker)
    _logging()
    bind_host, bind_port = host or settings.host, port or settings.port
    emit(
        {"host": bind_host, "port": bind_port},
        as_json=as_json,
        human=f"custody serving on http://{bind_host}:{bind_port} (home {settings.home})",
    )
    # uvicorn shuts down gracefully on SIGTERM, then re-raises the signal against the handler that
    # was installed before it started; a quiet one here makes a clean stop exit 0, as systemd
    # and orchestrators expect of a service that stopped as asked.
    signal.signal(signal.SIGTERM, lambda _signum, _frame: None)
    started = run(ServerConfig(app, settings, host=bind_host, port=bind_port))
    runtime.close()
    if not started:
        raise typer.Exit(3)  # uvicorn's own exit status for a server that could not start


def worker(
    processes: Annotated[
        int, typer.Option("--processes", min=1, max=64, help="Signer processes (PostgreSQL).")
    ] = 1,
    once: Annotated[bool, typer.Option("--once", help="Sign what is waiting, then exit.")] = False,
    as_json: JsonOption = False,
) -> None:
    """Run signer workers without the API."""
    _logging()
    if processes == 1 or once:
        signed = _run_worker(once)
        emit({"signed": signed}, as_json=as_json, human=f"signed {signed} requests")
        return
    # Each process opens its own database connections and HSM session after the fork.
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_run_worker, args=(False,), daemon=False) for _ in range(processes)]
    for proc in procs:
        proc.start()
    for proc in procs:
        proc.join()


def _run_worker(once: bool) -> int:
    from custody.runtime import Runtime
    from custody.signing.worker import SignerWorker

    runtime = Runtime(context.settings())
    signer = SignerWorker(runtime)
    try:
        if once:
            return signer.drain()
        stop = threading.Event()

        def _stop(_signum: int, _frame: object) -> None:
            stop.set()
            signer.wake.set()

        signal.signal(signal.SIGTERM, _stop)
        signal.signal(signal.SIGINT, _stop)
        from custody.freezes.breakers import freeze_on_fork
        from custody.ledger.checkpointer import start_checkpointer

        start_checkpointer(runtime, stop, on_fork=freeze_on_fork)
        from custody.webhooks.runner import start_webhooks

        start_webhooks(runtime, stop)
        signer.run(stop)
        return signer.signed
    finally:
        runtime.close()


def _logging() -> None:
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
