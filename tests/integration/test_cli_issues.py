"""The issue tracker as a user drives it: the real `grite` command on real git repositories,
checked with the real `git` CLI. Runs in both modes (in-process and through the daemon)."""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path

import pytest

from grite.model.events import IssueCreated
from grite.model.hashing import make_event
from grite.storage.wal import Wal, append_with_retry

if sys.version_info >= (3, 11):
    import tomllib
else:
    import tomli as tomllib

from tests.conftest import Grite, assert_fsck_clean, git, wal_commit_count, wal_head


def _create(grite: Grite, repo: Path, title: str, *extra: str) -> str:
    data = grite.json(repo, "issue", "create", "--title", title, *extra)
    assert data["action"] == "created"
    return data["issue_id"]  # type: ignore[no-any-return]


def test_full_workflow_writes_one_wal_commit_per_write_and_keeps_git_clean(
    grite: Grite, git_repo: Path
) -> None:
    init = grite.json(git_repo, "init")
    assert init["action"] == "created"
    assert (git_repo / "AGENTS.md").read_text().count("## Grite") == 1

    writes = 0
    issue = _create(grite, git_repo, "Crash on start", "--body", "segfault", "--label", "bug")
    writes += 1
    steps = [
        ("issue", "comment", issue, "--body", "reproduced on main"),
        ("issue", "label", "add", issue, "--label", "p1"),
        ("issue", "label", "remove", issue, "--label", "bug"),
        ("issue", "assignee", "add", issue, "--user", "alice"),
        ("issue", "link", "add", issue, "--url", "https://example.com/ci/1", "--note", "CI run"),
        (
            "issue", "attachment", "add", issue, "--name", "core.txt",
            "--sha256", hashlib.sha256(b"core").hexdigest(), "--mime", "text/plain",
        ),
        ("issue", "update", issue, "--title", "Crash on start-up"),
        ("issue", "close", issue),
    ]  # fmt: skip
    for step in steps:
        before = wal_head(git_repo)
        grite.json(git_repo, *step)
        writes += 1
        assert wal_head(git_repo) != before
        assert wal_commit_count(git_repo) == writes
        assert_fsck_clean(git_repo)

    log = git(git_repo, "log", "--format=%s", "refs/grite/wal").stdout.splitlines()
    assert len(log) == writes and all(line.startswith("WAL: 1 event from ") for line in log)

    shown = grite.json(git_repo, "issue", "show", issue[:6])
    assert shown["title"] == "Crash on start-up"
    assert shown["state"] == "closed"
    assert shown["labels"] == ["p1"]
    assert shown["assignees"] == ["alice"]
    assert [c["body"] for c in shown["comments"]] == ["reproduced on main"]
    assert shown["links"][0]["url"] == "https://example.com/ci/1"
    assert shown["attachments"][0]["name"] == "core.txt"

    assert grite.json(git_repo, "issue", "list")["issues"] == []
    closed = grite.json(git_repo, "issue", "list", "--state", "closed")["issues"]
    assert [i["issue_id"] for i in closed] == [issue]
    grite.json(git_repo, "issue", "reopen", issue)
    assert grite.json(git_repo, "issue", "show", issue)["state"] == "open"


def test_human_output_is_a_table_and_a_readable_page(grite: Grite, git_repo: Path) -> None:
    grite.run(git_repo, "init", check=True)
    issue = _create(grite, git_repo, "Readable output", "--label", "ux")
    grite.run(git_repo, "issue", "comment", issue, "--body", "looks fine", check=True)
    listing = grite.run(git_repo, "issue", "list", check=True).stdout
    header, row = listing.splitlines()[:2]
    assert header.split() == ["ID", "STATE", "UPDATED", "LABELS", "TITLE"]
    assert row.startswith(issue[:12]) and row.endswith("Readable output")
    assert header.index("TITLE") == row.index("Readable output")
    page = grite.run(git_repo, "issue", "show", issue, check=True).stdout
    assert page.splitlines()[0] == "Readable output"
    assert "Labels: ux" in page and "Comments (1):" in page and "looks fine" in page


def test_list_filters_sort_and_limit(grite: Grite, git_repo: Path) -> None:
    a = _create(grite, git_repo, "Alpha parser bug", "--label", "bug", "--label", "parser")
    b = _create(grite, git_repo, "beta docs", "--label", "docs", "--body", "mentions PARSER")
    c = _create(grite, git_repo, "Gamma", "--label", "bug")
    grite.json(git_repo, "issue", "assignee", "add", c, "--user", "bob")
    grite.json(git_repo, "issue", "close", b)

    def ids(*args: str) -> list[str]:
        return [i["issue_id"] for i in grite.json(git_repo, "issue", "list", *args)["issues"]]

    # Newest first (issue 16); --reverse for oldest first.
    assert ids() == [c, a]
    assert ids("--reverse") == [a, c]
    assert ids("--state", "all") == [c, b, a]
    assert ids("--label", "bug") == [c, a]
    assert ids("--label", "bug", "--label", "parser") == [a]
    assert ids("--assignee", "bob") == [c]
    assert ids("--state", "all", "--search", "parser") == [b, a]
    assert ids("--state", "all", "--sort", "title") == [a, b, c]
    assert ids("--state", "all", "--sort", "title", "--reverse") == [c, b, a]
    assert ids("--state", "all", "--sort", "updated")[0] == b
    assert ids("--state", "all", "--limit", "2") == [c, b]
    assert ids("--state", "all", "--limit", "2", "--reverse") == [a, b]


