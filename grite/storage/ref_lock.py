"""Recovery of git `.lock` files left behind by a writer that died while holding them.

git (and dulwich, which follows git) moves a ref by creating `<ref>.lock` with O_EXCL, writing
the new value into it and renaming it over the ref. A process killed in between leaves the lock
file, and every later writer of that ref fails: git asks the user to delete it by hand. Lock
files carry no pid, so a dead holder cannot be told from a live one directly.

The rule used here: a lock file whose mtime is more than `stale_after` seconds old (default 10 s)
is abandoned. A live holder keeps the lock for the few milliseconds between its create and its
rename (one ref value, one reflog line, one fsync), so ten seconds is three orders of magnitude
beyond any honest hold. Breaking is serialized between grite processes by an flock on a guard
file, the lock is re-checked under it (same inode, same mtime), and it is renamed aside before
being unlinked; if what got renamed turns out to be a different file (a new holder appeared in
between), it is linked back into place (link never replaces), so a live lock is never lost.

The remaining risk, accepted: a holder that is suspended (SIGSTOP,
a frozen VM, a swap storm) for more than `stale_after` seconds between its create and its
rename. Its lock is broken and another writer moves the ref; when the suspended one resumes,
dulwich renames whatever is at the lock path by name. If another writer holds a fresh lock at
that very moment, the resumed writer publishes that writer's value early, or its own rename
fails; either way the ref names a real commit and the failing writer reports an error (its
write is not acknowledged), so nothing acknowledged is lost. Clock skew between machines sharing
a repository over a network file system shortens or lengthens the threshold accordingly.

Imports only the standard library, grite.storage.file_lock and grite.storage.stale_files. Must
not import dulwich: this works on paths only, so it applies to any git lock file.
"""

from __future__ import annotations

import os
import time

from grite.storage.file_lock import try_lock
from grite.storage.stale_files import remove_if_unchanged

__all__ = ["STALE_LOCK_SECONDS", "break_stale_lock", "wait_for_ref_lock"]

STALE_LOCK_SECONDS = 10.0
# How long to wait for another process that is breaking the same lock.
_GUARD_WAIT = 2.0


def break_stale_lock(
    lock_path: str, guard_path: str, stale_after: float = STALE_LOCK_SECONDS
) -> bool:
    """Remove `lock_path` if it is older than `stale_after` seconds.

    Args:
        lock_path: the git lock file (e.g. `.git/refs/grite/wal.lock`).
        guard_path: a file to flock while breaking (outside the refs directory, so git never
            mistakes it for a ref), created if missing.
        stale_after: age in seconds from which the lock counts as abandoned.

    Returns:
        True when this call removed an abandoned lock (the caller retries at once); False when
        there is no lock, it is fresh, or another process dealt with it.
    """
    seen = _stat(lock_path)
    if seen is None or time.time() - seen.st_mtime < stale_after:
        return False
    os.makedirs(os.path.dirname(guard_path), exist_ok=True)
    guard = try_lock(guard_path, _GUARD_WAIT)
    if guard is None:
        return False  # someone else is breaking it; the caller's retry loop goes on
    try:
        again = _stat(lock_path)
        if again is None or (again.st_ino, again.st_mtime_ns) != (seen.st_ino, seen.st_mtime_ns):
            return False
        aside = f"{guard_path}.{os.getpid()}.{time.monotonic_ns()}"
        # None: its holder finished after all; False: a new holder took it, given back.
        return remove_if_unchanged(lock_path, again, aside) is True
    finally:
        os.close(guard)


def _stat(path: str) -> os.stat_result | None:
    try:
        return os.lstat(path)
    except FileNotFoundError:
        return None


def wait_for_ref_lock(
    lock_path: str,
    guard_path: str,
    deadline: float,
    stale_after: float = STALE_LOCK_SECONDS,
) -> bool:
    """Wait until `lock_path` is gone, breaking it once it is abandoned.

    For ref updates that must happen (recording what a remote holds, moving a lease) rather than
    ones that may lose a race: a lock left by a killed process would otherwise stop them forever.

    Args:
        lock_path: the git lock file another writer holds.
        guard_path: see `break_stale_lock`.
        deadline: a `time.monotonic()` value after which to give up.
        stale_after: see `break_stale_lock`.

    Returns:
        True when the lock is gone (retry the update now); False at the deadline.
    """
    delay = 0.002
    while True:
        if _stat(lock_path) is None or break_stale_lock(lock_path, guard_path, stale_after):
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(delay)
        delay = min(delay * 2, 0.1)
