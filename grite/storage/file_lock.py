"""Advisory file locks (`fcntl.flock`) with a bounded wait.

A lock here never makes another process fail: callers that cannot get one within their wait
take a path that needs no lock (reads from the view plus the WAL delta). The WAL ref's own
compare-and-swap, not these locks, is what keeps writes from being lost.
"""

from __future__ import annotations

import fcntl
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["exclusive_lock", "try_lock"]


def try_lock(path: str, wait_seconds: float) -> int | None:
    """Take an exclusive flock on `path`, waiting up to `wait_seconds`.

    Returns:
        The open file descriptor holding the lock (close it to release), or None on timeout.
    """
    # O_NOFOLLOW: a symlink planted at the lock name is refused, never opened.
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW, 0o600)
    deadline = time.monotonic() + wait_seconds
    delay = 0.001
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return fd
        except BlockingIOError:
            if time.monotonic() >= deadline:
                os.close(fd)
                return None
            # flock has no timed wait; a short, growing sleep keeps the holder's latency low.
            time.sleep(delay)
            delay = min(delay * 2, 0.02)


@contextmanager
def exclusive_lock(path: str, wait_seconds: float) -> Iterator[bool]:
    """Context manager form of try_lock; yields whether the lock is held."""
    fd = try_lock(path, wait_seconds)
    try:
        yield fd is not None
    finally:
        if fd is not None:
            os.close(fd)
