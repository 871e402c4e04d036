"""Process-wide state of the DuckDB files this process attaches, and how processes share a held file.

Files are attached to one in-memory DuckDB instance per process (`shared_host`); each file's attachment,
users, holds and pending checkpoint are kept in its `FileState`, under a per-file re-entrant lock. A forked
child starts with none of it (the parent's instance and threads are not its own).

Other processes are not starved: one that waits for the file through this module announces it by touching
`<file>.waiting` at every attempt (at most 0.1 s apart); the holder detaches at the end of its current
operation when it sees a fresh announcement (≤ 1 s old), or within ~20 ms when idle (a releaser thread watches
held files), and its next attach defers for up to 1 s while an announcement is fresh, so the waiter gets in
before the holder takes the file back. The waiter waits for one operation and the release (a checkpoint, ~1-2
s, when the log is past 16 MiB), within its `lock_timeout` and with the same error when that runs out. A held
file is also released after `idle` seconds without an operation (`DEFAULT_HOLD_IDLE`, 2 s), when an operation fails,
when the block ends and at exit, so tools without this module's retry (the `duckdb` shell, a direct
`duckdb.connect`) find it free once the holder pauses; inside the block they can fail at once, as they do
during any operation. Without `hold`, when the file is free is exactly as before.
"""

from __future__ import annotations

import atexit
import itertools
import os
import threading
import time
from contextlib import suppress
from dataclasses import dataclass, field
from typing import Protocol

import duckdb

#: Seconds a held file stays attached without an operation before it is detached anyway: longer than a
#: backfill waits between two dates at Kalshi's Basic tier (~0.4 s of requests per date); a process that
#: asks for the file through this module gets it within ~20 ms whatever this is.
DEFAULT_HOLD_IDLE = 2.0
#: The longest pause between two attach attempts of a waiter (each attempt refreshes its announcement).
RETRY_MAX = 0.1
#: An announcement older than this is a waiter that gave up or died.
WAITER_FRESH = 1.0
#: How long an attach defers to another process's announced wait before trying anyway.
YIELD_MAX = 1.0
#: How often the releaser thread looks at held files (and an attach at an announced waiter).
POLL = 0.02

_alias_ids = itertools.count(1)


class Holder(Protocol):
    """The warehouse that detaches a held attachment (with its own settings)."""

    @property
    def path(self) -> str: ...

    def detach_file(self) -> None:
        """Detach the file from this process's instance (the caller holds the file's lock)."""
        ...


@dataclass
class FileState:
    """One file's attachment in this process: its alias, lock, users and holds."""

    alias: str
    lock: threading.RLock = field(default_factory=threading.RLock)
    # The instance the file is attached to while `users` operations of this process use it.
    host: duckdb.DuckDBPyConnection | None = None
    users: int = 0
    #: Whether the current attachment is read-write (its detach may leave a log to fold in).
    writable: bool = False
    #: Open `hold` blocks of this process on the file, and their idle bound (seconds).
    holds: int = 0
    hold_idle: float = DEFAULT_HOLD_IDLE
    #: The warehouse whose settings detach the held attachment, while one is held between operations.
    held_by: Holder | None = None
    idle_since: float = 0.0
    #: A bulk transaction (`duck._BULK_ROWS` rows) committed since the last checkpoint: the next detach takes one.
    checkpoint_due: bool = False


FILE_STATES: dict[str, FileState] = {}
FILE_STATES_LOCK = threading.Lock()
_host: duckdb.DuckDBPyConnection | None = None


def file_state(path: str) -> FileState:
    with FILE_STATES_LOCK:
        state = FILE_STATES.get(path)
        if state is None:
            state = FILE_STATES[path] = FileState(f"kalshi_wh{next(_alias_ids)}")
        return state


def shared_host() -> duckdb.DuckDBPyConnection:
    """This process's in-memory instance that files are attached to (created on first use)."""
    global _host, _threshold
    with FILE_STATES_LOCK:
        if _host is None:
            _host, _threshold = duckdb.connect(":memory:"), None
        return _host


def discard_host(host: duckdb.DuckDBPyConnection) -> None:
    """Stop handing out `host` after it failed; it closes once its last attachment is released."""
    global _host
    with FILE_STATES_LOCK:
        if _host is host:
            _host = None


