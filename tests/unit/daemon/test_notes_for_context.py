"""Context store events (grite 0.5.3's ContextUpdated/ProjectContextUpdated on pseudo-issue
ids, https://github.com/neul-labs/grite crates/libgrite-core/src/context/mod.rs) never show up
to watchers as issue changes; the WAL move that carries them still does."""

from __future__ import annotations

from grite.daemon.hub import notes_for_entries
from grite.model.context import PROJECT_CONTEXT_ID
from grite.model.events import CommentAdded, ProjectContextUpdated
from grite.model.hashing import make_event
from grite.model.notifications import IssueChanged, WalAdvanced
from grite.storage.wal import WalEntry


def test_context_events_are_not_issue_changes() -> None:
    actor = b"\x01" * 16
    ctx_event = make_event(
        issue_id=PROJECT_CONTEXT_ID, actor=actor, ts_unix_ms=1,
        kind=ProjectContextUpdated(key="k", value="v"),
    )  # fmt: skip
    comment = make_event(
        issue_id=b"\x02" * 16, actor=actor, ts_unix_ms=1, kind=CommentAdded(body="x")
    )
    entry = WalEntry(commit="c" * 40, actor=actor.hex(), chunk_hash="", events=[ctx_event, comment])
    notes = notes_for_entries([entry], None, "local_write")
    assert [type(n) for n in notes] == [IssueChanged, WalAdvanced]
    assert notes[0].issue_id == (b"\x02" * 16).hex()  # type: ignore[union-attr]
    assert notes[1].events == 2  # type: ignore[union-attr]
