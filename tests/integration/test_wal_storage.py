"""The WAL and the view on real repositories: byte layout readable by a plain CBOR decoder,
compare-and-swap under real concurrent processes, corruption refused with the commit named,
and readers that see other processes' writes without any refresh step."""

from __future__ import annotations

import fcntl
import json
import os
import subprocess
import sys
from pathlib import Path

import cbor2
import pytest

from grite.model.errors import GriteError
from grite.model.events import CommentAdded, IssueCreated
from grite.model.hashing import make_event
from grite.ops.repo_handle import RepoHandle
from grite.storage.repo import discover_repo
from grite.storage.wal import InvalidWalCommit, Wal, append_with_retry
from tests.conftest import Grite, assert_fsck_clean, git, wal_commit_count, wal_head

ACTOR = bytes.fromhex("11" * 16)


def _event(issue: bytes, ts: int, title: str = "t"):  # type: ignore[no-untyped-def]
    return make_event(
        issue_id=issue,
        actor=ACTOR,
        ts_unix_ms=ts,
        kind=IssueCreated(title=title, body="", labels=[]),
    )


def test_wal_commit_layout_decodes_with_a_plain_cbor_decoder(
    grite_local: Grite, git_repo: Path
) -> None:
    issue = grite_local.json(
        git_repo, "issue", "create", "--title", "Layout", "--label", "b", "--label", "a"
    )
    head = wal_head(git_repo)
    assert head is not None
    files = git(git_repo, "ls-tree", "-r", "--name-only", head).stdout.split()
    assert files[-1] == "meta.json"
    (chunk_path,) = [f for f in files if f.startswith("events/")]
    year, month, day, name = chunk_path.split("/")[1:]
    assert len(year) == 4 and len(month) == 2 and len(day) == 2 and name.endswith(".bin")
    meta = json.loads(git(git_repo, "show", f"{head}:meta.json").stdout)
    assert meta == {
        "schema_version": 1,
        "actor_id": meta["actor_id"],
        "chunk_hash": name[:-4],
        "prev_wal": None,
    }
    raw = subprocess.run(
        ["git", "cat-file", "blob", f"{head}:{chunk_path}"],
        cwd=git_repo,
        capture_output=True,
        check=True,
    ).stdout
    assert raw[:18] == b"GRITECNK\x01\x00\x07cbor-v1"
    records = cbor2.loads(raw[18:])
    assert len(records) == 1 and len(records[0]) == 8
    event_id, issue_id, actor, ts, parent, tag, payload, sig = records[0]
    assert issue_id.hex() == issue["issue_id"] and actor.hex() == meta["actor_id"]
    assert (len(event_id), parent, tag, sig) == (32, None, 1, None)
    assert payload == ["Layout", "", ["a", "b"]]
    assert event_id.hex() == issue["event_ids"][0]
    git_log = git(git_repo, "log", "--format=%an <%ae>|%s", "refs/grite/wal").stdout.strip()
    assert git_log == f"grite <grit@local>|WAL: 1 event from {meta['actor_id'][:8]}"


def test_multi_event_chunk_reads_back_in_append_order(git_repo: Path) -> None:
    wal = Wal(str(git_repo / ".git"))
    issue = os.urandom(16)
    events = [_event(issue, 1000)] + [
        make_event(issue_id=issue, actor=ACTOR, ts_unix_ms=1000 + n, kind=CommentAdded(body=str(n)))
        for n in range(1, 6)
    ]
    append_with_retry(wal, ACTOR, events[:3])
    append_with_retry(wal, ACTOR, events[3:])
    read = [e for entry in wal.read_entries() for e in entry.events]
    assert read == events
    first = wal.read_entries()[0].commit
    assert [e for entry in wal.read_entries(since=first) for e in entry.events] == events[3:]
    assert_fsck_clean(git_repo)


def test_compare_and_swap_loses_on_a_moved_ref_and_retry_lands_on_top(git_repo: Path) -> None:
    a, b = Wal(str(git_repo / ".git")), Wal(str(git_repo / ".git"))
    first = a.try_append(ACTOR, [_event(os.urandom(16), 1)], None)
    assert first is not None
    assert b.try_append(ACTOR, [_event(os.urandom(16), 2)], None) is None  # must not exist yet
    second = a.try_append(ACTOR, [_event(os.urandom(16), 3)], first)
    assert b.try_append(ACTOR, [_event(os.urandom(16), 4)], first) is None  # stale parent
    head, appended = append_with_retry(b, ACTOR, [_event(os.urandom(16), 5)])
    assert appended and head != second
    assert len(a.read_entries()) == 3
    assert wal_commit_count(git_repo) == 3


