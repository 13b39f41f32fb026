"""One PKCS#11 library per process: loaded on first use, loaded afresh after fork, logins tracked.

Three PKCS#11 facts shape this module:
- A library must be initialised (C_Initialize) in the process that uses it. After fork() the child
  holds a copy of the parent's state and handles; using them corrupts both sides. PyKCS11 keeps a
  class-level cache of loaded libraries that a child inherits, so a naive `load()` in the child
  silently reuses the parent's handles. The cache here is keyed by pid, and a child drops the
  inherited objects (keeping them alive, so no destructor finalises the library behind its back).
- Login state belongs to the token and process, not to a session: a second C_Login answers
  CKR_USER_ALREADY_LOGGED_IN without looking at the PIN. To keep a wrong PIN from passing, the
  first accepted PIN is remembered as a keyed MAC and later logins are compared with it.
- PyKCS11 calls C_Initialize without locking callbacks, which tells the library that calls will
  not be concurrent (SoftHSM then disables its mutexes), so every call holds one lock per library.
- A token that went away and came back (a device reset, a token folder restored) is seen again
  only after C_Finalize and C_Initialize: sessions opened before answer errors forever, and new
  ones fail too (SoftHSM: CKR_GENERAL_ERROR). `reload` does that; every session of the old
  library ends with it.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import os
import secrets
import threading
from dataclasses import dataclass
from typing import Any

import PyKCS11

from custody.hsm.errors import HsmError, HsmModuleNotFound, PinIncorrect, error_for_code

SOFTHSM_CONF_ENV = "SOFTHSM2_CONF"
_LOAD_FAILED = (-1, -4)  # PyKCS11's codes for "dlopen failed" and "no C_GetFunctionList"


@dataclass
class _Login:
    pin_mac: bytes
    sessions: int


class Library:
    """A PKCS#11 module loaded in this process. Hold `lock` around every call into it."""

    def __init__(self, module_path: str, pykcs11: Any) -> None:
        self.module_path = module_path
        self.pykcs11 = pykcs11
        self.lock = threading.RLock()
        self._logins: dict[int, _Login] = {}
        self._mac_key = secrets.token_bytes(32)
        self._softhsm_conf = os.environ.get(SOFTHSM_CONF_ENV)
        self.finalised = False
        """Set by `reload`: the sessions of this library are gone, and calls are refused."""

    def check_environment(self) -> None:
        """SoftHSM reads SOFTHSM2_CONF once, at C_Initialize; a later change would be ignored."""
        if "softhsm" not in os.path.basename(self.module_path).lower():
            return
        current = os.environ.get(SOFTHSM_CONF_ENV)
        if current != self._softhsm_conf:
            raise HsmError(
                f"SoftHSM was initialised in this process with {SOFTHSM_CONF_ENV}="
                f"{self._softhsm_conf!r} and cannot switch to {current!r}; "
                "set it before the first HSM use (or restart the process)"
            )

    def login(self, session: Any, slot: int, pin: str, token_label: str) -> None:
        mac = hmac.new(self._mac_key, pin.encode(), hashlib.sha256).digest()
        current = self._logins.get(slot)
        if current is not None:
            if not hmac.compare_digest(current.pin_mac, mac):
                raise PinIncorrect(token_label)
            current.sessions += 1
            return
        try:
            session.login(pin)
        except PyKCS11.PyKCS11Error as exc:
            if exc.value == PyKCS11.CKR_USER_ALREADY_LOGGED_IN:
                raise HsmError(
                    f"HSM token {token_label!r} was logged in outside custody.hsm, "
                    "so the PIN cannot be checked; refusing to continue"
                ) from exc
            raise hsm_error(exc, "login", token_label) from exc
        self._logins[slot] = _Login(pin_mac=mac, sessions=1)

    def release(self, session: Any, slot: int) -> None:
        """Close a session; log out when it is the last one that logged in to its token."""
        if self.finalised:
            return  # C_Finalize closed it already; its handle may name a new session now
        current = self._logins.get(slot)
        # Errors while closing change nothing a caller could act on; the session is gone anyway.
        with contextlib.suppress(PyKCS11.PyKCS11Error):
            if current is not None:
                current.sessions -= 1
                if current.sessions <= 0:
                    del self._logins[slot]
                    session.logout()
            session.closeSession()