def _forget_host_after_fork() -> None:
    # A forked child must not use (nor destroy) the parent's instance, whose threads it lacks.
    global _host, FILE_STATES_LOCK
    FILE_STATES_LOCK = threading.Lock()
    _orphaned_hosts.extend(s.host for s in FILE_STATES.values() if s.host is not None)
    if _host is not None:
        _orphaned_hosts.append(_host)
    _host = None
    for state in FILE_STATES.values():
        state.lock, state.host, state.users = threading.RLock(), None, 0
        state.holds, state.held_by = 0, None
    LOGGED.clear()
    global _releaser, _RELEASER_LOCK, _threshold
    _releaser, _RELEASER_LOCK, _threshold = None, threading.Lock(), None


_orphaned_hosts: list[duckdb.DuckDBPyConnection] = []
os.register_at_fork(after_in_child=_forget_host_after_fork)
#: Files this process detached leaving a write-ahead log (path -> alias), folded in at exit.
LOGGED: dict[str, str] = {}


_threshold: int | None = None


def set_checkpoint_threshold(conn: duckdb.DuckDBPyConnection, limit: int) -> None:
    """Set DuckDB's automatic checkpoint threshold (one for the process's instance) when it changes."""
    global _threshold
    if _threshold != limit:
        conn.execute(f"SET GLOBAL checkpoint_threshold = '{limit}B'")
        _threshold = limit


def wal_bytes(path: str) -> int:
    try:
        return os.path.getsize(path + ".wal")
    except OSError:
        return 0


def announce(path: str) -> None:
    """Say that this process waits for the file: create or touch `<file>.waiting` (best effort)."""
    with suppress(OSError), open(path + ".waiting", "ab"):
        os.utime(path + ".waiting")


def withdraw(path: str) -> None:
    """Remove the announcement once attached (other waiters renew theirs at their next attempt)."""
    with suppress(OSError):
        os.unlink(path + ".waiting")


def someone_waiting(path: str) -> bool:
    """Whether another process announced, within `WAITER_FRESH` seconds, that it waits for the file."""
    try:
        touched = os.stat(path + ".waiting").st_mtime
    except OSError:
        return False
    return time.time() - touched < WAITER_FRESH


_releaser: threading.Thread | None = None
_RELEASER_LOCK = threading.Lock()


def start_releaser() -> None:
    """Start the thread that detaches held files when idle too long or wanted elsewhere (once)."""
    global _releaser
    with _RELEASER_LOCK:
        if _releaser is None:
            _releaser = threading.Thread(target=_release_loop, name="duckdb-release", daemon=True)
            _releaser.start()


def _release_loop() -> None:
    global _releaser
    while True:
        time.sleep(POLL)
        with _RELEASER_LOCK:
            held = [s for s in list(FILE_STATES.values()) if s.held_by is not None]
            if not held:
                _releaser = None
                return
        for state in held:
            # An operation in progress keeps its attachment; its end looks at waiters itself.
            if not state.lock.acquire(blocking=False):
                continue
            try:
                holder = state.held_by
                if holder is None or state.users:
                    continue
                idle = time.monotonic() - state.idle_since
                if not state.holds or idle > state.hold_idle or someone_waiting(holder.path):
                    holder.detach_file()
            finally:
                state.lock.release()


def _release_held_at_exit() -> None:
    """Detach the files held between operations (checkpointing as any detach would)."""
    for state in list(FILE_STATES.values()):
        if state.held_by is None or not state.lock.acquire(timeout=5):
            continue
        try:
            if state.held_by is not None and not state.users:
                state.held_by.detach_file()
        finally:
            state.lock.release()


def _fold_logs_at_exit() -> None:
    """Checkpoint the files this process left a log in, once each and without waiting for a lock."""
    _release_held_at_exit()
    for path, alias in list(LOGGED.items()):
        if wal_bytes(path) == 0:
            continue
        try:
            host = shared_host()
            cursor = host.cursor()
        except duckdb.Error:
            return
        try:
            quoted = path.replace("'", "''")
            cursor.execute(f"ATTACH '{quoted}' AS {alias}")
            try:
                cursor.execute(f"CHECKPOINT {alias}")
            finally:
                cursor.execute(f"DETACH {alias}")
        except duckdb.Error:
            pass  # the file is busy or gone: whoever opens it next replays the log
        finally:
            cursor.close()
    LOGGED.clear()


atexit.register(_fold_logs_at_exit)


def is_lock_conflict(exc: duckdb.Error) -> bool:
    text = str(exc)
    # Another process holds the file lock, or other code in this process has the file open directly.
    return (
        "Could not set lock" in text or "Conflicting lock" in text or "Unique file handle" in text
    )
