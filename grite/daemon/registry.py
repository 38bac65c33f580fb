"""The daemon's per-repository workers: one open RepoHandle per git dir, kept warm.

This registry is the only long-lived shared mutable object of the daemon. It implements the
HandleProvider seam that grite.cli.app.run_invocation takes (through a per-request scope), opens
`RepoHandle.open(paths)` once per git dir (concurrent first requests share one opening: no
lock-retry stalls), closes handles that no request used for `worker_idle_seconds` (releasing
their locks) and, while a repository is open, keeps `<git_dir>/grite/pydaemon.json` fresh so
a standalone CLI can see who serves it. Blocking: call it from worker threads, never from the
event loop. Must not import grite.cli.

Not `daemon.lock`: grite 0.5.3's CLI reads `<git_dir>/grite/daemon.lock` as its own daemon's
lock and, while it is fresh, talks its rkyv protocol to the socket named there
(https://github.com/neul-labs/grite, crates/grite/src/context.rs `execution_mode`), so a
Python daemon advertising itself there broke every Rust command in the clone. This file has a
name 0.5.3 never reads, and says which implementation wrote it.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections.abc import Callable
from types import TracebackType
from typing import TYPE_CHECKING, Protocol

import msgspec

from grite.model.errors import GriteError
from grite.storage.config import load_repo_config, write_atomic

if TYPE_CHECKING:
    from grite.storage.repo import RepoPaths

__all__ = ["DEFAULT_LEASE_MS", "DaemonLock", "Registry", "RequestHandles"]

_log = logging.getLogger("grite.daemon")

DEFAULT_LEASE_MS = 30_000
WORKER_IDLE_SECONDS = 120.0
LOCK_FILE = "pydaemon.json"
IMPLEMENTATION = "grite-py"


class Handle(Protocol):
    def close(self) -> None: ...


class DaemonLock(msgspec.Struct, frozen=True, kw_only=True):
    """`<git_dir>/grite/pydaemon.json`: which daemon serves this repository (advisory)."""

    implementation: str = IMPLEMENTATION
    pid: int
    started_ts: int
    repo_root: str
    actor_id: str
    host_id: str
    ipc_endpoint: str
    lease_ms: int
    last_heartbeat_ts: int
    expires_ts: int


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _default_opener(paths: RepoPaths) -> Handle:
    # Deliberately lazy: grite.ops pulls in dulwich and diskcache, which the daemon should not
    # pay for before it reports ready (and which it never needs if only pinged).
    from grite.ops.repo_handle import RepoHandle

    return RepoHandle.open(paths)


class _Entry:
    """One repository's slot. `ready` is set once `handle` or `error` is filled in."""

    def __init__(self, paths: RepoPaths, actor: str) -> None:
        self.paths = paths
        self.actor = actor
        self.ready = threading.Event()
        self.handle: Handle | None = None
        self.error: BaseException | None = None
        self.users = 0
        self.last_used = time.monotonic()
        self.started_ms = _now_ms()
        self.lock_owned = False


