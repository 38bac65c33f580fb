"""Start the per-user daemon when none answers (the fallback when no service manager does).

Waiting (`ensure_daemon`): the client takes `spawn.lock`, tries to connect once more (another
client may have just started one), then starts `python -m grite.daemon` with the same
interpreter in a new session with stdio detached, and waits on a readiness pipe with a deadline
(select, no polling). The daemon writes one line: `ok <pid>` once its socket is published,
`locked <pid>` when another daemon already serves, or `error <reason>`. EOF without a line
means it died.

In the background (`start_detached`, a `grite` command's cold start): the client takes
`spawn.lock` without waiting (someone else holding it is starting a daemon already), starts the
daemon the same way and hands it the locked descriptor (`--spawn-lock-fd`), which the daemon
closes once its socket is published; so concurrent cold commands start one daemon, not one
each, and none of them waits. Standard library and grite.ipc.paths only: this runs in the
`grite` client.
"""

from __future__ import annotations

import errno
import fcntl
import os
import sys
import time

from grite.ipc.paths import RuntimePaths, daemon_child_env, ensure_runtime_dir

__all__ = [
    "SPAWN_DEADLINE",
    "Readiness",
    "ensure_daemon",
    "probe",
    "start_daemon",
    "start_detached",
    "wait_exit",
]

SPAWN_DEADLINE = 10.0


class Readiness:
    """What a spawned daemon reported through its readiness pipe."""

    __slots__ = ("detail", "pid", "status")

    def __init__(self, status: str, pid: int, detail: str) -> None:
        self.status = status  # "ok", "locked", "error", "died" (EOF) or "timeout"
        self.pid = pid
        self.detail = detail


def probe(socket_path: str, timeout: float = 1.0) -> bool:
    """Return True when something accepts connections on `socket_path`."""
    import _socket  # the C module: `socket` would load enum and selectors

    sock = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
    try:
        sock.settimeout(timeout)
        sock.connect(socket_path)
        return True
    except OSError:
        return False
    finally:
        sock.close()


def _lock_with_deadline(fd: int, deadline: float) -> bool:
    # flock has no timeout; a short back-off loop bounds the wait. The holder is a client
    # waiting on its own readiness pipe, so the lock is held for well under a second.
    delay = 0.002
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except OSError as exc:
            if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise
        if time.monotonic() >= deadline:
            return False
        time.sleep(delay)
        delay = min(delay * 2, 0.05)


def _read_record(fd: int, deadline: float) -> bytes | None:
    import select  # deliberately lazy: only a waiting start reads the pipe

    data = b""
    while b"\n" not in data:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return None
        ready, _, _ = select.select([fd], [], [], remaining)
        if not ready:
            return None
        chunk = os.read(fd, 512)
        if not chunk:
            break
        data += chunk
    return data


def start_daemon(
    paths: RuntimePaths,
    *,
    idle_timeout: int | None = None,
    deadline: float = SPAWN_DEADLINE,
    log_level: str | None = None,
) -> Readiness:
    """Start a daemon for `paths` and wait until it reports.

    The caller should hold spawn.lock (ensure_daemon does); a concurrent daemon is harmless
    anyway: it loses the lifetime lock and reports `locked`.

    Args:
        paths: the runtime paths; the daemon gets the socket and log file from them.
        idle_timeout: seconds before idle exit (None: the daemon's own default/config).
        deadline: seconds to wait for the readiness line.
        log_level: passed as --log-level when given.

    Returns:
        The readiness report.
    """
    import subprocess  # deliberately lazy: a background start does not need it

    read_fd, write_fd = os.pipe()
    cmd = _daemon_command(paths, idle_timeout, "--ready-fd", str(write_fd))
    if log_level is not None:
        cmd += ["--log-level", log_level]
    try:
        try:
            child = subprocess.Popen(
                cmd,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                pass_fds=(write_fd,),
                start_new_session=True,
                cwd="/",
                env=daemon_child_env(),
            )
        finally:
            # Only the child may hold the write end, or EOF would never signal its death.
            os.close(write_fd)
        record = _read_record(read_fd, time.monotonic() + deadline)
    finally:
        os.close(read_fd)
    if record is None:
        return Readiness("timeout", child.pid, f"no readiness within {deadline:g} s")
    if not record:
        return Readiness("died", child.pid, f"exited with {child.poll()}; see {paths.log_file}")
    status, _, rest = record.decode("utf-8", "replace").strip().partition(" ")
    if status in ("ok", "locked"):
        pid = int(rest) if rest.isdigit() else child.pid
        return Readiness(status, pid, "")
    return Readiness("error", child.pid, rest)


