"""A SoftHSM2 token for development and tests, kept under one folder (CUSTODY_HOME/hsm).

DEVELOPMENT ONLY: the token's PINs sit next to it in a file, and keys in it are as safe as that
folder. Production uses a real HSM named by CUSTODY_HSM_MODULE / CUSTODY_HSM_TOKEN with the PIN in
CUSTODY_HSM_PIN or CUSTODY_HSM_PIN_FILE.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import secrets
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from custody.hsm.errors import HsmError, HsmModuleNotFound

SOFTHSM_MODULE_CANDIDATES = (
    "/usr/lib/softhsm/libsofthsm2.so",
    "/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so",
    "/usr/lib/aarch64-linux-gnu/softhsm/libsofthsm2.so",
    "/usr/local/lib/softhsm/libsofthsm2.so",
    "/opt/homebrew/lib/softhsm/libsofthsm2.so",
)
_INSTALL_HINT = (
    "install SoftHSM2 (Debian/Ubuntu: apt install softhsm2; macOS: brew install softhsm)"
)

CONF_TEMPLATE = """\
# SoftHSM2 configuration of custody's DEVELOPMENT token. Never hold production keys here.
directories.tokendir = {tokendir}
objectstore.backend = file
log.level = ERROR
slots.removable = false
slots.mechanisms = ALL
# Signer workers may fork: the child must get fresh library state, not a copy of the parent's.
library.reset_on_fork = true
"""
README_TEXT = """\
DEVELOPMENT ONLY

This folder holds a SoftHSM2 software token created by custody for development and tests.
Its PINs are stored in pins.json next to it (and those of the tokens `custody hsm add-token`
made in pins-LABEL.json), so any key in it is only as safe as this folder.
Never generate or import production keys here: production uses a real HSM configured with
CUSTODY_HSM_MODULE, CUSTODY_HSM_TOKEN and CUSTODY_HSM_PIN or CUSTODY_HSM_PIN_FILE.
"""
PINS_FILE = "pins.json"
README_FILE = "README-DEVELOPMENT-ONLY.txt"
_TOKEN_LABEL = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,31}")


@dataclass(frozen=True)
class DevToken:
    conf_path: Path
    module_path: str
    label: str
    pin_file: Path


def find_softhsm_module() -> str:
    for candidate in SOFTHSM_MODULE_CANDIDATES:
        if os.path.isfile(candidate):
            return candidate
    raise HsmModuleNotFound(f"SoftHSM2 module libsofthsm2.so not found; {_INSTALL_HINT}")


def activate_dev_token(token: DevToken) -> None:
    """Point SoftHSM at the token's configuration; call it before the first Pkcs11Token opens.

    SoftHSM reads SOFTHSM2_CONF only when the library initialises, once per process.
    """
    os.environ["SOFTHSM2_CONF"] = str(token.conf_path)


def ensure_dev_token(hsm_dir: Path, label: str = "custody-dev") -> DevToken:
    """Create the development token under `hsm_dir`, or reuse it and its PINs if it exists."""
    return _ensure(hsm_dir, label, hsm_dir / PINS_FILE)


def add_dev_token(hsm_dir: Path, label: str) -> DevToken:
    """One more development token in the SoftHSM configuration under `hsm_dir` (the same
    softhsm2.conf, so a process that loaded SoftHSM once sees it beside the first), its PINs in
    `pins-LABEL.json` beside pins.json; reused, with its PINs, if it exists."""
    main = hsm_dir / PINS_FILE
    if not main.exists():
        raise HsmError(f"no development token under {hsm_dir}; run `custody init` first")
    if _read_pins(main, None).get("label") == label:
        raise HsmError(f"{label!r} is the main development token already")
    return _ensure(hsm_dir, label, extra_pin_file(hsm_dir, label))


def extra_pin_file(hsm_dir: Path, label: str) -> Path:
    return hsm_dir / f"pins-{label}.json"


def _ensure(hsm_dir: Path, label: str, pin_file: Path) -> DevToken:
    if not _TOKEN_LABEL.fullmatch(label):
        raise HsmError(f"invalid token label {label!r}: 1-32 characters from A-Z a-z 0-9 . _ -")
    module_path = find_softhsm_module()
    util = shutil.which("softhsm2-util")
    if util is None:
        raise HsmModuleNotFound(f"softhsm2-util not found on PATH; {_INSTALL_HINT}")
    hsm_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    tokendir = hsm_dir / "tokens"
    tokendir.mkdir(mode=0o700, exist_ok=True)
    conf_path = hsm_dir / "softhsm2.conf"
    with _exclusive(hsm_dir / ".lock"):
        _write_if_changed(conf_path, CONF_TEMPLATE.format(tokendir=tokendir.resolve()))
        _write_if_changed(hsm_dir / README_FILE, README_TEXT)
        exists = _token_exists(util, conf_path, label)
        if pin_file.exists():
            pins = _read_pins(pin_file, label)
        elif exists:
            raise HsmError(
                f"dev token {label!r} exists in {tokendir} but {pin_file} is missing; "
                f"delete {tokendir} to start over"
            )
        else:
            pins = {"label": label, "user_pin": _new_pin(), "so_pin": _new_pin()}
            _write_private(pin_file, json.dumps(pins, indent=2) + "\n")
        if not exists:
            _init_token(util, conf_path, label, pins)
    return DevToken(conf_path=conf_path, module_path=module_path, label=label, pin_file=pin_file)


def read_pin_file(path: Path) -> str:
    """The user PIN from a file holding just the PIN, or from a dev token's pins.json."""
    mode = path.stat().st_mode
    if mode & 0o077:
        raise HsmError(
            f"PIN file {path} is readable by group or others (mode {mode & 0o777:o}); "
            f"run: chmod 600 {path}"
        )
    text = path.read_text(encoding="utf-8")
    if text.lstrip().startswith("{"):
        return _read_pins(path, None)["user_pin"]
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if len(lines) != 1:
        raise HsmError(f"PIN file {path} must hold the PIN on exactly one line")
    return lines[0]