def hsm_error(exc: Any, operation: str, token_label: str, key_label: str | None = None) -> HsmError:
    """Translate a PyKCS11Error into custody's HSM error family."""
    code = int(exc.value)
    name = PyKCS11.CKR.get(code)
    code_name = name if isinstance(name, str) else f"CKR 0x{code & 0xFFFFFFFF:08X}"
    return error_for_code(
        code, code_name, operation=operation, token_label=token_label, key_label=key_label
    )


_state_lock = threading.Lock()
_pid = 0
_libraries: dict[str, Library] = {}
_fork_unsafe: dict[str, str] = {}  # kept across forks: once a module is unsafe, stays unsafe
_inherited: list[object] = []  # a parent's library objects; never freed, never called


def library(module_path: str) -> Library:
    """The library for `module_path` in this process, loaded on first use."""
    global _pid  # noqa: PLW0603 -- the process-wide cache is the point of this module
    with _state_lock:
        if _pid != os.getpid():
            _leave_parent_libraries()
            _pid = os.getpid()
        if module_path in _fork_unsafe:
            raise HsmError(_fork_unsafe[module_path])
        lib = _libraries.get(module_path)
        if lib is None:
            lib = _libraries[module_path] = Library(module_path, _load(module_path))
    lib.check_environment()
    return lib


def reload(module_path: str) -> Library:
    """Finalise the library for `module_path` and initialise it afresh (see the module doc).

    Waits for calls in progress (the library's lock). Raises HsmError when the module cannot be
    initialised now (the token's device is still gone); the next call tries again.
    """
    with _state_lock:
        old = _libraries.pop(module_path, None)
    if old is not None:
        with old.lock:
            old.finalised = True
            with contextlib.suppress(PyKCS11.PyKCS11Error):
                old.pykcs11.unload()  # C_Finalize, once no other user holds the module
    return library(module_path)


def _load(module_path: str) -> Any:
    if not os.path.isfile(module_path):
        raise HsmModuleNotFound(
            f"PKCS#11 module {module_path!r} does not exist; set CUSTODY_HSM_MODULE to the "
            "library your HSM vendor ships (for development: install SoftHSM2)"
        )
    pykcs11 = PyKCS11.PyKCS11Lib()
    try:
        pykcs11.load(module_path)
    except PyKCS11.PyKCS11Error as exc:
        if exc.value in _LOAD_FAILED:
            raise HsmModuleNotFound(
                f"{module_path!r} could not be loaded as a PKCS#11 module"
            ) from exc
        raise HsmError(
            f"PKCS#11 module {module_path!r} failed to initialise: {exc} "
            f"(for SoftHSM, check that {SOFTHSM_CONF_ENV} names a readable configuration)"
        ) from exc
    return pykcs11


def _leave_parent_libraries() -> None:
    """In a forked child: set the parent's libraries aside so the next use loads afresh."""
    for path, lib in _libraries.items():
        if _kept_parent_state(lib):
            _fork_unsafe[path] = (
                f"PKCS#11 module {path!r} kept its parent's state across fork(), so this child "
                "cannot get a session of its own; open the token only after forking or use the "
                "'spawn' start method (SoftHSM: set library.reset_on_fork = true)"
            )
        # Without a file name PyKCS11Lib.__del__ returns early instead of calling C_Finalize.
        lib.pykcs11.pkcs11dll_filename = None
        _inherited.append(lib)
    _inherited.append(dict(PyKCS11.PyKCS11Lib._loaded_libs))
    PyKCS11.PyKCS11Lib._loaded_libs.clear()
    _libraries.clear()


def _kept_parent_state(lib: Library) -> bool:
    """A fork-aware library answers CKR_CRYPTOKI_NOT_INITIALIZED in the child until reloaded."""
    try:
        lib.pykcs11.getInfo()
    except PyKCS11.PyKCS11Error as exc:
        return bool(exc.value != PyKCS11.CKR_CRYPTOKI_NOT_INITIALIZED)
    return True


def _reset_locks_in_child() -> None:
    # A lock held by another thread at fork() time would stay held forever in the child.
    global _state_lock  # noqa: PLW0603
    _state_lock = threading.Lock()
    PyKCS11.PyKCS11Lib._lock = threading.Lock()


os.register_at_fork(after_in_child=_reset_locks_in_child)
