"""A person's first steps and what they read (issue 16, items 5, 9 and 10): names instead of
hex, readable exports, a hint after a plain `git clone`, a note when the first write sets grite
up, nothing left behind by a failed command. Runs in-process and through the daemon."""

from __future__ import annotations

import json
import re
from pathlib import Path

from tests.conftest import Grite, git, make_repo


def test_actors_are_named_after_git_and_claims_use_a_handle(grite: Grite, git_repo: Path) -> None:
    # make_repo sets user.name "Test" and user.email test@example.com.
    created = grite.run(git_repo, "issue", "create", "--title", "first", "--json")
    assert created.returncode == 0, created.stderr
    assert "set up grite in this repository: you write as test-" in created.stderr
    issue = json.loads(created.stdout)["data"]["issue_id"]
    me = grite.json(git_repo, "actor", "current")
    assert grite.json(git_repo, "actor", "show")["label"] == "Test <test@example.com>"
    handle = f"test-{me['actor_id'][:8]}"
    grite.run(git_repo, "issue", "comment", issue, "--body", "seen", check=True)
    claimed = grite.json(git_repo, "issue", "ready", "--claim", "--local")
    assert claimed["assignee"] == handle and claimed["lease_owner"] == me["actor_id"]
    shown = grite.run(git_repo, "issue", "show", issue, check=True).stdout
    assert f"by Test ({me['actor_id'][:8]})" in shown
    assert f"  Test ({me['actor_id'][:8]}) at " in shown
    assert f"Assignees: {handle}" in shown
    data = grite.json(git_repo, "issue", "show", issue)
    assert data["author"] == me["actor_id"] and len(data["author"]) == 32  # JSON: full ids
    assert data["author_label"] == "Test <test@example.com>"
    assert data["assignees"] == [handle]
    # The second write says nothing about setting up.
    again = grite.run(git_repo, "issue", "create", "--title", "second")
    assert again.returncode == 0 and again.stderr == ""
    prime = grite.run(git_repo, "prime", check=True).stdout
    assert "first (you; lease you" in prime


def test_a_failed_command_leaves_no_actor_behind(grite: Grite, git_repo: Path) -> None:
    git(git_repo, "remote", "add", "origin", str(git_repo.parent / "missing.git"))
    proc = grite.run(git_repo, "sync")
    assert proc.returncode == 5, proc.stdout + proc.stderr
    actors = git_repo / ".git" / "grite" / "actors"
    assert not actors.exists() or not any(actors.iterdir())
    assert grite.json(git_repo, "actor", "list")["actors"] == []


def test_a_fresh_clone_hints_at_sync_pull(grite: Grite, tmp_path: Path) -> None:
    upstream = tmp_path / "up.git"
    git(tmp_path, "init", "-q", "--bare", str(upstream))
    source = make_repo(tmp_path / "src")
    git(source, "remote", "add", "origin", str(upstream))
    grite.json(source, "issue", "create", "--title", "shared")
    grite.json(source, "sync", "--push")
    clone = tmp_path / "clone"
    git(tmp_path, "clone", "-q", str(upstream), str(clone))
    out = grite.run(clone, "issue", "list", check=True).stdout
    assert "Hint: this clone has no grite history yet; if 'origin' has issues" in out
    assert "'grite sync --pull'" in out
    grite.json(clone, "sync", "--pull")
    assert "Hint" not in grite.run(clone, "issue", "list", check=True).stdout
    # No remote, no hint.
    alone = make_repo(tmp_path / "alone")
    assert "Hint" not in grite.run(alone, "issue", "list", check=True).stdout


def test_init_in_a_bare_repository_writes_no_agents_md(grite: Grite, tmp_path: Path) -> None:
    bare = tmp_path / "bare.git"
    git(tmp_path, "init", "-q", "--bare", str(bare))
    data = grite.json(bare, "init")
    assert data["agents_md_path"] is None and not (bare / "AGENTS.md").exists()


def test_exports_read_well(grite: Grite, git_repo: Path) -> None:
    a = grite.json(git_repo, "issue", "create", "--title", "A", "--body", "the body")["issue_id"]
    b = grite.json(git_repo, "issue", "create", "--title", "B")["issue_id"]
    grite.json(git_repo, "issue", "comment", a, "--body", "a comment")
    grite.json(git_repo, "issue", "dep", "add", a, "--target", b)
    grite.json(git_repo, "issue", "link", "add", a, "--url", "https://example.com/ci/1")
    md = grite.json(git_repo, "export", "--format", "md")["content"]
    iso = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ"
    assert re.search(rf"^Generated: {iso}$", md, re.M), md
    assert re.search(rf"> \*\*Test \([0-9a-f]{{8}}\)\*\* at {iso}:\n> a comment", md), md
    assert f"- depends on `{b[:12]}` B [open]" in md
    assert "- <https://example.com/ci/1>" in md
    assert not re.search(r"\b1[0-9]{12}\b", md), "a raw millisecond timestamp"
    doc = json.loads(grite.json(git_repo, "export", "--format", "json")["content"])
    first = next(i for i in doc["issues"] if i["issue_id"] == a)
    assert first["body"] == "the body" and first["comments"][0]["body"] == "a comment"
    assert first["dependencies"][0]["issue_id"] == b
    assert first["links"][0]["url"] == "https://example.com/ci/1"
    for since in ("1h", "2020-01-01", "2020-01-01T10:00", "2020-01-01T10:00+02:00"):
        got = json.loads(
            grite.json(git_repo, "export", "--format", "json", "--since", since)["content"]
        )
        assert got["meta"]["event_count"] == 5, since
    future = json.loads(
        grite.json(git_repo, "export", "--format", "json", "--since", "2999-01-01")["content"]
    )
    assert future["meta"]["event_count"] == 0
    code, err = grite.error(git_repo, "export", "--format", "md", "--since", "yesterday")
    assert code == 2 and "a duration before now (30m, 1h, 2d, 1w)" in err["message"]
