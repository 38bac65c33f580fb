"""Who is connecting: the peer's uid and pid, and whether the daemon may act for it.

Owns the kernel questions a session asks of a freshly accepted Unix socket: SO_PEERCRED on
Linux, LOCAL_PEERCRED/LOCAL_PEERPID on macOS, the mount namespace under /proc, and macOS's
sandbox_check. Synchronous and cheap (a few syscalls); imports nothing of grite.
"""

from __future__ import annotations

import os
import socket
import struct
import sys
from typing import Any

__all__ = ["foreign_peer", "mount_namespace", "peer_pid", "peer_uid"]


def peer_uid(sock: Any) -> int | None:
    """The connecting process's uid (SO_PEERCRED on Linux, LOCAL_PEERCRED on macOS)."""
    try:
        if hasattr(socket, "SO_PEERCRED"):
            raw = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
            return int(struct.unpack("3i", raw)[1])
        # macOS: SOL_LOCAL=0, LOCAL_PEERCRED=1 -> struct xucred {u_int version; uid_t uid; ...}
        raw = sock.getsockopt(0, 1, 76)
        return int(struct.unpack_from("=II", raw)[1])
    except OSError:
        return None


def peer_pid(sock: Any) -> int | None:
    """The connecting process's pid (SO_PEERCRED on Linux, LOCAL_PEERPID on macOS)."""
    try:
        if hasattr(socket, "SO_PEERCRED"):
            raw = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
            return int(struct.unpack("3i", raw)[0])
        # macOS: SOL_LOCAL=0, LOCAL_PEERPID=2 -> pid_t
        return int(struct.unpack("i", sock.getsockopt(0, 2, 4))[0])
    except OSError:
        return None


def mount_namespace(pid: int | str) -> str | None:
    """The mount namespace of a process (`mnt:[inode]`), None when it cannot be read."""
    try:
        return os.readlink(f"/proc/{pid}/ns/mnt")
    except OSError:
        return None


def _sandboxed_on_macos(pid: int) -> bool:
    """Whether a macOS process runs under a sandbox profile (sandbox_check with no operation:
    the same call `sandbox-exec`'s children and App Sandbox apps answer 1 to)."""
    import ctypes  # Deliberately lazy: macOS only, once per connection.

    try:
        lib = ctypes.CDLL("/usr/lib/libSystem.dylib")
        check = lib.sandbox_check
    except (OSError, AttributeError):
        return False
    check.restype = ctypes.c_int
    check.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
    return bool(check(pid, None, 0))


def foreign_peer(sock: Any, own_namespace: str | None) -> str:
    """Why the peer on `sock` must not have the daemon act for it ("" when it may).

    A process in another mount namespace (a sandbox with a read-only home, a container) sees
    other files than the daemon: run by the daemon, its command could write where it cannot.
    The client then runs the command itself, under its own restrictions.
    """
    pid = peer_pid(sock)
    if pid is None:
        return "the daemon cannot tell which process is connecting"
    if sys.platform == "darwin":
        if _sandboxed_on_macos(pid):
            return f"the client (pid {pid}) runs in a macOS sandbox"
        return ""
    if own_namespace is None:
        return ""  # no /proc (not Linux): nothing to compare
    theirs = mount_namespace(pid)
    if theirs != own_namespace:
        return (
            f"the client (pid {pid}) runs in another mount namespace ({theirs or 'unknown'}, "
            f"the daemon's is {own_namespace}): it may not reach the files the daemon reaches"
        )
    return ""
