"""doctor and db stats on real repositories: a healthy report, a tampered chunk and a missing
chunk blob named by commit, a deleted or garbage view rebuilt by --fix, dependency cycles that
arrive through the WAL."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from grite.model.events import DependencyAdded, IssueCreated
from grite.model.hashing import make_event
from grite.storage.wal import Wal, append_with_retry
from tests.conftest import Grite, git, wal_head

ACTOR = bytes.fromhex("22" * 16)


def _chunk(repo: Path, commit: str) -> tuple[str, str]:
    """(path in tree, blob id) of the chunk of a WAL commit."""
    for line in git(repo, "ls-tree", "-r", commit).stdout.splitlines():
        info, path = line.split("\t")
        if path.startswith("events/"):
            return path, info.split()[2]
    raise AssertionError("no chunk")


def test_healthy_repository_and_db_stats(grite: Grite, git_repo: Path) -> None:
    issue = grite.json(git_repo, "issue", "create", "--title", "fine")["issue_id"]
    grite.json(git_repo, "issue", "comment", issue, "--body", "ok")
    report = grite.json(git_repo, "doctor")
    assert report["ok"] is True and report["applied"] == []
    assert [c["id"] for c in report["checks"]] == [
        "git_repo",
        "wal",
        "actor_config",
        "view",
        "dependencies",
    ]
    assert all(c["status"] == "ok" for c in report["checks"]), report
    stats = grite.json(git_repo, "db", "stats")
    assert (stats["event_count"], stats["issue_count"]) == (2, 1)
    assert stats["wal_head"] == stats["view_head"] == wal_head(git_repo)
    assert stats["path"].endswith(os.path.join(".git", "grite", "view")) and stats["size_bytes"] > 0


def test_doctor_names_a_tampered_chunk(grite: Grite, git_repo: Path) -> None:
    grite.json(git_repo, "issue", "create", "--title", "genuine")
    head = wal_head(git_repo)
    assert head is not None
    path, blob = _chunk(git_repo, head)
    raw = subprocess.run(
        ["git", "cat-file", "blob", blob], cwd=git_repo, capture_output=True, check=True
    ).stdout
    forged_blob = (
        subprocess.run(
            ["git", "hash-object", "-w", "--stdin"],
            cwd=git_repo,
            input=raw.replace(b"genuine", b"forged!"),
            capture_output=True,
            check=True,
        )
        .stdout.decode()
        .strip()
    )
    env = {**os.environ, "GIT_INDEX_FILE": str(git_repo / "forge-index")}
    subprocess.run(["git", "read-tree", head], cwd=git_repo, env=env, check=True)
    subprocess.run(
        ["git", "update-index", "--cacheinfo", f"100644,{forged_blob},{path}"],
        cwd=git_repo,
        env=env,
        check=True,
    )
    tree = subprocess.run(
        ["git", "write-tree"], cwd=git_repo, env=env, capture_output=True, text=True, check=True
    ).stdout.strip()
    forged = git(git_repo, "commit-tree", tree, "-p", head, "-m", "forged").stdout.strip()
    git(git_repo, "update-ref", "refs/grite/wal", forged)
    # Its own bytes break the format (the blob is intact, its name is not its hash): an invalid
    # commit, ignored by every reader, which doctor names as a warning (nothing to repair).
    report = grite.json(git_repo, "doctor")
    wal = next(c for c in report["checks"] if c["id"] == "wal")
    assert wal["status"] == "warn" and f"WAL commit {forged} is invalid" in wal["message"]
    assert wal["plan"] and all(c["status"] != "error" for c in report["checks"]), report
    # --fix never rewrites refs: WAL untouched.
    grite.json(git_repo, "doctor", "--fix")
    assert wal_head(git_repo) == forged


def test_doctor_names_a_commit_whose_chunk_is_missing(grite: Grite, git_repo: Path) -> None:
    grite.json(git_repo, "issue", "create", "--title", "first")
    grite.json(git_repo, "issue", "create", "--title", "second")
    head = wal_head(git_repo)
    assert head is not None
    _path, blob = _chunk(git_repo, head)
    (git_repo / ".git" / "objects" / blob[:2] / blob[2:]).unlink()
    code, err = grite.error(git_repo, "doctor")
    assert code == 1 and head in err["message"]
    wal = next(c for c in err["details"]["checks"] if c["id"] == "wal")
    assert wal["status"] == "error" and wal["plan"]


def test_doctor_fix_rebuilds_a_deleted_or_garbage_view(grite: Grite, git_repo: Path) -> None:
    issue = grite.json(git_repo, "issue", "create", "--title", "survives")["issue_id"]
    view = git_repo / ".git" / "grite" / "view"
    shutil.rmtree(view)
    report = grite.json(git_repo, "doctor", "--fix")
    check = next(c for c in report["checks"] if c["id"] == "view")
    assert report["applied"] == ["rebuild"] and check["fixed"] is True and report["ok"]
    assert (view / "cache.db").is_file()
    db = view / "cache.db"
    db.unlink()
    db.write_bytes(b"this is not a database" * 100)
    code, err = grite.error(git_repo, "doctor")
    assert code == 1 and "not an SQLite database" in err["message"]
    report = grite.json(git_repo, "doctor", "--fix")
    assert report["applied"] == ["rebuild"] and report["ok"]
    assert db.read_bytes().startswith(b"SQLite format 3\0")
    assert grite.json(git_repo, "doctor")["applied"] == []
    assert grite.json(git_repo, "issue", "show", issue)["title"] == "survives"


def test_doctor_reports_dependency_cycles_from_the_wal(grite: Grite, git_repo: Path) -> None:
    # Two clones each added one edge; merged, they form a cycle no single write could make.
    a, b = os.urandom(16), os.urandom(16)
    events = [
        make_event(
            issue_id=i,
            actor=ACTOR,
            ts_unix_ms=1000,
            kind=IssueCreated(title="t", body="", labels=[]),
        )
        for i in (a, b)
    ] + [
        make_event(
            issue_id=a,
            actor=ACTOR,
            ts_unix_ms=2000,
            kind=DependencyAdded(target=b, dep_type="blocks"),
        ),
        make_event(
            issue_id=b,
            actor=ACTOR,
            ts_unix_ms=2000,
            kind=DependencyAdded(target=a, dep_type="blocks"),
        ),
    ]
    append_with_retry(Wal(str(git_repo / ".git")), ACTOR, events)
    report = grite.json(git_repo, "doctor")
    deps = next(c for c in report["checks"] if c["id"] == "dependencies")
    assert deps["status"] == "warn" and "blocks" in deps["message"]
    assert min(a, b).hex()[:8] in deps["message"] and report["ok"] is True