class Registry:
    """Open repository handles keyed by git dir.

    Args:
        endpoint: the daemon's socket path (written into pydaemon.json files).
        opener: opens a handle (default grite.ops.repo_handle.RepoHandle.open).
        worker_idle_seconds: close a handle no request used for this long.
        lease_ms: pydaemon.json lease; heartbeats must come more often than this.
    """

    def __init__(
        self,
        endpoint: str,
        *,
        opener: Callable[[RepoPaths], Handle] | None = None,
        worker_idle_seconds: float = WORKER_IDLE_SECONDS,
        lease_ms: int = DEFAULT_LEASE_MS,
    ) -> None:
        self._endpoint = endpoint
        self._opener = opener or _default_opener
        self._worker_idle = worker_idle_seconds
        self._lease_ms = lease_ms
        self._host_id = socket.gethostname()
        self._lock = threading.Lock()
        self._entries: dict[str, _Entry] = {}
        # `[daemon] idle_timeout_seconds` of every repository opened since start (kept after
        # its handle closes, so the daemon's idle timeout does not shrink when it does).
        self._idle_config: dict[str, int] = {}

    def scope(self, actor: str = "") -> RequestHandles:
        """A HandleProvider for one request; handles it took are released when it exits."""
        return RequestHandles(self, actor)

    def acquire(self, paths: RepoPaths, actor: str = "") -> Handle:
        """Return the open handle for `paths`, opening it if needed; pair with release().

        Raises:
            Whatever the opener raised (every waiter of that opening sees the same error).
        """
        key = str(paths.git_dir)
        with self._lock:
            entry = self._entries.get(key)
            opener_thread = entry is None
            if entry is None:
                entry = _Entry(paths, actor)
                self._entries[key] = entry
            entry.users += 1
        if opener_thread:
            self._open(key, entry)
        else:
            entry.ready.wait()
        if entry.handle is None:
            self.release(paths)
            assert entry.error is not None
            raise entry.error
        return entry.handle

    def _open(self, key: str, entry: _Entry) -> None:
        try:
            entry.handle = self._opener(entry.paths)
        except BaseException as exc:
            entry.error = exc
            with self._lock:
                if self._entries.get(key) is entry:
                    del self._entries[key]
            entry.ready.set()
            raise
        _log.info("opened repository %s", entry.paths.repo_root)
        self._remember_idle_config(key, entry.paths)
        entry.lock_owned = self._claim_lock(entry)
        entry.ready.set()

    def _remember_idle_config(self, key: str, paths: RepoPaths) -> None:
        try:
            daemon = load_repo_config(paths.grite_dir).daemon
        except GriteError as exc:  # a broken config must not stop the repository being served
            _log.warning("ignoring the daemon settings of %s: %s", paths.repo_root, exc.message)
            return
        if daemon is not None and daemon.idle_timeout_seconds is not None:
            with self._lock:
                self._idle_config[key] = max(0, daemon.idle_timeout_seconds)

    def configured_idle_timeouts(self) -> list[int]:
        """The idle timeouts configured by repositories opened since start."""
        with self._lock:
            return list(self._idle_config.values())

    def release(self, paths: RepoPaths) -> None:
        """Mark one use of `paths` finished."""
        with self._lock:
            entry = self._entries.get(str(paths.git_dir))
            if entry is not None and entry.users > 0:
                entry.users -= 1
                entry.last_used = time.monotonic()

    def in_use(self, git_dir: str) -> bool:
        """Whether a request is using the repository at `git_dir` right now."""
        with self._lock:
            entry = self._entries.get(git_dir)
            return entry is not None and entry.users > 0

    def repositories(self) -> list[str]:
        """Repository roots with an open handle."""
        with self._lock:
            return sorted(str(e.paths.repo_root) for e in self._entries.values() if e.handle)

    def sweep(self, now: float | None = None) -> list[str]:
        """Close handles unused for worker_idle_seconds. Returns their repository roots."""
        moment = time.monotonic() if now is None else now
        with self._lock:
            idle = [
                (key, e)
                for key, e in self._entries.items()
                if e.users == 0
                and e.handle is not None
                and moment - e.last_used >= self._worker_idle
            ]
            for key, _ in idle:
                del self._entries[key]
        for _, entry in idle:
            self._close(entry)
        return [str(e.paths.repo_root) for _, e in idle]

    def heartbeat(self) -> None:
        """Refresh (or retry claiming) the pydaemon.json of every open repository."""
        with self._lock:
            entries = [e for e in self._entries.values() if e.handle is not None]
        for entry in entries:
            entry.lock_owned = self._claim_lock(entry)

    def close_all(self) -> None:
        """Close every handle (shutdown); waits for openings in progress."""
        with self._lock:
            entries = list(self._entries.values())
            self._entries.clear()
        for entry in entries:
            entry.ready.wait()
            if entry.handle is not None:
                self._close(entry)

    def _close(self, entry: _Entry) -> None:
        assert entry.handle is not None
        try:
            entry.handle.close()
        finally:
            self._drop_lock(entry)
            _log.info("closed repository %s", entry.paths.repo_root)

    # ---- <git_dir>/grite/pydaemon.json ----

    def _lock_path(self, entry: _Entry) -> str:
        return os.path.join(str(entry.paths.git_dir), "grite", LOCK_FILE)

    def _claim_lock(self, entry: _Entry) -> bool:
        path = self._lock_path(entry)
        now = _now_ms()
        current = _read_lock(path)
        if (
            current is not None
            and current.pid != os.getpid()
            and now <= current.expires_ts
            and _pid_alive(current.pid)
        ):
            # Another live daemon (another runtime dir) advertises this repository: leave its
            # file alone; the storage locks keep both correct.
            if entry.lock_owned:
                _log.warning("%s now names pid %s; leaving it alone", path, current.pid)
            return False
        record = DaemonLock(
            pid=os.getpid(),
            started_ts=entry.started_ms,
            repo_root=str(entry.paths.repo_root),
            actor_id=entry.actor,
            host_id=self._host_id,
            ipc_endpoint=self._endpoint,
            lease_ms=self._lease_ms,
            last_heartbeat_ts=now,
            expires_ts=now + self._lease_ms,
        )
        try:
            data = msgspec.json.format(msgspec.json.encode(record), indent=2) + b"\n"
            write_atomic(path, data)
        except OSError as exc:
            _log.warning("cannot write %s: %s", path, exc)
            return False
        return True

    def _drop_lock(self, entry: _Entry) -> None:
        path = self._lock_path(entry)
        current = _read_lock(path)
        if current is not None and current.pid == os.getpid():
            try:
                os.unlink(path)
            except FileNotFoundError:
                pass


def _read_lock(path: str) -> DaemonLock | None:
    try:
        with open(path, "rb") as f:
            return msgspec.json.decode(f.read(), type=DaemonLock)
    except (OSError, msgspec.DecodeError):
        return None  # missing or corrupt: replaced by the next claim


class RequestHandles:
    """HandleProvider for one request: `get(paths)` borrows from the registry until exit."""

    def __init__(self, registry: Registry, actor: str) -> None:
        self._registry = registry
        self._actor = actor
        self._taken: dict[str, tuple[RepoPaths, Handle]] = {}
        self.ran: list[type] = []  # the args types of the operations this request ran

    def get(self, paths: RepoPaths) -> Handle:
        """Return the warm handle for `paths` (opened on first use)."""
        key = str(paths.git_dir)
        taken = self._taken.get(key)
        if taken is None:
            taken = (paths, self._registry.acquire(paths, self._actor))
            self._taken[key] = taken
        return taken[1]

    def used(self) -> list[str]:
        """Git dirs of the repositories this request has taken so far."""
        return list(self._taken)

    def __enter__(self) -> RequestHandles:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        for paths, _ in self._taken.values():
            self._registry.release(paths)
        self._taken.clear()
