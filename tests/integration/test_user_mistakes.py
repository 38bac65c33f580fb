"""A user's mistakes get clear errors with a next step, never "internal error" (issue 16,
items 3, 6, 7 and 11): each case of the issue is fed to the real command, in-process and
through the daemon, and the output is checked for what the user reads."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.conftest import Grite, git, make_repo, wal_commit_count


def _no_internal(proc: subprocess.CompletedProcess[str]) -> str:
    text = proc.stdout + proc.stderr
    assert "internal" not in text and "bug in grite" not in text, text
    assert "Traceback" not in text, text
    return text


def _issue(grite: Grite, repo: Path, title: str = "t", *extra: str) -> str:
    return grite.json(repo, "issue", "create", "--title", title, *extra)["issue_id"]  # type: ignore[no-any-return]


@contextmanager
def _read_only(git_dir: Path) -> Iterator[None]:
    """`git_dir` on a read-only bind mount (root ignores file modes; a mount does not)."""
    subprocess.run(["mount", "--bind", str(git_dir), str(git_dir)], check=True)
    try:
        subprocess.run(["mount", "-o", "remount,ro,bind", str(git_dir)], check=True)
        yield
    finally:
        # Lazy: a daemon may still hold files open under it; the mount goes when they close.
        subprocess.run(["umount", "-l", str(git_dir)], check=True)


def test_an_argument_that_is_not_utf8_is_a_clear_error(grite: Grite, git_repo: Path) -> None:
    bad = os.fsdecode(b"\xff\xfe")  # what Python makes of `--body "$(printf '\xff\xfe')"`
    proc = grite.run(git_repo, "issue", "create", "--title", "x", "--body", bad)
    text = _no_internal(proc)
    assert proc.returncode == 2 and "not valid UTF-8" in text and "iconv" in text, text
    assert wal_commit_count(git_repo) == 0
    code, err = grite.error(git_repo, "issue", "create", "--title", bad)
    assert code == 2 and err["code"] == "invalid_args" and err["details"]["argument"] == 4


def test_a_read_only_git_dir_is_an_environment_error_without_doctor(
    grite: Grite, tmp_path: Path
) -> None:
    if os.geteuid() != 0:
        pytest.fail("a read-only bind mount needs root (CI runs as root)")
    upstream = tmp_path / "up.git"
    git(tmp_path, "init", "-q", "--bare", str(upstream))
    source = make_repo(tmp_path / "src")
    git(source, "remote", "add", "origin", str(upstream))
    _issue(grite, source, "shared")
    grite.json(source, "sync", "--push")
    clone = tmp_path / "clone"
    git(tmp_path, "clone", "-q", str(upstream), str(clone))
    with _read_only(clone / ".git"):
        for args in (("sync", "--pull"), ("issue", "list"), ("issue", "create", "--title", "x")):
            proc = grite.run(clone, *args)
            text = _no_internal(proc)
            assert proc.returncode == 5, text
            assert "read-only file system" in text and ".git" in text, text
            assert "doctor" not in text, text
    # A failed command leaves no actor behind (issue 16, item 10).
    assert not (clone / ".git" / "grite" / "actors").exists()
    # A warm repository (the daemon has it open) pulls into a read-only .git: same answer.
    grite.json(clone, "issue", "list")
    with _read_only(clone / ".git"):
        proc = grite.run(clone, "sync", "--pull")
        text = _no_internal(proc)
        assert proc.returncode == 5 and "read-only file system" in text, text


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (("issue", "create", "--title", "two\nlines"), "contains a newline"),
        (("issue", "create", "--title", "t", "--label", "a\tb"), "contains a tab"),
        (("issue", "create", "--title", "t", "--label", ","), "a label must not be empty"),
    ],
)
def test_loose_input_is_refused_before_anything_is_written(
    grite: Grite, git_repo: Path, args: tuple[str, ...], expected: str
) -> None:
    code, err = grite.error(git_repo, *args)
    assert code == 2 and err["code"] == "invalid_args" and expected in err["message"], err
    assert wal_commit_count(git_repo) == 0


def test_a_nul_byte_in_a_body_is_refused(grite: Grite, git_repo: Path) -> None:
    code, err = grite.error(
        git_repo, "issue", "create", "--title", "t", "--body", "-", input="a\x00b"
    )
    assert code == 2 and "NUL byte" in err["message"], err
    assert wal_commit_count(git_repo) == 0


def test_a_body_over_the_limit_names_the_limit_and_what_to_do(grite: Grite, git_repo: Path) -> None:
    body = "x" * (5 * 1024 * 1024)
    code, err = grite.error(
        git_repo, "issue", "create", "--title", "big", "--body", "-", input=body
    )
    assert code == 2 and "5,242,880 characters" in err["message"], err
    assert "attachment add" in err["message"]
    assert wal_commit_count(git_repo) == 0


def test_link_urls_and_empty_users_get_their_own_words(grite: Grite, git_repo: Path) -> None:
    issue = _issue(grite, git_repo)
    for bad in ("not a url", "example.com/x", "https://", "http:///path"):
        code, err = grite.error(git_repo, "issue", "link", "add", issue, "--url", bad)
        assert code == 2 and "is not a URL" in err["message"], (bad, err)
    for good in ("https://example.com/ci/1", "mailto:a@example.com", "file:///tmp/log"):
        grite.json(git_repo, "issue", "link", "add", issue, "--url", good)
    code, err = grite.error(git_repo, "issue", "assignee", "add", issue, "--user", "")
    assert "a user must not be empty" in err["message"] and "label" not in err["message"]


def test_commas_separate_labels_and_case_follows_the_existing_spelling(
    grite: Grite, git_repo: Path
) -> None:
    first = _issue(grite, git_repo, "a", "--label", "bug,p1")
    assert grite.json(git_repo, "issue", "show", first)["labels"] == ["bug", "p1"]
    proc = grite.run(git_repo, "issue", "create", "--title", "b", "--label", "Bug", "--json")
    assert proc.returncode == 0, proc.stderr
    assert "using the existing label 'bug' for 'Bug'" in proc.stderr
    listed = grite.json(git_repo, "issue", "list", "--label", "BUG")
    assert sorted(i["title"] for i in listed["issues"]) == ["a", "b"]
    assert all(i["labels"][0] == "bug" for i in listed["issues"])
    grite.json(git_repo, "issue", "label", "remove", first, "--label", "P1")
    assert grite.json(git_repo, "issue", "show", first)["labels"] == ["bug"]


def test_closing_a_closed_issue_writes_nothing_and_close_takes_a_comment(
    grite: Grite, git_repo: Path
) -> None:
    issue = _issue(grite, git_repo)
    grite.run(git_repo, "issue", "close", issue, "--comment", "fixed in abc123", check=True)
    shown = grite.json(git_repo, "issue", "show", issue)
    assert shown["state"] == "closed" and shown["comments"][0]["body"] == "fixed in abc123"
    commits = wal_commit_count(git_repo)
    assert commits == 2  # create, then the comment and the close in one commit
    again = grite.run(git_repo, "issue", "close", issue)
    assert again.returncode == 0 and "already closed; nothing written" in again.stdout
    assert wal_commit_count(git_repo) == commits
    log = git(git_repo, "log", "--format=%s", "refs/grite/wal").stdout.split("\n")
    assert log[0] == log[0].replace("1 events", "") and "WAL: 2 events from" in log[0]
    assert "WAL: 1 event from" in log[1]


def test_misspelt_options_get_a_did_you_mean(grite: Grite, git_repo: Path) -> None:
    proc = grite.run(git_repo, "issue", "create", "--tittle", "x")
    assert proc.returncode == 2 and "unknown option --tittle (did you mean --title?)" in proc.stderr
    assert "usage: grite issue create" in proc.stderr and "\\n" not in proc.stderr
    proc = grite.run(git_repo, "issue", "create", "--title", "x", "--lable", "bug")
    assert proc.returncode == 2 and "did you mean --label?" in proc.stderr, proc.stderr
    assert wal_commit_count(git_repo) == 0


def test_help_names_each_default_once(grite: Grite, git_repo: Path) -> None:
    out = grite.run(git_repo, "issue", "list", "--help", check=True).stdout
    assert "(default: open)" in out and "'open'" not in out and "(default: -)" not in out


def test_lock_acquire_without_ttl_never_shortens_a_lease(grite: Grite, git_repo: Path) -> None:
    grite.json(git_repo, "init", "--no-agents-md")
    long = grite.json(git_repo, "lock", "acquire", "repo:global", "--ttl", "10m")
    again = grite.json(git_repo, "lock", "acquire", "repo:global")
    assert again["expires_unix_ms"] == long["expires_unix_ms"]
    assert 500 < again["ttl_seconds"] <= 600


def test_daemon_status_exits_3_when_none_runs(grite_local: Grite, git_repo: Path) -> None:
    proc = grite_local.run(git_repo, "daemon", "status")
    assert proc.returncode == 3 and "not running" in proc.stdout
