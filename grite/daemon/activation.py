"""Find the listening socket a service manager handed to the daemon, and say which manager.

Owns activation detection (DESIGN section 4): systemd first (`LISTEN_PID`, `LISTEN_PIDFDID`,
`LISTEN_FDS`, `LISTEN_FDNAMES`, fds from 3), then launchd (`launch_activate_socket` through
ctypes, macOS only), else nothing, and the caller binds the socket itself (the spawner path).
systemd's protocol is read through `systemd.daemon` when systemd-python is installed and by a
small pure-Python implementation otherwise; both give the same answers.

This module is one of the few allowed to read `os.environ` (and it also unsets the `LISTEN_*`
variables so that child processes never believe the fds are theirs). It must not import any
other grite module, must not bind, unlink or accept, and must run before any thread starts.
"""

from __future__ import annotations

import enum
import errno
import importlib
import logging
import os
import socket
import stat
import sys
from collections.abc import Callable, Sequence
from types import ModuleType


def import_systemd_daemon() -> ModuleType | None:
    """`systemd.daemon` from the optional C extension (extra "systemd"), or None."""
    try:
        return importlib.import_module("systemd.daemon")
    except ImportError:
        return None


# Loaded once; the pure-Python implementation below covers its absence.
_sd_daemon = import_systemd_daemon()

__all__ = [
    "SD_LISTEN_FDS_START",
    "ActivationMode",
    "LAUNCHD_SOCKET_NAME",
    "import_systemd_daemon",
    "inherited_listener",
    "systemd_python_available",
]

_log = logging.getLogger(__name__)

# First fd a service manager passes (sd_listen_fds(3)).
SD_LISTEN_FDS_START = 3
# Key under `Sockets` in the LaunchAgent plist (packaging/launchd/com.grite.daemon.plist.in).
LAUNCHD_SOCKET_NAME = "Listeners"
_LISTEN_VARS = ("LISTEN_PID", "LISTEN_PIDFDID", "LISTEN_FDS", "LISTEN_FDNAMES")
_LIBSYSTEM = "/usr/lib/libSystem.B.dylib"


class ActivationMode(enum.Enum):
    """Who created the daemon's listening socket; only SELF_BIND may unlink or replace the path."""

    # systemd (user unit grite.socket or systemd-socket-activate) passed the socket as an fd.
    SYSTEMD = "systemd"
    # launchd (LaunchAgent com.grite.daemon) holds the socket; we got it by check-in.
    LAUNCHD = "launchd"
    # No manager: the daemon binds, publishes and finally unlinks the path itself.
    SELF_BIND = "self-bind"


def systemd_python_available() -> bool:
    """Return True when the optional `systemd.daemon` extension imported cleanly."""
    return _sd_daemon is not None


def inherited_listener(
    expected_name: str = "grite",
    *,
    use_systemd_python: bool | None = None,
    platform: str = sys.platform,
) -> tuple[socket.socket, ActivationMode] | None:
    """Return the listening socket a service manager passed to this process, with its mode.

    Call once, at start-up, before any thread or child process exists. The `LISTEN_*`
    variables are unset whatever the outcome, and every passed fd is made close-on-exec.

    Args:
        expected_name: the `FileDescriptorName=` to prefer among several systemd fds; when no
            fd carries it, the first fd is used.
        use_systemd_python: None uses systemd-python when installed; False forces the
            pure-Python implementation; True requires systemd-python.
        platform: `sys.platform`; launchd is only asked on "darwin".

    Returns:
        `(listening socket, mode)`, or None when no manager passed a usable socket (the
        caller then binds the socket itself). Unusable fds are logged as warnings.

    Raises:
        ModuleNotFoundError: `use_systemd_python=True` and systemd-python is not installed.
    """
    sock = _systemd_listener(expected_name, use_systemd_python)
    if sock is not None:
        return sock, ActivationMode.SYSTEMD
    if platform == "darwin":
        sock = _launchd_listener(LAUNCHD_SOCKET_NAME)
        if sock is not None:
            return sock, ActivationMode.LAUNCHD
    return None


# --- systemd -------------------------------------------------------------------------------


