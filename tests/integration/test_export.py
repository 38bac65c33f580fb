"""`grite export` on a real repository, in both modes: JSON shape, Markdown, `--since` in both
forms, `-o FILE` and bad input."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tests.conftest import Grite, wal_head


def _populate(grite: Grite, repo: Path) -> tuple[str, str]:
    x = grite.json(
        repo, "issue", "create", "--title", "First", "--body", "the body", "--label", "bug"
    )
    y = grite.json(repo, "issue", "create", "--title", "Second")
    grite.json(repo, "issue", "comment", x["issue_id"], "--body", "line one\nline two")
    grite.json(repo, "issue", "dep", "add", y["issue_id"], "--target", x["issue_id"])
    return x["issue_id"], y["issue_id"]


def _export(grite: Grite, repo: Path, *args: str) -> dict[str, Any]:
    proc = grite.run(repo, "export", "--format", "json", *args, check=True)
    return json.loads(proc.stdout)  # type: ignore[no-any-return]


def test_export_json_document(grite: Grite, git_repo: Path) -> None:
    x, y = _populate(grite, git_repo)
    doc = _export(grite, git_repo)
    assert set(doc) == {"meta", "issues", "events"}
    meta = doc["meta"]
    assert meta["schema_version"] == 1 and meta["event_count"] == 4 == len(doc["events"])
    assert meta["wal_head"] == wal_head(git_repo) and isinstance(meta["generated_ts"], int)
    assert [i["issue_id"] for i in doc["issues"]] == [x, y]
    first = doc["issues"][0]
    assert {k: v for k, v in first.items() if k not in ("comments", "dependencies")} == {
        "issue_id": x,
        "title": "First",
        "state": "open",
        "labels": ["bug"],
        "assignees": [],
        "created_ts": first["created_ts"],
        "updated_ts": first["updated_ts"],
        "comment_count": 1,
        "body": "the body",
        "links": [],
    }
    assert [c["body"] for c in first["comments"]] == ["line one\nline two"]
    events = doc["events"]
    keys = [(e["issue_id"], e["ts_unix_ms"], e["actor"], e["event_id"]) for e in events]
    assert keys == sorted(keys)
    assert all(len(e["event_id"]) == 64 and "parent" not in e for e in events)
    kinds = {next(iter(e["kind"])): e["kind"] for e in events if e["issue_id"] == x}
    kinds.update({next(iter(e["kind"])): e["kind"] for e in events if e["issue_id"] == y})
    created_x = next(
        e["kind"] for e in events if e["issue_id"] == x and "IssueCreated" in e["kind"]
    )
    assert created_x["IssueCreated"] == {
        "title": "First",
        "body": "the body",
        "labels": ["bug"],
    }
    assert kinds["DependencyAdded"]["DependencyAdded"] == {"target": x, "dep_type": "depends_on"}


def test_export_markdown(grite: Grite, git_repo: Path) -> None:
    empty = grite.run(git_repo, "export", "--format", "md", check=True).stdout
    assert empty.startswith("# grite Export\n\nGenerated: ") and empty.endswith(
        "No issues found.\n"
    )
    x, _y = _populate(grite, git_repo)
    md = grite.run(git_repo, "export", "--format", "md", check=True).stdout
    assert "## Issues\n\n### First [open]\n\n" in md
    assert f"**ID:** `{x}`\n\n**Opened:** " in md
    assert "\n\n**Labels:** bug\n\n**Comments:** 1\n\n> the body\n\n" in md
    assert "#### Comments\n\n> **" in md and ":\n> line one\n> line two\n\n---\n\n" in md
    assert md.count("**ID:**") == 2


def test_export_since_timestamp_and_event_id(grite: Grite, git_repo: Path) -> None:
    _populate(grite, git_repo)
    wal_order = sorted(_export(grite, git_repo)["events"], key=lambda e: e["ts_unix_ms"])
    cutoff = wal_order[1]["ts_unix_ms"]
    by_ts = _export(grite, git_repo, "--since", str(cutoff))
    assert all(e["ts_unix_ms"] > cutoff for e in by_ts["events"])
    assert by_ts["meta"]["event_count"] == sum(1 for e in wal_order if e["ts_unix_ms"] > cutoff)
    # Event id: everything after that event in WAL order (one event per commit here).
    comment = next(e for e in wal_order if "CommentAdded" in e["kind"])
    after = _export(grite, git_repo, "--since", comment["event_id"])
    assert [next(iter(e["kind"])) for e in after["events"]] == ["DependencyAdded"]
    assert len(after["issues"]) == 1 and after["issues"][0]["title"] == "Second"
    assert _export(grite, git_repo, "--since", "99999999999999")["events"] == []


def test_export_to_file_and_json_envelope(grite: Grite, git_repo: Path) -> None:
    _populate(grite, git_repo)
    out = git_repo / "out" / "issues.json"
    proc = grite.run(git_repo, "export", "--format", "json", "-o", "out/issues.json", check=True)
    assert proc.stdout == f"Exported 2 issues and 4 events to {out}\n"
    assert json.loads(out.read_text())["meta"]["event_count"] == 4
    data = grite.json(git_repo, "export", "--format", "md", "--output", str(git_repo / "x.md"))
    assert data["output_path"] == str(git_repo / "x.md") and data["content"] is None
    assert (git_repo / "x.md").read_text().startswith("# grite Export")
    inline = grite.json(git_repo, "export", "--format", "json")
    assert inline["output_path"] is None and inline["event_count"] == 4
    assert json.loads(inline["content"])["meta"]["wal_head"] == inline["wal_head"]


def test_export_rejects_bad_since(grite: Grite, git_repo: Path) -> None:
    _populate(grite, git_repo)
    code, err = grite.error(git_repo, "export", "--format", "json", "--since", "yesterday")
    assert code == 2 and err["code"] == "invalid_args" and "--since" in err["message"]
    code, err = grite.error(git_repo, "export", "--format", "json", "--since", "ab" * 32)
    assert code == 3 and err["code"] == "not_found"
    code, _err = grite.error(git_repo, "export", "--format", "xml")
    assert code == 2
    assert not list(git_repo.glob("*.json"))