def _daemon_command(paths: RuntimePaths, idle_timeout: int | None, *extra: str) -> list[str]:
    cmd = [sys.executable, "-m", "grite.daemon", "--socket-path", paths.socket, *extra]
    cmd += ["--log-file", paths.log_file]
    if idle_timeout is not None:
        cmd += ["--idle-timeout", str(idle_timeout)]
    return cmd


def start_detached(paths: RuntimePaths, *, idle_timeout: int | None = None) -> bool:
    """Start a daemon for `paths` without waiting for it, unless one is being started.

    Returns:
        True when this call started one; False when another client holds spawn.lock (it is
        starting one) or something answers on the socket already.

    Raises:
        Environment: the runtime directory is unsafe or the socket path too long.
    """
    ensure_runtime_dir(paths)
    fd = os.open(paths.spawn_lock, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                return False
            raise
        if probe(paths.socket):
            return False
        cmd = _daemon_command(paths, idle_timeout, "--spawn-lock-fd", str(fd))
        env = daemon_child_env()
        # fork + exec rather than subprocess: this runs on a cold command's path, and the
        # child needs only a new session, "/" as its cwd, /dev/null as stdio and the lock fd.
        # Forked twice, so that init adopts the daemon and no caller is left with a zombie.
        pid = os.fork()
        if pid == 0:  # pragma: no cover - the children only fork, exec or exit
            try:
                os.setsid()
                if os.fork() == 0:
                    os.chdir("/")
                    null = os.open(os.devnull, os.O_RDWR)
                    for target in (0, 1, 2):
                        os.dup2(null, target)
                    os.set_inheritable(fd, True)
                    os.execve(sys.executable, cmd, env)
            finally:
                os._exit(0)
        os.waitpid(pid, 0)
        return True
    finally:
        os.close(fd)  # the daemon keeps its own copy of the lock until its socket is live


def wait_exit(pid: int, timeout: float) -> bool:
    """Wait until process `pid` exits; True if it did within `timeout` seconds."""
    import select  # deliberately lazy, as in _read_record

    deadline = time.monotonic() + timeout
    if hasattr(os, "pidfd_open"):
        try:
            fd = os.pidfd_open(pid)
        except ProcessLookupError:
            return True
        except OSError:
            fd = -1
        if fd >= 0:
            try:
                return bool(select.select([fd], [], [], timeout)[0])
            finally:
                os.close(fd)
    delay = 0.01  # no pidfd (macOS): a bounded back-off on kill(pid, 0)
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        time.sleep(delay)
        delay = min(delay * 2, 0.2)
    return False


def ensure_daemon(
    paths: RuntimePaths, *, idle_timeout: int | None = None, deadline: float = SPAWN_DEADLINE
) -> str | None:
    """Return the socket of a running daemon, starting one if needed.

    Args:
        paths: the runtime paths.
        idle_timeout: idle timeout for a daemon started here.
        deadline: bound on waiting for the spawn lock and for readiness.

    Returns:
        The socket path, or None when no daemon could be reached (run in-process).

    Raises:
        Environment: the runtime directory is unsafe or the socket path too long.
    """
    ensure_runtime_dir(paths)
    if probe(paths.socket):
        return paths.socket
    fd = os.open(paths.spawn_lock, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        if not _lock_with_deadline(fd, time.monotonic() + deadline + 2.0):
            return paths.socket if probe(paths.socket) else None
        # Double-checked under the lock: whoever held it before us may have started one.
        if probe(paths.socket):
            return paths.socket
        ready = start_daemon(paths, idle_timeout=idle_timeout, deadline=deadline)
        if ready.status in ("ok", "locked") and probe(paths.socket):
            return paths.socket
        return None
    finally:
        os.close(fd)  # releases the flock