def _systemd_listener(expected_name: str, use_systemd_python: bool | None) -> socket.socket | None:
    if use_systemd_python and _sd_daemon is None:
        raise ModuleNotFoundError(
            "systemd-python is not installed: install it with `pip install systemd-python` "
            "(needs libsystemd-dev and pkg-config) or pass use_systemd_python=None"
        )
    use_ext = _sd_daemon is not None if use_systemd_python is None else use_systemd_python
    try:
        if "LISTEN_FDS" not in os.environ and "LISTEN_PID" not in os.environ:
            return None
        if not _listen_pid_is_ours():
            return None
        count = _listen_fds_count()
        if count < 1:
            return None
        fds = _sd_listen_fds_ext() if use_ext else _sd_listen_fds_pure(count)
    finally:
        # libsystemd's unsetenv() does not update os.environ, so always clear both views.
        for name in _LISTEN_VARS:
            os.environ.pop(name, None)
    if not fds:
        return None
    for fd, _name in fds:
        _set_cloexec(fd)
    chosen = next((fd for fd, name in fds if name == expected_name), fds[0][0])
    return _adopt(chosen, "systemd")


def _listen_pid_is_ours() -> bool:
    """Whether LISTEN_PID (and LISTEN_PIDFDID when set) name this process; warn when not."""
    pid_text = os.environ.get("LISTEN_PID", "")
    try:
        pid = int(pid_text)
    except ValueError:
        _log.warning(
            "ignoring LISTEN_FDS: LISTEN_PID=%r is not a process id; binding the socket ourselves",
            pid_text,
        )
        return False
    if pid != os.getpid():
        _log.warning(
            "ignoring LISTEN_FDS: LISTEN_PID=%d names another process (we are %d); "
            "binding the socket ourselves",
            pid,
            os.getpid(),
        )
        return False
    if not _pidfd_id_matches(os.environ.get("LISTEN_PIDFDID")):
        _log.warning(
            "ignoring LISTEN_FDS: LISTEN_PIDFDID names another process; binding the socket ourselves"
        )
        return False
    return True


def _sd_listen_fds_ext() -> list[tuple[int, str]]:
    """The fds through systemd-python; names are "unknown" when the manager sent none."""
    assert _sd_daemon is not None
    try:
        named = _sd_daemon.listen_fds_with_names(unset_environment=False)
        return sorted((int(fd), str(name)) for fd, name in named.items())
    except OSError as exc:
        # EINVAL: LISTEN_FDNAMES does not have one name per fd; use the fds without names,
        # exactly as the pure path does.
        _log.warning("systemd passed malformed LISTEN_FDNAMES (%s); ignoring the names", exc)
    except AttributeError:  # pragma: no cover - systemd-python older than 233
        pass
    try:
        return [(fd, "unknown") for fd in _sd_daemon.listen_fds(unset_environment=False)]
    except OSError as exc:
        _log.warning("ignoring LISTEN_FDS: libsystemd refused it (%s)", exc)
        return []


def _listen_fds_count() -> int:
    """LISTEN_FDS as a number; 0 (with a warning) when it is not one."""
    count_text = os.environ.get("LISTEN_FDS", "")
    try:
        return int(count_text)
    except ValueError:
        _log.warning("ignoring LISTEN_FDS=%r: not a number", count_text)
        return 0


def _sd_listen_fds_pure(count: int) -> list[tuple[int, str]]:
    """sd_listen_fds_with_names(3) in Python: `count` fds from 3, with their names."""
    fds = list(range(SD_LISTEN_FDS_START, SD_LISTEN_FDS_START + count))
    names_text = os.environ.get("LISTEN_FDNAMES")
    names = names_text.split(":") if names_text else []
    if len(names) != count:
        if names_text is not None:
            _log.warning(
                "systemd passed %d fds but %d names in LISTEN_FDNAMES; ignoring the names",
                count,
                len(names),
            )
        names = ["unknown"] * count
    return list(zip(fds, names, strict=True))


def _pidfd_id_matches(pidfd_id: str | None) -> bool:
    """Compare LISTEN_PIDFDID (pidfs inode of the intended process) with ours, when knowable."""
    if not pidfd_id:
        return True
    pidfd_open: Callable[[int], int] | None = getattr(os, "pidfd_open", None)
    if pidfd_open is None:
        return True
    try:
        fd = pidfd_open(os.getpid())
    except OSError:
        return True
    try:
        # A manager that sets LISTEN_PIDFDID runs on a kernel with pidfs, where a pidfd's
        # inode number is the process's unique id.
        return str(os.fstat(fd).st_ino) == pidfd_id.strip()
    finally:
        os.close(fd)


