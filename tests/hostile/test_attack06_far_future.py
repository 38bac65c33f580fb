"""Attack 6: an event timestamped in the year 9999 (or 2**63) won last-writer-wins forever, and
`issue show` then failed with "year ... is out of range".

Now an event may be at most 24 hours ahead of the commit that carries it and of the clock of
the clone that pulls (or first reads) it; timestamps are bounded to the years 1970-9999. A
remote holding such an event is refused on `grite sync`; one already stored is ignored.
"""

from __future__ import annotations

import os

import pytest

from grite.model.events import IssueUpdated
from grite.model.hashing import make_event
from grite.model.limits import MAX_TS_MS
from tests.conftest import wal_head
from tests.hostile.conftest import Victim, now_ms
from tests.wal_forge import chunk_of_records, forge_commit, record_of, set_ref

YEAR_9999 = MAX_TS_MS - 1000


def _retitle(v: Victim, ts: int, title: str = "hijacked title") -> list:  # type: ignore[type-arg]
    return [
        make_event(
            issue_id=bytes.fromhex(v.issues[0]),
            actor=os.urandom(16),
            ts_unix_ms=ts,
            kind=IssueUpdated(title=title),
        )
    ]


@pytest.mark.parametrize(
    ("ts", "commit_time", "why"),
    [
        (YEAR_9999, None, "more than 24 hours after its commit"),
        (YEAR_9999, YEAR_9999 // 1000, "more than 24 hours after this machine's clock"),
        (2**63, None, "is not a time from 1970 to 9999"),
    ],
    ids=["year-9999", "year-9999-forged-commit-time", "2**63"],
)
def test_a_far_future_remote_event_is_refused(
    victim: Victim, ts: int, commit_time: int | None, why: str
) -> None:
    v = victim
    head, titles = wal_head(v.repo), v.titles()
    if ts > MAX_TS_MS:
        event = _retitle(v, 1_700_000_000_000)[0]
        record = record_of(event)
        record[3] = ts
        bad = v.forge_on_remote(chunk=chunk_of_records([record]), commit_time=commit_time)
    else:
        bad = v.forge_on_remote(events=_retitle(v, ts), commit_time=commit_time)
    error = v.refused("sync")
    assert f"WAL commit {bad} is invalid" in error["message"] and why in error["message"]
    assert "24 hours ahead of this machine's clock" in error["message"]
    assert error["details"]["field"] == "ts_unix_ms"
    assert v.ok("issue", "show", v.issues[0])["title"] == "first"
    v.assert_unharmed(head, titles)


def test_an_honest_clock_skew_is_accepted(victim: Victim) -> None:
    v = victim
    v.forge_on_remote(events=_retitle(v, now_ms() + 2 * 3600 * 1000, "two hours ahead"))
    assert v.ok("sync")["pulled_events"] == 1
    assert v.ok("issue", "show", v.issues[0])["title"] == "two hours ahead"


def test_a_stored_far_future_event_is_ignored_and_show_works(victim: Victim) -> None:
    v = victim
    titles = v.titles()
    bad = forge_commit(v.repo, events=_retitle(v, YEAR_9999), commit_time=YEAR_9999 // 1000)
    set_ref(v.repo, bad)
    proc = v.run("issue", "show", v.issues[0], "--json")
    assert proc.returncode == 0 and f"WAL commit {bad} is invalid" in proc.stderr
    human = v.run("issue", "show", v.issues[0])
    assert human.returncode == 0 and human.stdout.startswith("first\n"), human.stdout
    # A later honest update still wins: the ignored event holds no register.
    v.ok("issue", "update", v.issues[0], "--title", "renamed")
    assert v.ok("issue", "show", v.issues[0])["title"] == "renamed"
    assert v.titles() == sorted(["renamed", *titles[1:]])
