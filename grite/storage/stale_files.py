"""Removing a file left behind without removing one that has taken its place.

Between looking at a leftover (a git lock file of a killed writer, a dead daemon socket) and
removing it, its owner may replace it with a live one. unlink() by name would then remove the
live file. Instead the path is renamed aside (atomic), the moved file is compared with what was
seen, and a different one is linked back (link never replaces). Inode, device and mtime are
compared: ext4 hands a freed inode number out again at once. Standard library only.
"""

from __future__ import annotations

import os

__all__ = ["remove_if_unchanged"]


def remove_if_unchanged(path: str, seen: os.stat_result, aside: str) -> bool | None:
    """Remove `path` if it is still the file `seen` (an lstat of it).

    Args:
        path: the leftover.
        seen: what the caller inspected before deciding it is a leftover.
        aside: a free name in the same directory (same file system) to move it to.

    Returns:
        True when it was removed; False when another file was there, which is left in place;
        None when nothing was there any more.
    """
    try:
        os.rename(path, aside)
    except FileNotFoundError:
        return None
    moved = os.lstat(aside)
    if (moved.st_dev, moved.st_ino, moved.st_mtime_ns) != (
        seen.st_dev,
        seen.st_ino,
        seen.st_mtime_ns,
    ):
        try:
            os.link(aside, path)
        except FileExistsError:
            pass
        os.unlink(aside)
        return False
    os.unlink(aside)
    return True