# --- launchd -------------------------------------------------------------------------------


def _launchd_listener(name: str) -> socket.socket | None:
    activate, free = _load_libsystem()
    fds = _launchd_fds(name, activate, free)
    if not fds:
        return None
    for fd in fds:
        _set_cloexec(fd)
    return _adopt(fds[0], "launchd")


def _load_libsystem() -> tuple[Callable[..., int], Callable[..., None]]:
    """Prototype `launch_activate_socket` and `free` from libSystem (macOS 10.10+)."""
    # Imported here, not at module level, so Linux daemons never load ctypes.
    import ctypes

    lib = ctypes.CDLL(_LIBSYSTEM, use_errno=True)
    activate = lib.launch_activate_socket
    activate.argtypes = [
        ctypes.c_char_p,
        ctypes.POINTER(ctypes.POINTER(ctypes.c_int)),
        ctypes.POINTER(ctypes.c_size_t),
    ]
    activate.restype = ctypes.c_int
    free = lib.free
    free.argtypes = [ctypes.c_void_p]
    free.restype = None
    return activate, free


def _launchd_fds(name: str, activate: Callable[..., int], free: Callable[..., None]) -> list[int]:
    """Check in with launchd for the sockets under `Sockets/<name>`; [] when not under launchd.

    Args:
        name: the key under `Sockets` in the plist.
        activate: `launch_activate_socket(const char *, int **, size_t *) -> int`.
        free: libc `free`, for the array launchd allocated.
    """
    import ctypes  # See _load_libsystem: only reached on macOS (or from its unit test).

    fds_ptr = ctypes.POINTER(ctypes.c_int)()
    count = ctypes.c_size_t(0)
    err = activate(name.encode(), ctypes.byref(fds_ptr), ctypes.byref(count))
    if err == errno.ESRCH:  # Not started by launchd: the ordinary spawner case.
        return []
    if err != 0:
        _log.warning(
            "launchd check-in for socket %r failed: %s; binding the socket ourselves "
            "(reinstall the agent with `grite daemon install` if this repeats)",
            name,
            os.strerror(err),
        )
        return []
    try:
        return [int(fds_ptr[i]) for i in range(count.value)]
    finally:
        if fds_ptr:
            free(fds_ptr)


# --- shared --------------------------------------------------------------------------------


def _set_cloexec(fd: int) -> None:
    # sd_listen_fds() does this in C; systemd-socket-activate passes fd 3 inheritable.
    try:
        os.set_inheritable(fd, False)
    except OSError:
        pass


def _adopt(fd: int, manager: str) -> socket.socket | None:
    """Wrap `fd` if it is a listening AF_UNIX stream socket; otherwise warn and return None."""
    problem = _listener_problem(fd)
    if problem is not None:
        _log.warning(
            "%s passed fd %d, but it is %s, not a listening Unix stream socket; "
            "binding the socket ourselves (check the socket unit or plist)",
            manager,
            fd,
            problem,
        )
        return None
    return socket.socket(fileno=fd)


def _listener_problem(fd: int) -> str | None:
    """Describe why `fd` is not a listening AF_UNIX SOCK_STREAM socket, or None if it is."""
    try:
        mode = os.fstat(fd).st_mode
    except OSError as exc:
        return f"not open ({exc.strerror})"
    if not stat.S_ISSOCK(mode):
        return _describe_mode(mode)
    probe = socket.socket(fileno=fd)
    try:
        if probe.family != socket.AF_UNIX:
            return f"a {probe.family.name} socket"
        if probe.type != socket.SOCK_STREAM:
            return f"a {probe.type.name} socket"
        if not probe.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN):
            return "a Unix stream socket that is not listening"
        return None
    except OSError as exc:
        return f"unreadable ({exc.strerror})"
    finally:
        probe.detach()  # The probe must not close the fd.


def _describe_mode(mode: int) -> str:
    kinds: Sequence[tuple[Callable[[int], bool], str]] = (
        (stat.S_ISFIFO, "a pipe"),
        (stat.S_ISREG, "a regular file"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISDIR, "a directory"),
    )
    return next((label for check, label in kinds if check(mode)), "not a socket")
