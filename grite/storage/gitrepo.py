"""Opening a repository's git objects and refs with dulwich, errors translated once.

WAL, sync, lock and snapshot stores each hold their own dulwich Repo (they are used from
different threads and have different lifetimes); this is the one place that opens one.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import TypeVar

from dulwich.file import FileLocked
from dulwich.repo import Repo

from grite.model.errors import Environment
from grite.storage.ref_lock import STALE_LOCK_SECONDS, break_stale_lock, wait_for_ref_lock

__all__ = ["git_identity", "open_git_repo", "update_ref", "update_ref_or_lose"]

T = TypeVar("T")


def open_git_repo(git_dir: str) -> Repo:
    """Open the git directory `git_dir` (a `.git` or bare repository).

    Raises:
        Environment: it is not a readable git repository.
    """
    try:
        return Repo(git_dir)
    except Exception as exc:  # dulwich raises NotGitRepository and assorted OSErrors
        raise Environment(
            f"cannot open git repository {git_dir}: {exc}; check that it exists and is readable"
        ) from exc


def git_identity(git_dir: str) -> str | None:
    """The user git would write as, `Name <email>` (or either alone), from the repository's
    config stacked on the user's and the system's; None when neither is set."""
    repo = open_git_repo(git_dir)
    try:
        stack = repo.get_config_stack()
        found = []
        for key in (b"name", b"email"):
            try:
                value = stack.get((b"user",), key).decode("utf-8", "replace").strip()
            except KeyError:
                value = ""
            found.append(value)
    except Exception:  # an unreadable config only loses the default label
        return None
    finally:
        repo.close()
    name, email = found
    if name and email:
        return f"{name} <{email}>"
    return name or email or None


def _guard(git_dir: str) -> str:
    return os.path.join(git_dir, "grite", "ref-lock-break.lock")


def update_ref(
    git_dir: str, update: Callable[[], T], patience: float = STALE_LOCK_SECONDS + 5
) -> T:
    """Run `update` (one dulwich ref update) until the ref's lock file lets it through.

    For updates that must happen, such as recording what a remote holds: another writer's lock is
    waited out, and one left by a killed process is broken once abandoned (grite.storage.ref_lock).

    Raises:
        Environment: the lock was held, never looking abandoned, for `patience` seconds.
    """
    deadline = time.monotonic() + patience
    while True:
        try:
            return update()
        except FileLocked as exc:
            lock = os.fsdecode(exc.lockfilename)
            if not wait_for_ref_lock(lock, _guard(git_dir), deadline):
                raise Environment(
                    f"{lock} stayed locked for {patience:.0f}s; if no git or grite process is "
                    "running, remove it and retry",
                    {"lock": lock},
                ) from exc


def update_ref_or_lose(git_dir: str, update: Callable[[], T]) -> T:
    """Run `update` (a compare-and-swap that may lose a race) once more if its lock was abandoned.

    A lock held by a live writer raises FileLocked, which the caller treats as a lost race; one
    left by a killed process is broken, so the ref is not stuck forever.
    """
    try:
        return update()
    except FileLocked as exc:
        if not break_stale_lock(os.fsdecode(exc.lockfilename), _guard(git_dir)):
            raise
    return update()