def test_a_writer_that_keeps_losing_races_keeps_trying_while_the_ref_moves(
    git_repo: Path,
) -> None:
    """Heavy contention is not a stuck lock: while other writers keep moving the ref, a writer
    that loses every race for longer than its wait keeps trying, and lands once it wins."""
    ours, theirs = Wal(str(git_repo / ".git")), Wal(str(git_repo / ".git"))
    rounds = 0

    def competitor_wins_first(parent: str | None) -> bool:
        # A rival commits between our reading the head and our compare-and-swap, 12 times:
        # far longer, with the backoff, than the 20 ms wait given below.
        nonlocal rounds
        rounds += 1
        if rounds <= 12:
            assert theirs.try_append(ACTOR, [_event(os.urandom(16), rounds)], parent)
        return True

    head, appended = append_with_retry(
        ours,
        ACTOR,
        [_event(os.urandom(16), 99, "ours")],
        before_try=competitor_wins_first,
        max_wait_seconds=0.02,
        give_up_seconds=60.0,
    )
    assert appended and rounds == 13
    titles = [e.kind.title for entry in ours.read_entries() for e in entry.events]
    assert titles[-1] == "ours" and len(titles) == 13
    assert head == wal_head(git_repo)
    assert_fsck_clean(git_repo)


def test_a_ref_that_never_moves_behind_a_lock_is_reported_with_the_lock(git_repo: Path) -> None:
    wal = Wal(str(git_repo / ".git"))
    append_with_retry(wal, ACTOR, [_event(os.urandom(16), 1)])
    lock = git_repo / ".git" / "refs" / "grite" / "wal.lock"
    lock.write_text("held by a live writer\n")  # fresh: never looks abandoned
    with pytest.raises(GriteError, match="stayed locked for 0s") as info:
        append_with_retry(wal, ACTOR, [_event(os.urandom(16), 2)], max_wait_seconds=0.2)
    assert info.value.details["lock"] == str(lock)
    lock.unlink()
    assert len(wal.read_entries()) == 1  # nothing was recorded


_WRITER = r"""
import sys
from grite.model.invocation import Invocation
from grite.cli.app import run_invocation
import os, time
repo, n, tag = sys.argv[1], int(sys.argv[2]), sys.argv[3]
for i in range(n):
    inv = Invocation(argv=["issue", "create", "--title", f"{tag}-{i}", "--json"], cwd=repo,
                     env={}, request_id=os.urandom(16), now_ms=time.time_ns() // 10**6)
    out = run_invocation(inv)
    assert out.exit_code == 0, out
    print(out.stdout.count("issue_id"), flush=True)
"""


def test_eight_processes_creating_25_issues_each_end_with_200_exactly_once(
    grite_local: Grite, git_repo: Path
) -> None:
    grite_local.json(git_repo, "init")
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _WRITER, str(git_repo), "25", f"p{n}"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for n in range(8)
    ]
    for p in procs:
        out, err = p.communicate(timeout=120)
        assert p.returncode == 0, err
    titles = [
        i["title"] for i in grite_local.json(git_repo, "issue", "list", "--state", "all")["issues"]
    ]
    expected = sorted(f"p{n}-{i}" for n in range(8) for i in range(25))
    assert sorted(titles) == expected
    wal = Wal(str(git_repo / ".git"))
    created = [e.kind.title for entry in wal.read_entries() for e in entry.events]
    assert sorted(created) == expected  # each exactly once in the WAL itself
    assert wal_commit_count(git_repo) == 200
    assert_fsck_clean(git_repo)


def test_an_open_reader_sees_writes_of_another_process_without_refresh(
    grite_local: Grite, git_repo: Path
) -> None:
    grite_local.json(git_repo, "init")
    handle = RepoHandle.open(discover_repo(str(git_repo)))
    try:
        assert handle.summaries() == []
        grite_local.json(git_repo, "issue", "create", "--title", "from elsewhere")
        assert [s.title for s in handle.summaries()] == ["from elsewhere"]
        # A `git fetch` that moves refs/grite/wal is seen too, with no grite command involved.
        clone = git_repo.parent / "clone"
        git(git_repo.parent, "clone", "-q", str(git_repo), str(clone))
        git(clone, "fetch", "-q", "origin", "refs/grite/wal:refs/grite/wal")
        grite_local.json(clone, "issue", "create", "--title", "from the clone")
        git(git_repo, "fetch", "-q", str(clone), "refs/grite/wal:refs/grite/wal")
        assert sorted(s.title for s in handle.summaries()) == ["from elsewhere", "from the clone"]
    finally:
        handle.close()


