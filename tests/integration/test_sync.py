"""`grite sync` between real clones of a real bare remote (plain path, file:// and git://).

Clones edit the same issues concurrently and sync in different orders; afterwards every clone
must show identical issues, no WAL may hold an event twice, and `git fsck --strict` must pass.
Each CLI test runs in both modes (in-process and through the daemon).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

import pytest

from tests.conftest import Grite, assert_fsck_clean, git, wal_commit_count, wal_head

T = TypeVar("T")


def parallel(*jobs: Callable[[], T]) -> list[T]:
    """Run the jobs at the same time (one clone each), return their results in order."""
    with ThreadPoolExecutor(len(jobs)) as pool:
        futures = [pool.submit(job) for job in jobs]
        return [f.result() for f in futures]


def bare_remote(tmp_path: Path, name: str = "remote.git") -> Path:
    path = tmp_path / name
    git(tmp_path, "init", "-q", "--bare", str(path))
    return path


def clone(url: str, dest: Path) -> Path:
    git(dest.parent, "clone", "-q", url, str(dest))
    git(dest, "config", "user.email", "test@example.com")
    git(dest, "config", "user.name", "Test")
    return dest


def clones(tmp_path: Path, n: int) -> tuple[Path, list[Path]]:
    remote = bare_remote(tmp_path)
    return remote, [clone(str(remote), tmp_path / f"clone{i}") for i in range(n)]


def sync(grite: Grite, repo: Path, *args: str) -> dict[str, Any]:
    return grite.json(repo, "sync", *args)


def create(grite: Grite, repo: Path, title: str, *args: str) -> str:
    return str(grite.json(repo, "issue", "create", "--title", title, *args)["issue_id"])


def event_ids(grite: Grite, repo: Path) -> list[str]:
    proc = grite.run(repo, "export", "--format", "json", check=True)
    return [e["event_id"] for e in json.loads(proc.stdout)["events"]]


# Names of actors come from this clone's own actor files (labels are not shared through
# the WAL), so they are the one part of `issue show` that may differ between clones.
_LOCAL_NAMES = ("author_label", "actor_label", "assignee_handles")


def _shared(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _shared(v) for k, v in value.items() if k not in _LOCAL_NAMES}
    if isinstance(value, list):
        return [_shared(v) for v in value]
    return value


def state_of(grite: Grite, repo: Path, issues: list[str]) -> dict[str, Any]:
    """Everything a user can see about the issues (but this clone's names for actors), plus
    the export's issue list."""
    shows = {i: _shared(grite.json(repo, "issue", "show", i)) for i in issues}
    export = json.loads(grite.run(repo, "export", "--format", "json", check=True).stdout)
    return {
        "shows": shows,
        "export_issues": _shared(export["issues"]),
        "events": export["events"],
    }


def assert_converged(grite: Grite, repos: list[Path], issues: list[str]) -> dict[str, Any]:
    states = parallel(*[lambda r=r: state_of(grite, r, issues) for r in repos])
    first = states[0]
    for repo, state in zip(repos[1:], states[1:], strict=True):
        assert state["shows"] == first["shows"], f"{repo} differs from {repos[0]}"
        assert state["export_issues"] == first["export_issues"]
        assert sorted(e["event_id"] for e in state["events"]) == sorted(
            e["event_id"] for e in first["events"]
        )
    for repo, state in zip(repos, states, strict=True):
        ids = [e["event_id"] for e in state["events"]]
        assert len(ids) == len(set(ids)), f"duplicated events in the WAL of {repo}"
        assert_fsck_clean(repo)
    return first


# -- convergence ------------------------------------------------------------------------------


def test_two_clones_editing_the_same_issues_converge(grite: Grite, tmp_path: Path) -> None:
    _remote, (a, b) = clones(tmp_path, 2)
    x = create(grite, a, "shared", "--body", "first body", "--label", "bug")
    y = create(grite, a, "other")
    sync(grite, a)
    assert sync(grite, b)["pulled_events"] == 2

    def edit_a() -> None:
        grite.json(a, "issue", "update", x, "--title", "title from a")
        grite.json(a, "issue", "close", x)
        grite.json(a, "issue", "label", "add", x, "--label", "from-a", "--label", "p1")
        grite.json(a, "issue", "comment", y, "--body", "comment from a")

    def edit_b() -> None:
        grite.json(b, "issue", "update", x, "--body", "body from b")
        grite.json(b, "issue", "label", "remove", x, "--label", "bug")
        grite.json(b, "issue", "comment", x, "--body", "comment from b")
        grite.json(b, "issue", "dep", "add", y, "--target", x, "--type", "blocks")

    parallel(edit_a, edit_b)
    sync(grite, a)
    merged = sync(grite, b)
    assert merged["rebased"] is True and merged["pulled_events"] == 5
    assert merged["pushed_events"] == 4
    sync(grite, a)
    state = assert_converged(grite, [a, b], [x, y])
    shown = state["shows"][x]
    assert shown["title"] == "title from a" and shown["body"] == "body from b"
    assert shown["state"] == "closed"
    assert shown["labels"] == ["from-a", "p1"]
    assert [c["body"] for c in shown["comments"]] == ["comment from b"]
    assert state["shows"][y]["dependencies"][0]["issue_id"] == x
    # One linear chain: 2 + 4 + one re-applied commit from b, every commit in `git log`.
    assert wal_commit_count(a) == wal_commit_count(b) == 7


@pytest.mark.parametrize("order", ["bca", "concurrent"])
def test_three_clones_converge_whatever_the_sync_order(
    grite: Grite, tmp_path: Path, order: str
) -> None:
    _remote, repos = clones(tmp_path, 3)
    by_name = dict(zip("abc", repos, strict=True))
    a = by_name["a"]
    x = create(grite, a, "shared", "--label", "start")
    sync(grite, a)
    parallel(*[lambda r=r: sync(grite, r, "--pull") for r in repos[1:]])

    def edits(name: str) -> Callable[[], None]:
        repo = by_name[name]

        def run() -> None:
            grite.json(repo, "issue", "update", x, "--title", f"title {name}")
            if name == "c":
                grite.json(repo, "issue", "close", x)
            else:
                grite.json(repo, "issue", "comment", x, "--body", f"hello from {name}")

        return run

    parallel(*[edits(n) for n in "abc"])
    if order == "concurrent":
        # Everyone syncs at once (pushes get rejected and retried), then once more.
        for _ in range(2):
            parallel(*[lambda r=r: sync(grite, r) for r in repos])
    else:
        # First round: each clone merges what is there so far; the rest spreads after.
        for name in order + order[:2]:
            sync(grite, by_name[name])
    state = assert_converged(grite, repos, [x])
    shown = state["shows"][x]
    assert shown["labels"] == ["start"] and shown["state"] == "closed"
    assert sorted(c["body"] for c in shown["comments"]) == ["hello from a", "hello from b"]
    assert shown["title"] in {"title a", "title b", "title c"}
    assert len(state["events"]) == 1 + 6


def test_diverged_histories_merge_without_losing_or_duplicating(
    grite: Grite, tmp_path: Path
) -> None:
    remote, (a, b) = clones(tmp_path, 2)
    x = create(grite, a, "from a")
    y = create(grite, b, "from b")
    first = sync(grite, a)
    assert first["pushed_events"] == 1 and first["pulled_events"] == 0
    b_head_before = wal_head(b)
    result = sync(grite, b)
    assert result["rebased"] is True
    assert (result["pulled_events"], result["pushed_events"]) == (1, 1)
    assert "Merged diverged histories" in result["message"]
    # b's event was re-appended on top of a's commit: one linear chain, remote == local.
    head = wal_head(b)
    assert head == git(remote, "rev-parse", "refs/grite/wal").stdout.strip()
    assert git(b, "rev-parse", f"{head}^").stdout.strip() == wal_head(a)
    assert head != b_head_before
    meta = json.loads(git(b, "show", f"{head}:meta.json").stdout)
    assert meta["prev_wal"] == wal_head(a)
    assert sync(grite, a)["pulled_events"] == 1
    assert_converged(grite, [a, b], [x, y])
    again = sync(grite, b)
    assert (again["pulled_events"], again["pushed_events"]) == (0, 0)
    assert again["message"] == "Already up to date with origin"


def test_pull_only_and_push_only(grite: Grite, tmp_path: Path) -> None:
    remote, (a, b) = clones(tmp_path, 2)
    nothing = sync(grite, a, "--pull")
    assert nothing["pulled_events"] == 0 and "Nothing to pull" in nothing["message"]
    x = create(grite, a, "one")
    pulled = sync(grite, a, "--pull")
    assert pulled["pushed"] is False and wal_head(remote) is None
    pushed = sync(grite, a, "--push")
    assert pushed["pulled"] is False and pushed["pushed_events"] == 1
    assert wal_head(remote) == wal_head(a)
    create(grite, b, "two")
    # --push on a diverged clone must join the histories first, never force.
    forced = sync(grite, b, "--push")
    assert forced["attempts"] == 2 and forced["rebased"] is True
    assert wal_commit_count(remote) == 2
    proc = grite.run(a, "sync", "--pull", check=True)
    assert proc.stdout == "Pulled 1 event from origin\n"
    assert grite.json(a, "issue", "list")["total"] == 2
    assert grite.json(b, "issue", "show", x)["title"] == "one"


# -- transports ---------------------------------------------------------------------------------


def test_sync_over_file_url_and_plain_path(grite: Grite, tmp_path: Path) -> None:
    remote = bare_remote(tmp_path)
    a = clone(f"file://{remote}", tmp_path / "a")
    b = clone(str(remote), tmp_path / "b")
    git(b, "remote", "add", "rel", os.path.relpath(remote, b))
    x = create(grite, a, "over file url")
    assert sync(grite, a)["url"] == f"file://{remote}"
    assert sync(grite, b)["pulled_events"] == 1
    grite.json(b, "issue", "close", x)
    assert sync(grite, b, "--remote", "rel")["pushed_events"] == 1
    assert sync(grite, a)["pulled_events"] == 1
    assert grite.json(a, "issue", "show", x)["state"] == "closed"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def git_daemon(tmp_path: Path) -> Iterator[tuple[Path, int]]:
    """A real `git daemon` serving tmp_path/served over git:// with push enabled."""
    base = tmp_path / "served"
    base.mkdir()
    port = _free_port()
    proc = subprocess.Popen(
        [
            "git",
            "daemon",
            "--export-all",
            "--enable=receive-pack",
            f"--base-path={base}",
            "--listen=127.0.0.1",
            f"--port={port}",
            "--reuseaddr",
            str(base),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        # `git daemon` runs git-daemon as a child: a session of its own stops both at the end.
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), 0.2).close()
                break
            except OSError:
                assert proc.poll() is None, "git daemon exited"
                assert time.monotonic() < deadline, "git daemon did not start listening"
                time.sleep(0.02)
        yield base, port
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(10)


def test_sync_over_git_daemon(grite: Grite, tmp_path: Path, git_daemon: tuple[Path, int]) -> None:
    base, port = git_daemon
    bare_remote(base, "issues.git")
    url = f"git://127.0.0.1:{port}/issues.git"
    a = clone(url, tmp_path / "a")
    b = clone(url, tmp_path / "b")
    x = create(grite, a, "over git://")
    y = create(grite, b, "also over git://")
    assert sync(grite, a)["pushed_events"] == 1
    merged = sync(grite, b)
    assert merged["rebased"] and merged["pulled_events"] == 1 and merged["pushed_events"] == 1
    assert sync(grite, a)["pulled_events"] == 1
    assert_converged(grite, [a, b], [x, y])
    assert wal_head(base / "issues.git") == wal_head(a)


def test_push_rejected_because_remote_moved_is_merged_and_retried(
    grite: Grite, tmp_path: Path, git_daemon: tuple[Path, int]
) -> None:
    base, port = git_daemon
    remote = bare_remote(base, "issues.git")
    url = f"git://127.0.0.1:{port}/issues.git"
    a, b = clone(url, tmp_path / "a"), clone(url, tmp_path / "b")
    x = create(grite, a, "base")
    sync(grite, a)
    sync(grite, b)
    # b prepares a commit the remote will "receive" while a pushes: stash it on a side ref.
    grite.json(b, "issue", "comment", x, "--body", "racing comment")
    git(b, "push", "-q", str(remote), "refs/grite/wal:refs/side/b")
    hook = remote / "hooks" / "pre-receive"
    marker = remote / "moved-once"
    hook.write_text(
        "#!/bin/sh\n"
        f"if [ ! -e '{marker}' ]; then touch '{marker}'; "
        # git forbids ref updates from the quarantine of incoming objects; b's are not in it.
        "env -u GIT_QUARANTINE_PATH git update-ref refs/grite/wal refs/side/b; fi\n"
        "exit 0\n"
    )
    hook.chmod(0o755)
    grite.json(a, "issue", "label", "add", x, "--label", "mine")
    result = sync(grite, a, "--push")
    assert marker.exists()
    assert result["attempts"] == 2 and result["rebased"] is True
    assert result["pulled_events"] == 1 and result["pushed_events"] == 1
    assert wal_head(remote) == wal_head(a)
    sync(grite, b)
    assert_converged(grite, [a, b], [x])


# -- lock and snapshot refs ---------------------------------------------------------------------


def _lock_commit(repo: Path, owner: str, parent: str | None = None) -> str:
    body = json.dumps({"owner": owner, "nonce": owner, "expires_unix_ms": 1, "resource": "r:x"})
    blob = subprocess.run(
        ["git", "hash-object", "-w", "--stdin"],
        cwd=repo,
        input=body,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    tree = subprocess.run(
        ["git", "mktree"],
        cwd=repo,
        input=f"100644 blob {blob}\tlock.json\n",
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    args = ["commit-tree", tree, "-m", "Lock: r:x"] + (["-p", parent] if parent else [])
    return git(repo, *args).stdout.strip()


def test_conflicting_lock_refs_are_reported_not_fatal(grite: Grite, tmp_path: Path) -> None:
    remote, (a, b) = clones(tmp_path, 2)
    ref = "refs/grite/locks/0123456789abcdef"
    git(a, "update-ref", ref, _lock_commit(a, "aaaa"))
    git(b, "update-ref", ref, _lock_commit(b, "bbbb"))
    git(a, "update-ref", "refs/grite/snapshots/1000", _lock_commit(a, "snap"))
    create(grite, a, "a")
    create(grite, b, "b")
    sync(grite, a)
    result = sync(grite, b)
    assert result["pushed_events"] == 1
    assert [r["ref"] for r in result["rejected_refs"]] == [ref]
    assert "Not pushed: " + ref in result["message"]
    # The remote keeps a's lease; b's pull put it beside b's own, never over it.
    a_lock = git(a, "rev-parse", ref).stdout.strip()
    assert git(remote, "rev-parse", ref).stdout.strip() == a_lock
    assert git(
        b, "rev-parse", "refs/grite/remotes/origin/locks/0123456789abcdef"
    ).stdout.strip() == (a_lock)
    assert git(b, "rev-parse", ref).stdout.strip() != a_lock
    assert git(b, "rev-parse", "refs/grite/remotes/origin/snapshots/1000").returncode == 0
    # a renews its lease (a child commit): a fast-forward, so it is pushed.
    git(a, "update-ref", ref, _lock_commit(a, "aaaa", parent=a_lock))
    assert sync(grite, a)["rejected_refs"] == []
    assert git(remote, "rev-parse", ref).stdout.strip() == git(a, "rev-parse", ref).stdout.strip()


# -- bad input ----------------------------------------------------------------------------------


def test_unknown_remote_is_not_found_and_changes_nothing(grite: Grite, tmp_path: Path) -> None:
    _remote, (a,) = clones(tmp_path, 1)
    create(grite, a, "x")
    head = wal_head(a)
    code, err = grite.error(a, "sync", "--remote", "nope")
    assert code == 3 and err["code"] == "not_found"
    assert "git remote -v" in err["message"]
    assert wal_head(a) == head
    proc = grite.run(a, "sync", "--remote", "nope")
    assert proc.returncode == 3 and proc.stderr.startswith("error: no git remote named 'nope'")


def test_unreachable_remote_is_an_environment_error(grite: Grite, tmp_path: Path) -> None:
    _remote, (a,) = clones(tmp_path, 1)
    create(grite, a, "x")
    head = wal_head(a)
    git(a, "remote", "add", "gone", str(tmp_path / "does-not-exist.git"))
    git(a, "remote", "add", "closed", f"git://127.0.0.1:{_free_port()}/x.git")
    for name in ("gone", "closed"):
        code, err = grite.error(a, "sync", "--remote", name)
        assert code == 5 and err["code"] == "environment", err
        assert "cannot reach remote" in err["message"] and "nothing was changed" in err["message"]
    assert wal_head(a) == head
    assert git(a, "for-each-ref", "refs/grite/remotes").stdout == ""
