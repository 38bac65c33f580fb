"""Arguments and results of the maintenance commands: snapshot, rebuild, doctor, db stats.

Same conventions as grite.model.requests: frozen, kw_only Structs; args are tagged with names
that never change.
"""

from __future__ import annotations

from typing import Literal

import msgspec

__all__ = [
    "DbStatsArgs",
    "DbStatsResult",
    "DoctorArgs",
    "DoctorCheck",
    "DoctorResult",
    "RebuildArgs",
    "RebuildResult",
    "SnapshotCreateArgs",
    "SnapshotGcArgs",
    "SnapshotGcResult",
    "SnapshotListArgs",
    "SnapshotListResult",
    "SnapshotRow",
]


class SnapshotCreateArgs(msgspec.Struct, frozen=True, kw_only=True, tag="snapshot_create"):
    pass


class SnapshotListArgs(msgspec.Struct, frozen=True, kw_only=True, tag="snapshot_list"):
    pass


class SnapshotGcArgs(msgspec.Struct, frozen=True, kw_only=True, tag="snapshot_gc"):
    keep: int = 5


class RebuildArgs(msgspec.Struct, frozen=True, kw_only=True, tag="rebuild"):
    from_snapshot: bool = False


class DoctorArgs(msgspec.Struct, frozen=True, kw_only=True, tag="doctor"):
    fix: bool = False


class DbStatsArgs(msgspec.Struct, frozen=True, kw_only=True, tag="db_stats"):
    pass


class SnapshotRow(msgspec.Struct, frozen=True, kw_only=True):
    """A snapshot; `created` is False in a list, True for the one `snapshot create` made."""

    oid: str
    ref_name: str
    timestamp: int
    wal_head: str | None = None
    event_count: int | None = None
    created: bool = False
    # Made by this clone or verified against the WAL by `grite doctor --fix`: only such
    # snapshots are ever used (a snapshot fetched from elsewhere may be forged).
    trusted: bool = False


class SnapshotListResult(msgspec.Struct, frozen=True, kw_only=True):
    snapshots: list[SnapshotRow]
    total: int


class SnapshotGcResult(msgspec.Struct, frozen=True, kw_only=True):
    deleted: int
    kept: int


class RebuildResult(msgspec.Struct, frozen=True, kw_only=True):
    wal_head: str | None
    event_count: int
    issue_count: int
    from_snapshot: str | None = None
    snapshot_events: int | None = None
    wal_events: int = 0  # events replayed from the WAL (after the snapshot, if one was used)


class DoctorCheck(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    status: Literal["ok", "warn", "error"]
    message: str
    plan: list[str] = []
    fixed: bool = False


class DoctorResult(msgspec.Struct, frozen=True, kw_only=True):
    checks: list[DoctorCheck]
    applied: list[str]
    ok: bool


class DbStatsResult(msgspec.Struct, frozen=True, kw_only=True):
    path: str
    size_bytes: int
    event_count: int
    issue_count: int
    wal_head: str | None
    view_head: str | None
    last_rebuild_ts: int | None
    snapshot_count: int
    events_since_snapshot: int
    # grite 0.5.3's keys, with its rule: a rebuild is recommended past 10,000 events or 7 days
    # since the last one (ours never needs it to stay correct: the view catches up).
    events_since_rebuild: int = 0
    days_since_rebuild: int | None = None
    rebuild_recommended: bool = False