def test_body_dash_reads_stdin(grite: Grite, git_repo: Path) -> None:
    issue = grite.json(
        git_repo,
        "issue",
        "create",
        "--title",
        "From stdin",
        "--body",
        "-",
        input="line 1\nline 2\n",
    )["issue_id"]
    grite.json(git_repo, "issue", "comment", issue, "--body", "-", input="a comment\n")
    shown = grite.json(git_repo, "issue", "show", issue)
    assert shown["body"] == "line 1\nline 2\n"
    assert shown["comments"][0]["body"] == "a comment\n"


def test_dependencies_add_list_topo_and_refuse_cycles(grite: Grite, git_repo: Path) -> None:
    a = _create(grite, git_repo, "A")
    b = _create(grite, git_repo, "B")
    c = _create(grite, git_repo, "C")
    grite.json(git_repo, "issue", "dep", "add", a, "--target", b)
    grite.json(git_repo, "issue", "dep", "add", b, "--target", c, "--type", "depends_on")
    before = wal_head(git_repo)
    code, err = grite.error(git_repo, "issue", "dep", "add", c, "--target", a)
    assert (code, err["code"]) == (4, "conflict") and "cycle" in err["message"]
    code, err = grite.error(git_repo, "issue", "dep", "add", a, "--target", a)
    assert code == 4
    assert wal_head(git_repo) == before
    deps = grite.json(git_repo, "issue", "dep", "list", a)
    assert deps["deps"] == [
        {"issue_id": b, "dep_type": "depends_on", "title": "B", "state": "open"}
    ]
    rev = grite.json(git_repo, "issue", "dep", "list", c, "--reverse")
    assert [d["issue_id"] for d in rev["deps"]] == [b]
    order = [i["issue_id"] for i in grite.json(git_repo, "issue", "dep", "topo")["issues"]]
    assert order == [c, b, a]
    grite.json(git_repo, "issue", "dep", "remove", a, "--target", b)
    assert grite.json(git_repo, "issue", "dep", "list", a)["deps"] == []
    grite.json(git_repo, "issue", "dep", "add", c, "--target", a, "--type", "related_to")


@pytest.mark.parametrize(
    ("args", "exit_code", "code", "needle"),
    [
        (("issue", "show", "zzzz"), 2, "invalid_args", "hex"),
        (("issue", "show", "abc"), 2, "invalid_args", "at least 4"),
        (("issue", "show", "abcd"), 3, "not_found", "grite issue list"),
        (("issue", "show", "0" * 32), 3, "not_found", "not found"),
        (("issue", "create", "--title", "  "), 2, "invalid_args", "title"),
        (("issue", "create"), 2, "invalid_args", "--title"),
        (("issue", "list", "--bogus"), 2, "invalid_args", "--bogus"),
        (("issue", "list", "--state", "weird"), 2, "invalid_args", "state"),
        (("issue", "frobnicate"), 2, "invalid_args", "frobnicate"),
        (("issue", "update", "{A}"), 2, "invalid_args", "--title"),
        (("issue", "dep", "add", "{A}", "--target", "{A}", "--type", "enemy_of"), 2, "invalid_args", "blocks, depends_on, related_to"),
        (("issue", "attachment", "add", "{A}", "--name", "x", "--sha256", "abc", "--mime", "a/b"), 2, "invalid_args", "64 hex"),
        (("actor", "use", "nothex"), 2, "invalid_args", "hex"),
    ],
)  # fmt: skip
def test_bad_input_gets_a_clear_error_and_writes_nothing(
    grite: Grite, git_repo: Path, args: tuple[str, ...], exit_code: int, code: str, needle: str
) -> None:
    a = _create(grite, git_repo, "Existing")
    before = wal_head(git_repo)
    args = tuple(x.replace("{A}", a) for x in args)
    got_code, err = grite.error(git_repo, *args)
    assert (got_code, err["code"]) == (exit_code, code), err
    assert needle in err["message"]
    assert wal_head(git_repo) == before
    # Without --json the message goes to stderr, nothing to stdout.
    proc = grite.run(git_repo, *args)
    assert proc.returncode == exit_code and proc.stdout == ""
    assert proc.stderr.startswith("error: ")


