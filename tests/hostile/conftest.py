"""Fixtures for the hostile suite: a victim clone with real issues, a real remote it syncs with
(a bare repository, or the same served by a real `git daemon` on 127.0.0.1), and an attacker
who writes crafted WAL commits straight into that remote (tests/wal_forge.py).

Every attack test ends with the same invariants (`Victim.assert_unharmed`): the command that met
the attack failed cleanly or succeeded, never with an internal error; nothing the victim had is
lost; its WAL moved only where the test expects; the view still answers; `git fsck` agrees; and
nothing was written outside the repositories.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Grite, assert_fsck_clean, git, make_repo, serve_git_daemon, wal_head
from tests.wal_forge import forge_commit, set_ref


def bare(path: Path) -> Path:
    git(path.parent, "init", "-q", "--bare", str(path))
    return path


def files_outside(root: Path, *inside: Path) -> set[str]:
    """Every file under `root` except those under the `inside` directories."""
    skip = [str(p) for p in inside]
    found = set()
    for dirpath, _dirs, names in os.walk(root):
        if any(dirpath == s or dirpath.startswith(s + os.sep) for s in skip):
            continue
        found.update(os.path.join(dirpath, n) for n in names)
    return found


@dataclass
class Victim:
    """A clone with issues of its own, in sync with `remote`, driven through the real CLI."""

    grite: Grite
    repo: Path
    remote: Path
    root: Path
    issues: list[str] = field(default_factory=list)

    def run(self, *args: str, repo: Path | None = None) -> subprocess.CompletedProcess[str]:
        proc = self.grite.run(repo or self.repo, *args)
        assert "internal error" not in proc.stdout + proc.stderr, proc.stdout + proc.stderr
        assert "Traceback" not in proc.stderr, proc.stderr
        return proc

    def ok(self, *args: str, repo: Path | None = None) -> dict[str, Any]:
        proc = self.run(*args, "--json", repo=repo)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        return json.loads(proc.stdout)["data"]  # type: ignore[no-any-return]

    def refused(self, *args: str, repo: Path | None = None) -> dict[str, Any]:
        """Run with --json; it must fail with a clean `corrupt` error (exit 5)."""
        proc = self.run(*args, "--json", repo=repo)
        assert proc.returncode == 5, proc.stdout + proc.stderr
        error = json.loads(proc.stdout)["error"]
        assert error["code"] == "corrupt", error
        return error  # type: ignore[no-any-return]

    def titles(self, repo: Path | None = None) -> list[str]:
        data = self.ok("issue", "list", "--state", "all", repo=repo)
        return sorted(i["title"] for i in data["issues"])

    def forge_on_remote(self, **kw: Any) -> str:
        """Write a crafted commit on top of the remote's WAL and move the remote's ref to it."""
        oid = forge_commit(self.remote, **kw)
        set_ref(self.remote, oid)
        return oid

    def outside(self) -> set[str]:
        return files_outside(self.root, self.repo, self.remote, self.root / "home")

    def assert_unharmed(self, head: str | None, titles: list[str]) -> None:
        """The victim holds what it held: same WAL head, same issues, every command works,
        git agrees the repository is sound, doctor has no error."""
        assert wal_head(self.repo) == head
        assert self.titles() == titles
        self.ok("issue", "show", self.issues[0])
        self.ok("issue", "create", "--title", "still writable")
        self.ok("export", "--format", "json")
        self.ok("doctor")
        assert_fsck_clean(self.repo)


@pytest.fixture
def victim(grite: Grite, tmp_path: Path) -> Victim:
    """A victim with two issues (one commented), synced with a bare remote."""
    remote = bare(tmp_path / "remote.git")
    repo = make_repo(tmp_path / "victim")
    git(repo, "remote", "add", "origin", str(remote))
    v = Victim(grite=grite, repo=repo, remote=remote, root=tmp_path)
    first = v.ok("issue", "create", "--title", "first", "--label", "bug")["issue_id"]
    v.ok("issue", "comment", first, "--body", "a comment")
    second = v.ok("issue", "create", "--title", "second")["issue_id"]
    v.issues = [first, second]
    v.ok("sync")
    return v


@pytest.fixture
def git_daemon(tmp_path: Path) -> Iterator[tuple[Path, int]]:
    """A real `git daemon` serving tmp_path/served over git:// with push enabled."""
    base = tmp_path / "served"
    base.mkdir()
    with serve_git_daemon(base) as port:
        yield base, port


@pytest.fixture
def served_victim(victim: Victim, git_daemon: tuple[Path, int]) -> Victim:
    """The victim, its remote now served by a real git daemon (git://127.0.0.1)."""
    base, port = git_daemon
    served = base / "remote.git"
    victim.remote.rename(served)
    victim.remote = served
    git(victim.repo, "remote", "set-url", "origin", f"git://127.0.0.1:{port}/remote.git")
    return victim


def downstream(v: Victim, name: str = "downstream") -> Path:
    """Another clone of the victim's remote (where poison would spread to)."""
    repo = make_repo(v.root / name)
    git(repo, "remote", "add", "origin", str(v.remote))
    return repo


def now_ms() -> int:
    return time.time_ns() // 1_000_000