def read_so_pin_file(path: Path) -> str:
    """The security officer's PIN from a file holding just that PIN, or from a dev token's
    pins.json (its `so_pin`). The same mode rule as for the user PIN."""
    _require_private(path)
    text = path.read_text(encoding="utf-8")
    if text.lstrip().startswith("{"):
        return _read_pins(path, None)["so_pin"]
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if len(lines) != 1:
        raise HsmError(f"SO PIN file {path} must hold the PIN on exactly one line")
    return lines[0]


def _require_private(path: Path) -> None:
    mode = path.stat().st_mode
    if mode & 0o077:
        raise HsmError(
            f"PIN file {path} is readable by group or others (mode {mode & 0o777:o}); "
            f"run: chmod 600 {path}"
        )


def _new_pin() -> str:
    return secrets.token_urlsafe(24)


def _read_pins(path: Path, label: str | None) -> dict[str, str]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except ValueError:
        raise HsmError(f"PIN file {path} is not valid JSON") from None
    if not isinstance(data, dict) or not all(
        isinstance(data.get(key), str) and data[key] for key in ("user_pin", "so_pin")
    ):
        raise HsmError(f"PIN file {path} lacks user_pin or so_pin")
    if label is not None and data.get("label") != label:
        raise HsmError(f"{path} belongs to dev token {data.get('label')!r}, not {label!r}")
    return {str(key): str(value) for key, value in data.items()}


def _token_exists(util: str, conf_path: Path, label: str) -> bool:
    output = _softhsm_util(util, conf_path, ["--show-slots"], secrets_in_argv=())
    labels = re.findall(r"^\s*Label:[ \t]*(.*?)\s*$", output, re.MULTILINE)
    if labels.count(label) > 1:
        raise HsmError(f"several SoftHSM tokens are labelled {label!r} in {conf_path.parent}")
    return label in labels


def _init_token(util: str, conf_path: Path, label: str, pins: dict[str, str]) -> None:
    # PINs on the command line are visible to other local users through /proc while the tool
    # runs. Acceptable for this throwaway development token only; never do this for a real HSM.
    argv = ["--init-token", "--free", "--label", label]
    argv += ["--so-pin", pins["so_pin"], "--pin", pins["user_pin"]]
    _softhsm_util(util, conf_path, argv, secrets_in_argv=(pins["so_pin"], pins["user_pin"]))


def _softhsm_util(
    util: str, conf_path: Path, argv: list[str], secrets_in_argv: tuple[str, ...]
) -> str:
    env = {**os.environ, "SOFTHSM2_CONF": str(conf_path)}
    # check=False: CalledProcessError would carry the argv, PINs included, into logs.
    result = subprocess.run(  # noqa: S603 -- fixed tool path from shutil.which, no shell
        [util, *argv], env=env, capture_output=True, text=True, check=False
    )
    if result.returncode != 0:
        detail = (result.stderr or result.stdout).strip()
        for secret in secrets_in_argv:
            detail = detail.replace(secret, "***")
        raise HsmError(f"softhsm2-util {argv[0]} failed: {detail}")
    return result.stdout


def _write_private(path: Path, text: str) -> None:
    """Write a file that is 0600 from its first byte, atomically replacing any previous one."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _write_if_changed(path: Path, text: str) -> None:
    if not path.exists() or path.read_text(encoding="utf-8") != text:
        path.write_text(text, encoding="utf-8")


@contextlib.contextmanager
def _exclusive(lock_path: Path) -> Iterator[None]:
    """Serialise concurrent set-ups (two `custody init` at once) of the same folder."""
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)
