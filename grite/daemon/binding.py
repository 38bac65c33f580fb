"""Self-bind ownership of the daemon endpoint (used when no service manager passed a socket).

The lifetime flock on `daemon.lock` is the truth about who serves: it is taken before the
socket path is touched and held until exit, so two daemons never serve one endpoint and a crash
releases it. The socket is bound under a temporary name in the same 0700 directory, chmod 0600,
listening, then hard-linked to `daemon.sock` (atomic publish: clients never see a bound socket
that does not listen yet). link() never replaces: a service manager's socket unit started
meanwhile (systemd binds the path itself, unlinking whatever is there) keeps the path, and we
step back. A leftover socket is removed only by the lock holder, only when nothing accepts on it,
and only if it is still the inode that was probed. `daemon.pid` is advisory JSON for humans and
`daemon status`.
Must not be used in systemd or launchd mode: only self-bind may create or unlink the path.
"""

from __future__ import annotations

import errno
import fcntl
import logging
import os
import socket
import time

import msgspec

from grite.ipc.paths import RuntimePaths, ensure_runtime_dir
from grite.ipc.spawner import probe
from grite.storage.config import write_atomic
from grite.storage.stale_files import remove_if_unchanged

__all__ = ["Binding", "PidRecord", "read_pid_record"]

_log = logging.getLogger("grite.daemon")


class PidRecord(msgspec.Struct, frozen=True, kw_only=True):
    """Contents of daemon.pid (advisory; the lifetime flock is authoritative)."""

    pid: int
    started_ms: int
    build_id: str
    socket: str
    heartbeat_ms: int


def read_pid_record(path: str) -> PidRecord | None:
    """Read daemon.pid; None when missing or unreadable (it is advisory)."""
    try:
        with open(path, "rb") as f:
            return msgspec.json.decode(f.read(), type=PidRecord)
    except (OSError, msgspec.DecodeError):
        return None


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


class Binding:
    """The endpoint as owned by this self-bound daemon. Create with `Binding.acquire`."""

    def __init__(
        self, paths: RuntimePaths, lock_fd: int, listener: socket.socket, ident: tuple[int, int]
    ) -> None:
        self.paths = paths
        self.listener = listener
        self._lock_fd = lock_fd
        self._ident = ident
        self._started_ms = _now_ms()
        self._build_id = ""

    @classmethod
    def acquire(cls, paths: RuntimePaths) -> Binding | None:
        """Take the lifetime lock, bind, listen and publish the socket.

        Returns:
            The binding, or None when another daemon holds the lock or already serves there.

        Raises:
            Environment: the runtime directory is unsafe or the path too long.
            OSError: binding failed for another reason.
        """
        ensure_runtime_dir(paths)
        fd = os.open(paths.lock_file, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            os.close(fd)
            if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                return None
            raise
        try:
            published = _bind_and_publish(paths)
        except BaseException:
            os.close(fd)
            raise
        if published is None:
            # Something we do not own (e.g. a systemd socket unit) serves this path.
            os.close(fd)
            return None
        listener, ident = published
        return cls(paths, fd, listener, ident)

    def owns_socket(self) -> bool:
        """True while the socket path is still the inode we published."""
        try:
            st = os.stat(self.paths.socket)
        except OSError:
            return False
        return (st.st_dev, st.st_ino) == self._ident

    def unlink_socket(self) -> None:
        """Remove the socket path if it is still ours (new clients then spawn a new daemon)."""
        if self.owns_socket():
            try:
                os.unlink(self.paths.socket)
            except FileNotFoundError:
                pass

    def write_pid(self, build_id: str) -> None:
        """Write daemon.pid (also refreshes its heartbeat)."""
        self._build_id = build_id
        self.heartbeat()

    def heartbeat(self) -> None:
        """Rewrite daemon.pid atomically with a fresh heartbeat."""
        record = PidRecord(
            pid=os.getpid(),
            started_ms=self._started_ms,
            build_id=self._build_id,
            socket=self.paths.socket,
            heartbeat_ms=_now_ms(),
        )
        write_atomic(self.paths.pid_file, msgspec.json.encode(record), 0o600)

    def release(self) -> None:
        """Remove our pid file and drop the lifetime lock (last step of shutdown)."""
        record = read_pid_record(self.paths.pid_file)
        if record is not None and record.pid == os.getpid():
            try:
                os.unlink(self.paths.pid_file)
            except FileNotFoundError:
                pass
        os.close(self._lock_fd)


def _remove_stale(path: str) -> bool:
    """Remove a socket file nothing accepts on; False when a live one is (or appeared) there."""
    try:
        before = os.lstat(path)
    except FileNotFoundError:
        return True
    if probe(path):
        return False
    # A socket unit may bind a fresh node here between the probe and the removal.
    aside = os.path.join(os.path.dirname(path), f".stale{os.getpid():x}")
    return remove_if_unchanged(path, before, aside) is not False


def _bind_and_publish(paths: RuntimePaths) -> tuple[socket.socket, tuple[int, int]] | None:
    """Bind, listen and publish at `paths.socket`; None when someone else serves there."""
    if not _remove_stale(paths.socket):
        return None
    # A short temporary name keeps within the sun_path limit whenever the final name fits.
    tmp = os.path.join(paths.runtime_dir, f".s{os.getpid():x}")
    try:
        os.unlink(tmp)
    except FileNotFoundError:
        pass
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        listener.bind(tmp)
        # The 0700 directory is the access boundary; 0600 on the node is belt and braces.
        os.chmod(tmp, 0o600)
        listener.listen(socket.SOMAXCONN)
        st = os.stat(tmp)
        os.link(tmp, paths.socket)
    except FileExistsError:
        # A socket unit bound the path since the stale one went: it serves, we do not.
        listener.close()
        return None
    except BaseException:
        listener.close()
        raise
    finally:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
    _log.info("listening on %s", paths.socket)
    return listener, (st.st_dev, st.st_ino)
