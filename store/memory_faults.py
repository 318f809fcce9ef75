"""A last resort for LMDB's memory map: a SIGBUS becomes a one-line error, not a crash."""

from __future__ import annotations

import ctypes
import os
import signal
from pathlib import Path

_FAULT_HANDLER = ctypes.CFUNCTYPE(None, ctypes.c_int)
_installed_guards: list = []


def guard_memory_faults(store: Path) -> None:
    """Turn a SIGBUS into a one-line error and exit status 1 (installed once per process).

    LMDB reads the store through a memory map and trusts its pages; a damaged page that
    :mod:`~inrstore.store.lmdb_pages` did not check (``get`` does not walk the whole file)
    can make it read outside ``data.mdb``. The process cannot go on after that fault, but
    it can say what happened instead of dying with "Bus error".
    """
    if _installed_guards:
        return
    message = (
        f"error: {store}: store damaged (a page points outside data.mdb); run 'inrstore "
        "verify' to find the damage\n"
    ).encode()

    def on_fault(signum: int) -> None:
        os.write(2, message)
        os._exit(1)

    handler = _FAULT_HANDLER(on_fault)
    libc = ctypes.CDLL(None)
    libc.signal.restype = ctypes.c_void_p
    libc.signal.argtypes = [ctypes.c_int, _FAULT_HANDLER]
    libc.signal(signal.SIGBUS, handler)
    _installed_guards.append(handler)  # the C side holds only a pointer: keep it alive
