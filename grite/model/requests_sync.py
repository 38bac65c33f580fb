"""Typed arguments and results of `grite sync` and `grite export`, and the export document.

Same rules as grite/model/requests.py: frozen kw_only Structs, args tagged with wire names that
never change, new fields get defaults, ids are lowercase hex. Pure: imports nothing of grite.
"""

from __future__ import annotations

from typing import Literal

import msgspec

from grite.model.requests import CommentView, DepEdgeView, LinkView

__all__ = [
    "ExportArgs",
    "ExportDocument",
    "ExportEvent",
    "ExportIssue",
    "ExportMeta",
    "ExportResult",
    "RefRejection",
    "SyncArgs",
    "SyncResult",
]


class SyncArgs(msgspec.Struct, frozen=True, kw_only=True, tag="sync"):
    """`grite sync`: neither flag (or both) means pull then push."""

    remote: str | None = None  # None: `[sync] remote` from the repository config, else origin
    pull: bool = False
    push: bool = False


class RefRejection(msgspec.Struct, frozen=True, kw_only=True):
    """A lock or snapshot ref the remote refused (reported, not fatal)."""

    ref: str
    reason: str


class SyncResult(msgspec.Struct, frozen=True, kw_only=True):
    """What a sync did.

    `pulled_events`: events new to this clone; `pushed_events`: events the remote did not have;
    `rebased`: local-only events were re-appended on top of the remote's WAL (diverged
    histories); `attempts`: push attempts (more than 1 when the remote moved meanwhile).
    """

    remote: str
    url: str
    pulled: bool
    pushed: bool
    pulled_events: int
    pushed_events: int
    wal_head: str | None
    rebased: bool
    attempts: int
    rejected_refs: list[RefRejection]
    message: str
    # Invalid WAL commits of this clone that the push left out (their events were already
    # ignored by every read); the clone's valid events were re-applied on the remote's head.
    left_out: list[str] = []
    # grite 0.5.3's keys (its pull-only, push-only and full-sync payloads together; its
    # crates/grite/src/commands/sync.rs), with the same meanings, from the fields above.
    success: bool = True
    events: int = 0
    events_rebased: int = 0
    backfilled: int = 0
    pull_events: int = 0
    pull_wal_head: str | None = None
    push_success: bool = True
    push_rebased: bool = False
    push_events_rebased: int = 0


class ExportArgs(msgspec.Struct, frozen=True, kw_only=True, tag="export"):
    """`grite export`. `output` None means standard output; a relative `output` is taken
    relative to `cwd` (the client's working directory) when known, else the repository root."""

    format: Literal["json", "md"]
    since: str | None = None
    output: str | None = None
    cwd: str | None = None


class ExportResult(msgspec.Struct, frozen=True, kw_only=True):
    """`content` holds the document when it goes to standard output (None with `-o FILE`)."""

    format: str
    output_path: str | None
    event_count: int
    issue_count: int
    wal_head: str | None
    content: str | None = None


class ExportMeta(msgspec.Struct, frozen=True, kw_only=True):
    schema_version: int
    generated_ts: int
    event_count: int
    wal_head: str | None


class ExportIssue(msgspec.Struct, frozen=True, kw_only=True):
    issue_id: str
    title: str
    state: str
    labels: list[str]
    assignees: list[str]
    created_ts: int
    updated_ts: int
    comment_count: int
    # Beyond grite 0.5.3's summary: what a reader of the export needs without the events.
    body: str = ""
    comments: list[CommentView] = []
    links: list[LinkView] = []
    dependencies: list[DepEdgeView] = []


class ExportEvent(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """One event; `kind` is externally tagged (`{"IssueCreated": {...}}`), bytes as hex."""

    event_id: str
    issue_id: str
    actor: str
    ts_unix_ms: int
    parent: str | None = None
    kind: dict[str, dict[str, object]]


class ExportDocument(msgspec.Struct, frozen=True, kw_only=True):
    meta: ExportMeta
    issues: list[ExportIssue]
    events: list[ExportEvent]
