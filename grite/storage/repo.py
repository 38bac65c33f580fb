"""Repository discovery: from any directory, inside a work tree or a linked worktree, find the
common git directory whose `grite/` holds grite's local state.

Linked worktrees share the main repository's `.git/grite/` (as grite 0.5.3 does), so discovery
resolves `.git` files and `commondir` links the way git does. Plain file reads only: this runs
on every command and must not pay for opening a repository object.
"""

from __future__ import annotations

import os

import msgspec

from grite.model.errors import NotFound
from grite.storage.ownership import check_ownership

__all__ = ["RepoPaths", "discover_repo"]


class RepoPaths(msgspec.Struct, frozen=True, kw_only=True):
    """Where one repository's state lives; all paths absolute."""

    git_dir: str
    repo_root: str

    @property
    def grite_dir(self) -> str:
        return os.path.join(self.git_dir, "grite")


def _read_gitfile(dot_git: str) -> str | None:
    """Resolve a `.git` file (`gitdir: <path>`) as git does for worktrees and submodules."""
    try:
        with open(dot_git, encoding="utf-8") as f:
            text = f.read().strip()
    except (OSError, UnicodeDecodeError):
        return None
    if not text.startswith("gitdir:"):
        return None
    target = text[len("gitdir:") :].strip()
    return os.path.realpath(os.path.join(os.path.dirname(dot_git), target))


def _common_dir(git_dir: str) -> str:
    try:
        with open(os.path.join(git_dir, "commondir"), encoding="utf-8") as f:
            rel = f.read().strip()
    except OSError:
        return git_dir
    return os.path.realpath(os.path.join(git_dir, rel))


def _is_git_dir(path: str) -> bool:
    # A linked worktree's git dir has no objects/, only a commondir link to the main one.
    return os.path.isfile(os.path.join(path, "HEAD")) and (
        os.path.isdir(os.path.join(path, "objects"))
        or os.path.isfile(os.path.join(path, "commondir"))
    )


def discover_repo(cwd: str) -> RepoPaths:
    """Find the repository that contains `cwd`.

    Args:
        cwd: a directory inside a work tree, a linked worktree, or a bare repository.

    Returns:
        The common git directory and the repository root (its parent for non-bare repos).

    Raises:
        NotFound: no repository contains `cwd`.
        DubiousOwnership: the repository belongs to another user (grite.storage.ownership).
    """
    # os.path rather than pathlib: the daemon runs this for every forwarded command.
    directory = os.path.realpath(cwd)
    while True:
        dot_git = os.path.join(directory, ".git")
        git_dir: str | None = None
        if os.path.isdir(dot_git) and _is_git_dir(dot_git):
            git_dir = dot_git
        elif os.path.isfile(dot_git):
            git_dir = _read_gitfile(dot_git)
        elif _is_git_dir(directory):  # a bare repository, or a cwd inside .git itself
            git_dir = directory
        if git_dir is not None and _is_git_dir(git_dir):
            common = _common_dir(git_dir)
            name = os.path.basename(common)
            root = os.path.dirname(common) if name == ".git" else common
            check_ownership(root, common)
            return RepoPaths(git_dir=common, repo_root=root)
        parent = os.path.dirname(directory)
        if parent == directory:
            break
        directory = parent
    raise NotFound(
        f"not a git repository (or any parent up to /): {cwd}; "
        "run grite inside a git repository, or create one with 'git init'",
        {"cwd": cwd},
    )
