"""Attack 2: one remote event with an impossible timestamp (2**70, 2**64-1) used to be pulled
without complaint; then every command failed with an internal OverflowError, doctor said the
WAL was fine, and the next sync pushed the poison on to the next remote.

Now: `grite sync` refuses the remote, naming the commit and the remote, and changes nothing; a
clone that already holds such a commit (pulled before this check existed) skips it with a
warning, keeps working, and leaves it behind when it pushes.
"""

from __future__ import annotations

import os

import pytest

from grite.model.events import CommentAdded
from grite.model.hashing import make_event
from tests.conftest import git, wal_head
from tests.hostile.conftest import Victim, bare, downstream
from tests.wal_forge import chunk_of_records, forge_commit, record_of, set_ref


def _poison(victim: Victim, ts: int) -> bytes:
    event = make_event(
        issue_id=bytes.fromhex(victim.issues[0]),
        actor=os.urandom(16),
        ts_unix_ms=1_700_000_000_000,
        kind=CommentAdded(body="poison"),
    )
    record = record_of(event)
    record[3] = ts
    return chunk_of_records([record])


@pytest.mark.parametrize("ts", [2**70, 2**64 - 1], ids=["bignum", "u64-max"])
def test_a_remote_event_with_an_impossible_timestamp_is_refused(
    served_victim: Victim, ts: int
) -> None:
    v = served_victim  # the remote is served by a real git daemon
    head, titles = wal_head(v.repo), v.titles()
    outside = v.outside()
    bad = v.forge_on_remote(chunk=_poison(v, ts))

    error = v.refused("sync")
    assert f"WAL commit {bad}" in error["message"] and "'origin'" in error["message"]
    assert error["details"]["commit"] == bad and error["details"]["remote"] == "origin"
    assert "nothing was changed" in error["message"]
    assert wal_head(v.repo) == head and v.titles() == titles
    # A second try (pull only) is refused the same way: nothing half-applied.
    assert v.refused("sync", "--pull")["details"]["commit"] == bad
    v.assert_unharmed(head, titles)
    assert v.outside() == outside


def test_a_clone_already_holding_the_poison_keeps_working_and_never_spreads_it(
    victim: Victim,
) -> None:
    v = victim
    good_head = wal_head(v.repo)
    titles = v.titles()
    # As if pulled before grite checked pulls: the poison sits on top of the victim's WAL.
    bad = forge_commit(v.repo, chunk=_poison(v, 2**64 - 1))
    set_ref(v.repo, bad)

    proc = v.run("issue", "list", "--state", "all", "--json")
    assert proc.returncode == 0 and f"WAL commit {bad} is invalid" in proc.stderr
    for args in (("issue", "show", v.issues[0]), ("rebuild",), ("export", "--format", "md")):
        v.ok(*args)
    v.ok("doctor", "--fix")
    report = v.ok("doctor")
    wal_check = next(c for c in report["checks"] if c["id"] == "wal")
    assert wal_check["status"] == "warn" and bad in wal_check["message"]
    assert v.titles() == titles
    created = v.ok("issue", "create", "--title", "after the poison")["issue_id"]

    # Pushing to another remote leaves the poison behind: the victim's own events are
    # re-applied on top of what that remote has, and a clone of it never sees the commit.
    mirror = bare(v.root / "mirror.git")
    git(v.repo, "remote", "add", "mirror", str(mirror))
    result = v.ok("sync", "--remote", "mirror")
    assert result["left_out"] == [bad], result
    assert "Left out 1 invalid WAL commit" in result["message"]
    assert v.ok("sync", "--remote", "origin")["left_out"] == []
    for remote in (mirror, v.remote):
        chain = git(remote, "rev-list", "refs/grite/wal").stdout.split()
        assert bad not in chain and good_head in chain
    other = downstream(v)
    v.ok("sync", repo=other)
    assert v.titles(repo=other) == sorted([*titles, "after the poison"])
    v.ok("issue", "show", created, repo=other)
    # The victim's own history no longer holds it either, and nothing was lost.
    assert bad not in git(v.repo, "rev-list", "refs/grite/wal").stdout.split()
    assert v.titles() == sorted([*titles, "after the poison"])
