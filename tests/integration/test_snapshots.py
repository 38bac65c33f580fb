"""Snapshots and rebuild on real repositories: the reference layout, create/list/gc, an empty
WAL refused, rebuild from a snapshot equal to a full rebuild with events added after the
snapshot, and the automatic snapshot past `[snapshot] max_events`."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from grite.ops.repo_handle import RepoHandle
from grite.storage.repo import discover_repo
from tests.conftest import Grite, git, wal_head


def _snapshot_refs(repo: Path) -> list[str]:
    out = git(repo, "for-each-ref", "--format=%(refname)", "refs/grite/snapshots").stdout
    return out.split()


def _projections(repo: Path) -> dict[bytes, Any]:
    """Every projection as the view on disk holds it (read in-process, no catch-up needed)."""
    handle = RepoHandle.open(discover_repo(str(repo)))
    try:
        return {s.issue_id: handle.projection(s.issue_id) for s in handle.summaries()}
    finally:
        handle.close()


def test_snapshot_of_an_empty_wal_is_refused(grite: Grite, git_repo: Path) -> None:
    code, err = grite.error(git_repo, "snapshot", "create")
    assert code == 2 and err["code"] == "invalid_args" and "nothing to snapshot" in err["message"]
    assert _snapshot_refs(git_repo) == [] and wal_head(git_repo) is None
    assert grite.json(git_repo, "snapshot", "list") == {"snapshots": [], "total": 0}


def test_snapshot_create_list_gc(grite: Grite, git_repo: Path) -> None:
    made = []
    for n in range(3):
        grite.json(git_repo, "issue", "create", "--title", f"issue {n}")
        snap = grite.json(git_repo, "snapshot", "create")
        assert snap["created"] is True and snap["event_count"] == n + 1
        assert snap["wal_head"] == wal_head(git_repo)
        made.append(snap)
    # Nothing new since the last one: no duplicate snapshot.
    again = grite.json(git_repo, "snapshot", "create")
    assert again["created"] is False and again["oid"] == made[-1]["oid"]
    listed = grite.json(git_repo, "snapshot", "list")
    assert listed["total"] == 3
    assert [s["oid"] for s in listed["snapshots"]] == [s["oid"] for s in reversed(made)]
    ref = made[0]["ref_name"]
    files = git(git_repo, "ls-tree", "-r", "--name-only", ref).stdout.split()
    assert files == ["events/0000.bin", "snapshot.json"]
    meta = json.loads(git(git_repo, "show", f"{ref}:snapshot.json").stdout)
    assert list(meta) == ["schema_version", "created_ts", "wal_head", "event_count", "chunks"]
    assert meta["chunks"][0]["path"] == "events/0000.bin" and meta["event_count"] == 1
    assert git(git_repo, "log", "--format=%P|%s", ref).stdout.strip() == (
        f"|Snapshot: 1 events at {meta['created_ts']}"
    )
    assert grite.json(git_repo, "snapshot", "gc", "--keep", "1") == {"deleted": 2, "kept": 1}
    assert _snapshot_refs(git_repo) == [made[-1]["ref_name"]]


def test_rebuild_from_snapshot_equals_full_rebuild(grite: Grite, git_repo: Path) -> None:
    a = grite.json(git_repo, "issue", "create", "--title", "A", "--label", "x")["issue_id"]
    b = grite.json(git_repo, "issue", "create", "--title", "B")["issue_id"]
    grite.json(git_repo, "issue", "comment", a, "--body", "before")
    snap = grite.json(git_repo, "snapshot", "create")
    # Events after the snapshot, touching old and new issues.
    c = grite.json(git_repo, "issue", "create", "--title", "C")["issue_id"]
    grite.json(git_repo, "issue", "update", a, "--title", "A2")
    grite.json(git_repo, "issue", "label", "remove", a, "--label", "x")
    grite.json(git_repo, "issue", "dep", "add", b, "--target", c)
    grite.json(git_repo, "issue", "close", b)
    expected = _projections(git_repo)
    got = grite.json(git_repo, "rebuild", "--from-snapshot")
    assert got["from_snapshot"] == snap["ref_name"] and got["snapshot_events"] == 3
    assert got["event_count"] == 8 and got["wal_events"] == 5 and got["issue_count"] == 3
    assert got["wal_head"] == wal_head(git_repo)
    from_snapshot = _projections(git_repo)
    full = grite.json(git_repo, "rebuild")
    assert full["from_snapshot"] is None and full["event_count"] == 8
    assert _projections(git_repo) == from_snapshot == expected
    assert expected[bytes.fromhex(a)].title == "A2"
    assert expected[bytes.fromhex(b)].state == "closed"
    assert grite.json(git_repo, "issue", "show", b)["dependencies"][0]["issue_id"] == c


def test_rebuild_from_snapshot_without_snapshots_falls_back(grite: Grite, git_repo: Path) -> None:
    grite.json(git_repo, "issue", "create", "--title", "only")
    proc = grite.run(git_repo, "rebuild", "--from-snapshot")
    assert proc.returncode == 0 and "no snapshot found" in proc.stderr
    assert "Rebuilt the view: 1 events, 1 issues" in proc.stdout


def test_automatic_snapshot_past_max_events(grite: Grite, git_repo: Path) -> None:
    grite.json(git_repo, "init", "--no-agents-md")
    config = git_repo / ".git" / "grite" / "config.toml"
    config.write_text(config.read_text() + "\n[snapshot]\nmax_events = 3\n")
    issue = grite.json(git_repo, "issue", "create", "--title", "auto")["issue_id"]
    grite.json(git_repo, "issue", "comment", issue, "--body", "one")
    assert _snapshot_refs(git_repo) == []
    grite.json(git_repo, "issue", "comment", issue, "--body", "two")
    (ref,) = _snapshot_refs(git_repo)
    meta = json.loads(git(git_repo, "show", f"{ref}:snapshot.json").stdout)
    assert meta["event_count"] == 3 and meta["wal_head"] == wal_head(git_repo)
    grite.json(git_repo, "issue", "comment", issue, "--body", "three")
    assert len(_snapshot_refs(git_repo)) == 1


def test_an_empty_view_starts_from_the_newest_snapshot_and_equals_a_full_rebuild(
    grite: Grite, git_repo: Path
) -> None:
    """A fresh clone's (or a deleted) view is seeded from the newest snapshot on the WAL's
    chain plus the WAL after it; what it shows equals a rebuild from the WAL alone."""
    ids = [
        grite.json(git_repo, "issue", "create", "--title", f"n{i}")["issue_id"] for i in range(4)
    ]
    grite.json(git_repo, "issue", "comment", ids[0], "--body", "before the snapshot")
    grite.json(git_repo, "snapshot", "create")
    grite.json(git_repo, "issue", "close", ids[1])
    grite.json(git_repo, "issue", "label", "add", ids[2], "--label", "after")
    late = grite.json(git_repo, "issue", "create", "--title", "after the snapshot")["issue_id"]

    def everything() -> list[dict[str, object]]:
        listed = grite.json(git_repo, "issue", "list", "--state", "all")["issues"]
        return [grite.json(git_repo, "issue", "show", i["issue_id"]) for i in listed]

    shutil.rmtree(git_repo / ".git" / "grite" / "view")
    seeded = everything()
    assert {v["issue_id"] for v in seeded} == {*ids, late}
    stats = grite.json(git_repo, "db", "stats")
    grite.json(git_repo, "rebuild")  # from the WAL alone
    assert everything() == seeded
    assert grite.json(git_repo, "db", "stats")["event_count"] == stats["event_count"]
    doctor = grite.run(git_repo, "doctor", "--json")
    assert doctor.returncode == 0, doctor.stdout