def test_reader_answers_while_another_process_holds_the_view_lock(
    grite_local: Grite, git_repo: Path
) -> None:
    grite_local.json(git_repo, "issue", "create", "--title", "before")
    lock_path = git_repo / ".git" / "grite" / "view.lock"
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        grite_local.json(git_repo, "issue", "create", "--title", "while locked")
        titles = [i["title"] for i in grite_local.json(git_repo, "issue", "list")["issues"]]
        assert titles == ["while locked", "before"]
    finally:
        os.close(fd)
    titles = [i["title"] for i in grite_local.json(git_repo, "issue", "list")["issues"]]
    assert titles == ["while locked", "before"]


def test_tampered_chunk_is_refused_naming_the_commit(grite_local: Grite, git_repo: Path) -> None:
    grite_local.json(git_repo, "issue", "create", "--title", "good")
    good_head = wal_head(git_repo)
    # Forge a commit whose chunk bytes were altered but keep its (now wrong) name.
    wal = Wal(str(git_repo / ".git"))
    append_with_retry(wal, ACTOR, [_event(os.urandom(16), 5, "genuine")])
    head = wal_head(git_repo)
    assert head is not None
    files = git(git_repo, "ls-tree", "-r", head).stdout.splitlines()
    chunk_line = next(line for line in files if "events/" in line)
    path = chunk_line.split("\t")[1]
    raw = subprocess.run(
        ["git", "cat-file", "blob", f"{head}:{path}"], cwd=git_repo, capture_output=True, check=True
    ).stdout
    forged = raw.replace(b"genuine", b"forged!")
    blob = (
        subprocess.run(
            ["git", "hash-object", "-w", "--stdin"],
            cwd=git_repo,
            input=forged,
            capture_output=True,
            check=True,
        )
        .stdout.decode()
        .strip()
    )
    index = git_repo / "forge-index"
    env = {**os.environ, "GIT_INDEX_FILE": str(index)}
    subprocess.run(["git", "read-tree", head], cwd=git_repo, env=env, check=True)
    subprocess.run(
        ["git", "update-index", "--cacheinfo", f"100644,{blob},{path}"],
        cwd=git_repo,
        env=env,
        check=True,
    )
    tree = subprocess.run(
        ["git", "write-tree"], cwd=git_repo, env=env, capture_output=True, text=True, check=True
    ).stdout.strip()
    commit = subprocess.run(
        ["git", "commit-tree", tree, "-p", str(good_head), "-m", "forged"],
        cwd=git_repo,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    git(git_repo, "update-ref", "refs/grite/wal", commit)
    wal = Wal(str(git_repo / ".git"))
    with pytest.raises(InvalidWalCommit) as info:
        wal.read_commit(commit)
    assert commit in info.value.message and "fails its hash" in info.value.message
    # Its content is what it is on every clone: readers skip it (its event is never used)
    # and go on with its parent; nothing else is lost.
    assert [e.kind.title for entry in wal.read_entries() for e in entry.events] == ["good"]
    wal.close()
    import shutil

    shutil.rmtree(git_repo / ".git" / "grite" / "view")
    proc = grite_local.run(git_repo, "issue", "list", "--json")
    assert proc.returncode == 0 and commit in proc.stderr and "warning:" in proc.stderr
    assert [i["title"] for i in json.loads(proc.stdout)["data"]["issues"]] == ["good"]
    # No brick: writes go on top, and every later read still names the ignored commit.
    grite_local.json(git_repo, "issue", "create", "--title", "more")
    proc = grite_local.run(git_repo, "issue", "list", "--json")
    assert commit in proc.stderr
    titles = sorted(i["title"] for i in json.loads(proc.stdout)["data"]["issues"])
    assert titles == ["good", "more"]


def test_commits_between_walks_only_to_the_fork(git_repo: Path) -> None:
    wal = Wal(str(git_repo / ".git"))
    try:
        chain: list[str | None] = [None]
        for n in range(5):
            chain.append(wal.write_commit(ACTOR, [_event(bytes([n]) * 16, 1000 + n)], chain[-1]))
        a = wal.write_commit(ACTOR, [_event(b"a" * 16, 2000)], chain[3])  # a fork at chain[3]
        b = wal.write_commit(ACTOR, [_event(b"b" * 16, 2001)], a)
        other_root = wal.write_commit(ACTOR, [_event(b"o" * 16, 3000)], None)
        c1, c2, c3, c4, c5 = chain[1:]
        assert wal.commits_between(c2, c5) == [c5, c4, c3]  # fast-forward
        assert wal.commits_between(c5, c2) == []  # behind
        assert wal.commits_between(c5, b) == [b, a]  # diverged
        assert wal.commits_between(b, c5) == [c5, c4]
        assert wal.commits_between(None, c2) == [c2, c1]
        assert wal.commits_between(c5, None) == []
        assert wal.commits_between(c5, other_root) == [other_root]  # unrelated
        assert wal.commits_between(c3, c3) == []
    finally:
        wal.close()
