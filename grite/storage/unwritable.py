"""What to tell a user when grite cannot write under `.git/grite/` (or next to it).

A read-only file system, a `.git` owned by someone else, or a full disk are facts of the
machine, not bugs and not damage: `grite doctor --fix` cannot help with any of them, so the
message says what can. Used by storage wherever an OSError from a write enters grite.
"""

from __future__ import annotations

import errno
import os

from grite.model.errors import Environment

__all__ = ["REMEDY", "read_only_reason", "write_failure"]

REMEDY = (
    "grite keeps its state under .git/grite, so run it where you can write the repository's "
    ".git (reads need it too)"
)


def read_only_reason(path: str) -> str | None:
    """Why `path` (or its nearest existing parent) cannot be written, or None if it can."""
    probe = path
    while probe and not os.path.exists(probe):
        parent = os.path.dirname(probe)
        if parent == probe:
            break
        probe = parent
    try:
        if os.statvfs(probe).f_flag & os.ST_RDONLY:
            return "it is on a read-only file system"
    except OSError:
        return None
    if not os.access(probe, os.W_OK):
        return "you have no write permission there"
    return None


def write_failure(path: str, exc: OSError, remedy: str = REMEDY) -> Environment:
    """The Environment error for a failed write of `path`, with what the user can do
    (`remedy`: the advice for files under .git/grite by default)."""
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return Environment(
            f"cannot write {path}: the disk (or your quota) is full; free some space and retry",
            {"path": path, "errno": exc.errno},
        )
    if exc.errno == errno.EROFS:
        why = "it is on a read-only file system"
    elif exc.errno in (errno.EACCES, errno.EPERM):
        why = "you have no write permission there"
    else:
        why = exc.strerror or str(exc)
    return Environment(
        f"cannot write {path}: {why}; {remedy}",
        {"path": path, "errno": exc.errno or 0},
    )
