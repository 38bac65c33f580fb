"""Repository discovery: from any directory, inside a work tree or a linked worktree, find the
common git directory whose `grite/` holds grite's local state.

Linked worktrees share the main repository's `.git/grite/` (reference section 1), so discovery
resolves `.git` files and `commondir` links the way git does. Plain file reads only: this runs
on every command and must not pay for opening a repository object.
"""

from __future__ import annotations

import os
from pathlib import Path

import msgspec

from grite.model.errors import NotFound

__all__ = ["RepoPaths", "discover_repo"]


class RepoPaths(msgspec.Struct, frozen=True, kw_only=True):
    """Where one repository's state lives; all paths absolute."""

    git_dir: str
    repo_root: str

    @property
    def grite_dir(self) -> str:
        return os.path.join(self.git_dir, "grite")


def _read_gitfile(dot_git: Path) -> Path | None:
    """Resolve a `.git` file (`gitdir: <path>`) as git does for worktrees and submodules."""
    try:
        text = dot_git.read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError):
        return None
    if not text.startswith("gitdir:"):
        return None
    target = Path(text[len("gitdir:") :].strip())
    if not target.is_absolute():
        target = dot_git.parent / target
    return target.resolve()


def _common_dir(git_dir: Path) -> Path:
    commondir = git_dir / "commondir"
    try:
        rel = commondir.read_text(encoding="utf-8").strip()
    except OSError:
        return git_dir
    common = Path(rel)
    if not common.is_absolute():
        common = git_dir / common
    return common.resolve()


def _is_git_dir(path: Path) -> bool:
    # A linked worktree's git dir has no objects/, only a commondir link to the main one.
    return (path / "HEAD").is_file() and (
        (path / "objects").is_dir() or (path / "commondir").is_file()
    )


def discover_repo(cwd: str) -> RepoPaths:
    """Find the repository that contains `cwd`.

    Args:
        cwd: a directory inside a work tree, a linked worktree, or a bare repository.

    Returns:
        The common git directory and the repository root (its parent for non-bare repos).

    Raises:
        NotFound: no repository contains `cwd`.
    """
    start = Path(cwd).resolve()
    for directory in (start, *start.parents):
        dot_git = directory / ".git"
        git_dir: Path | None = None
        if dot_git.is_dir() and _is_git_dir(dot_git):
            git_dir = dot_git.resolve()
        elif dot_git.is_file():
            git_dir = _read_gitfile(dot_git)
        elif _is_git_dir(directory):  # a bare repository, or a cwd inside .git itself
            git_dir = directory
        if git_dir is not None and _is_git_dir(git_dir):
            common = _common_dir(git_dir)
            root = common.parent if common.name == ".git" else common
            return RepoPaths(git_dir=str(common), repo_root=str(root))
    raise NotFound(
        f"not a git repository (or any parent up to /): {cwd}; "
        "run grite inside a git repository, or create one with 'git init'",
        {"cwd": cwd},
    )