def test_ambiguous_prefix_lists_the_candidates(grite: Grite, git_repo: Path) -> None:
    actor = bytes(16)
    wal = Wal(str(git_repo / ".git"))
    for suffix in ("00", "11"):
        issue_id = bytes.fromhex("abcd" + suffix * 14)
        event = make_event(
            issue_id=issue_id,
            actor=actor,
            ts_unix_ms=1_700_000_000_000,
            kind=IssueCreated(title=f"issue {suffix}", body="", labels=[]),
        )
        append_with_retry(wal, actor, [event])
    code, err = grite.error(git_repo, "issue", "show", "abcd")
    assert (code, err["code"]) == (2, "invalid_args")
    assert "ambiguous" in err["message"] and "abcd00" in err["message"]
    assert grite.json(git_repo, "issue", "show", "abcd1")["title"] == "issue 11"
    code, err = grite.error(git_repo, "issue", "show", "abcd" + "00" * 14 + "0")
    assert code == 2 and "too long" in err["message"]


def test_not_a_git_repository(grite: Grite, tmp_path: Path) -> None:
    outside = tmp_path / "plain"
    outside.mkdir()
    code, err = grite.error(outside, "issue", "list")
    assert (code, err["code"]) == (3, "not_found")
    assert "not a git repository" in err["message"] and "git init" in err["message"]
    assert not (outside / ".git").exists()


def test_subdirectory_and_linked_worktree_share_the_repository(
    grite: Grite, git_repo: Path, tmp_path: Path
) -> None:
    (git_repo / "src" / "deep").mkdir(parents=True)
    (git_repo / "README").write_text("x")
    git(git_repo, "add", "README")
    git(git_repo, "commit", "-qm", "init")
    issue = _create(grite, git_repo / "src" / "deep", "From a subdirectory")
    worktree = tmp_path / "wt"
    git(git_repo, "worktree", "add", "-q", str(worktree))
    listed = grite.json(worktree, "issue", "list")["issues"]
    assert [i["issue_id"] for i in listed] == [issue]
    other = _create(grite, worktree, "From the worktree")
    listed = grite.json(git_repo, "issue", "list")["issues"]
    assert {i["issue_id"] for i in listed} == {issue, other}
    assert not (worktree / ".git").is_dir()  # state lives in the main repository's .git/grite
    assert (git_repo / ".git" / "grite" / "view").is_dir()


def test_actor_commands(grite: Grite, git_repo: Path) -> None:
    first = grite.json(git_repo, "init")["actor_id"]
    second = grite.json(git_repo, "actor", "init", "--label", "bot")["actor_id"]
    actors = grite.json(git_repo, "actor", "list")["actors"]
    assert sorted(a["actor_id"] for a in actors) == sorted([first, second])
    assert grite.json(git_repo, "actor", "current")["actor_id"] == first
    grite.json(git_repo, "actor", "use", second)
    current = grite.json(git_repo, "actor", "current")
    assert current["actor_id"] == second and current["source"] == "repo_default"
    assert grite.json(git_repo, "actor", "show", second)["label"] == "bot"
    issue = _create(grite, git_repo, "by bot")
    assert grite.json(git_repo, "issue", "show", issue)["author"] == second
    by_flag = grite.json(git_repo, "--actor", first, "issue", "create", "--title", "by flag")
    assert grite.json(git_repo, "issue", "show", by_flag["issue_id"])["author"] == first
    code, err = grite.error(git_repo, "--actor", "ab" * 16, "issue", "list")
    assert code == 3 and "actor init" in err["message"]
    with open(git_repo / ".git/grite/config.toml", "rb") as f:
        assert tomllib.load(f)["default_actor"] == second


def test_version_help_and_quiet(grite: Grite, git_repo: Path) -> None:
    version = grite.run(git_repo, "--version", check=True)
    assert version.stdout.startswith("grite ") and version.stdout.strip() != "grite"
    helped = grite.run(git_repo, "issue", "create", "--help", check=True)
    assert "--title" in helped.stdout and "--body" in helped.stdout
    quiet = grite.run(git_repo, "--quiet", "issue", "create", "--title", "silent")
    assert (quiet.returncode, quiet.stdout) == (0, "")
    assert [i["title"] for i in grite.json(git_repo, "issue", "list")["issues"]] == ["silent"]
    # --quiet does not silence errors, and flags work after the subcommand too.
    failed = grite.run(git_repo, "issue", "show", "zzzz", "--quiet")
    assert failed.returncode == 2 and failed.stderr.startswith("error: ")


def test_data_dir_and_grite_home_select_the_actor(
    grite: Grite, git_repo: Path, tmp_path: Path
) -> None:
    grite.json(git_repo, "init")
    other = grite.json(git_repo, "actor", "init", "--label", "ci")
    home = other["data_dir"]
    by_flag = grite.json(git_repo, "--data-dir", home, "issue", "create", "--title", "flag")
    assert grite.json(git_repo, "issue", "show", by_flag["issue_id"])["author"] == other["actor_id"]
    grite.env["GRITE_HOME"] = home
    current = grite.json(git_repo, "actor", "current")
    assert current["actor_id"] == other["actor_id"] and current["source"] == "env"
    grite.env["GRITE_HOME"] = str(tmp_path / "nowhere")
    code, err = grite.error(git_repo, "issue", "list")
    assert code == 3 and "actor" in err["message"]
