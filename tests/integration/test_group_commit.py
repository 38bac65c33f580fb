"""Group commit on a real repository: concurrent appends share WAL commits, each is
acknowledged only once its commit is on the ref, retried writes are applied once, and a
failure reaches exactly the writer it concerns."""

from __future__ import annotations

import os
import threading
import time
from collections import Counter
from pathlib import Path

import pytest
from pytest_mock import MockerFixture

from grite.model.errors import Environment
from grite.model.events import Event, IssueCreated
from grite.model.hashing import make_event
from grite.ops.repo_handle import AppendResult, RepoHandle
from grite.storage.repo import discover_repo
from grite.storage.wal import Wal
from tests.conftest import assert_fsck_clean, git, wal_commit_count

WRITERS = 16


def _events(actor: bytes, n: int, title: str = "t") -> list[Event]:
    now = int(time.time() * 1000)  # events may not be more than 24 h ahead of their commit
    return [
        make_event(
            issue_id=os.urandom(16),
            actor=actor,
            ts_unix_ms=now + i,
            kind=IssueCreated(title=f"{title} {i}", body="", labels=[]),
        )
        for i in range(n)
    ]


def _concurrently(
    handle: RepoHandle, writes: list[list[Event]]
) -> list[AppendResult | BaseException]:
    results: list[AppendResult | BaseException] = [RuntimeError("not run")] * len(writes)
    start = threading.Barrier(len(writes))

    def one(i: int) -> None:
        start.wait()
        try:
            results[i] = handle.append(writes[i][0].actor, writes[i])
        except BaseException as exc:  # the test inspects every writer's outcome
            results[i] = exc

    threads = [threading.Thread(target=one, args=(i,)) for i in range(len(writes))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    return results


def _wal_events(repo: Path) -> Counter[str]:
    wal = Wal(str(repo / ".git"))
    try:
        return Counter(e.event_id.hex() for entry in wal.read_entries() for e in entry.events)
    finally:
        wal.close()


def test_concurrent_appends_share_commits_and_each_is_acknowledged_on_the_ref(
    git_repo: Path,
) -> None:
    handle = RepoHandle.open(discover_repo(str(git_repo)))
    try:
        writes = [_events(bytes([i + 1]) * 16, 1 + i % 3) for i in range(WRITERS)]
        results = _concurrently(handle, writes)
    finally:
        handle.close()
    assert all(isinstance(r, AppendResult) and r.appended for r in results), results
    counts = _wal_events(git_repo)
    for write, result in zip(writes, results, strict=True):
        assert isinstance(result, AppendResult) and result.wal_head is not None
        # Acknowledged means on the ref: the commit named holds this write's events.
        listed = git(git_repo, "log", "--format=%H", "refs/grite/wal").stdout.split()
        assert result.wal_head in listed
        for e in write:
            assert counts[e.event_id.hex()] == 1
    assert sum(counts.values()) == sum(len(w) for w in writes)
    # Coalesced: fewer commits than writes (the first writer commits alone, the others queue).
    assert wal_commit_count(git_repo) < WRITERS
    assert_fsck_clean(git_repo)


def test_a_retried_write_in_a_group_is_not_appended_again(git_repo: Path) -> None:
    handle = RepoHandle.open(discover_repo(str(git_repo)))
    try:
        old = _events(b"\x01" * 16, 2, "old")
        first = handle.append(old[0].actor, old)
        assert first.appended
        writes = [old] + [_events(bytes([i + 2]) * 16, 1) for i in range(WRITERS - 1)]
        results = _concurrently(handle, writes)
    finally:
        handle.close()
    assert isinstance(results[0], AppendResult) and not results[0].appended
    assert all(isinstance(r, AppendResult) and r.appended for r in results[1:]), results
    counts = _wal_events(git_repo)
    assert all(n == 1 for n in counts.values())
    assert len(counts) == 2 + WRITERS - 1


def test_a_failing_write_fails_alone_and_the_rest_of_its_group_commits(
    git_repo: Path, mocker: MockerFixture
) -> None:
    # A write the WAL refuses cannot be caused for real without also breaking the others
    # (disk full hits everyone), so one writer's events are refused by a patched commit.
    poison = _events(b"\x0f" * 16, 1, "poison")
    real = Wal.try_append

    def refuse(self: Wal, actor: bytes, events: list[Event], parent: str | None) -> str | None:
        if any(e.event_id == poison[0].event_id for e in events):
            raise Environment("no space left for this one")
        return real(self, actor, events, parent)

    mocker.patch.object(Wal, "try_append", refuse)
    handle = RepoHandle.open(discover_repo(str(git_repo)))
    try:
        handle.append(b"\x0e" * 16, _events(b"\x0e" * 16, 1, "warm-up"))
        writes = [_events(bytes([i + 1]) * 16, 1) for i in range(WRITERS - 1)] + [poison]
        results = _concurrently(handle, writes)
    finally:
        handle.close()
    failed = [i for i, r in enumerate(results) if not isinstance(r, AppendResult)]
    assert failed == [WRITERS - 1], results
    assert isinstance(results[-1], Environment)
    counts = _wal_events(git_repo)
    assert poison[0].event_id.hex() not in counts
    for write in writes[:-1]:
        assert counts[write[0].event_id.hex()] == 1


@pytest.mark.parametrize("writers", [1, 2])
def test_a_lone_writer_still_commits_alone(git_repo: Path, writers: int) -> None:
    handle = RepoHandle.open(discover_repo(str(git_repo)))
    try:
        for _ in range(3):
            results = _concurrently(handle, [_events(b"\x05" * 16, 1) for _ in range(writers)])
            assert all(isinstance(r, AppendResult) and r.appended for r in results)
    finally:
        handle.close()
    assert sum(_wal_events(git_repo).values()) == 3 * writers
