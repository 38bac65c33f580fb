"""Ownership like git's: grite does not open a repository another user owns.

A repository is data its owner controls: its config names programs (core.sshCommand,
credential helpers, hooks) and its `.git/grite/` is a directory they can fill with symlinks.
Run there by another user, grite would act on the owner's behalf with that user's rights. So,
as git does since 2.35.2 ("detected dubious ownership", https://git-scm.com/docs/git-config
#Documentation/git-config.txt-safedirectory), grite refuses a repository whose work tree, git
directory or `.git/grite/` is owned by another uid, unless the user's own `safe.directory`
(system or global config, never the repository's) lists it or is `*`.

The common case costs three lstat calls; git is asked for `safe.directory` only when an owner
differs.
"""

from __future__ import annotations

import os
import subprocess

from grite.model.errors import Environment

__all__ = ["DubiousOwnership", "check_ownership", "safe_directories"]


class DubiousOwnership(Environment):
    """The repository is owned by another user and safe.directory does not allow it."""


def _owner(path: str) -> int | None:
    try:
        return os.lstat(path).st_uid
    except OSError:
        return None


def safe_directories() -> list[str]:
    """The user's `safe.directory` values, system then global config (an empty value resets
    the list, as in git), read by git itself so that includes work as in git. Run from `/`
    with --system/--global: a repository's own config is never read (git ignores
    safe.directory there too)."""
    lines: list[str] = []
    for scope in ("--system", "--global"):
        try:
            proc = subprocess.run(
                ["git", "config", scope, "--get-all", "safe.directory"],
                cwd="/",
                capture_output=True,
                text=True,
                timeout=30,
                check=False,
            )
        except (OSError, subprocess.TimeoutExpired):
            continue
        lines += proc.stdout.splitlines()
    values: list[str] = []
    for line in lines:
        if line == "":
            values = []
        else:
            values.append(line)
    return values


def _allowed(candidates: list[str], values: list[str]) -> bool:
    for value in values:
        if value == "*":
            return True
        path = os.path.expanduser(value)
        if path.endswith("/*"):
            prefix = os.path.realpath(path[:-2]) + os.sep
            if any(c.startswith(prefix) for c in candidates):
                return True
        elif os.path.realpath(path) in candidates:
            return True
    return False


def check_ownership(repo_root: str, git_dir: str) -> None:
    """Refuse a repository owned by another user unless safe.directory allows it.

    Raises:
        DubiousOwnership: with git's wording of the fix.
    """
    ours = {os.geteuid()}
    grite_dir = os.path.join(git_dir, "grite")
    foreign = [
        (path, uid)
        for path in dict.fromkeys((repo_root, git_dir, grite_dir))
        if (uid := _owner(path)) is not None and uid not in ours
    ]
    if not foreign:
        return
    candidates = [os.path.realpath(repo_root), os.path.realpath(git_dir)]
    if _allowed(candidates, safe_directories()):
        return
    path, uid = foreign[0]
    raise DubiousOwnership(
        f"detected dubious ownership in repository at '{repo_root}': {path} is owned by uid "
        f"{uid}, not by you (uid {os.geteuid()}); grite, like git, does not run in another "
        "user's repository. To add an exception for this directory, call:\n\n"
        f"\tgit config --global --add safe.directory {repo_root}",
        {"path": path, "owner_uid": uid, "repo_root": repo_root},
    )
