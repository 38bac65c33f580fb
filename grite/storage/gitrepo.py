"""Opening a repository's git objects and refs with dulwich, errors translated once.

WAL, sync, lock and snapshot stores each hold their own dulwich Repo (they are used from
different threads and have different lifetimes); this is the one place that opens one.
"""

from __future__ import annotations

from dulwich.repo import Repo

from grite.model.errors import Environment

__all__ = ["open_git_repo"]


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
