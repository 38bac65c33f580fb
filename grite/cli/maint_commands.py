"""Command area: maint (`grite snapshot create|list|gc`, `grite rebuild`, `grite doctor`,
`grite db stats`).

An area module provides `register(top, issue, parents)`, which adds its argh commands to the
top-level and `issue` subparsers; and `RENDERERS`, mapping result Structs to human text.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

import argh

from grite.cli.commands import group, leaves
from grite.cli.render import Renderer
from grite.model.display import printable
from grite.model.requests_maint import (
    DbStatsArgs,
    DbStatsResult,
    DoctorArgs,
    DoctorResult,
    RebuildArgs,
    RebuildResult,
    SnapshotCreateArgs,
    SnapshotGcArgs,
    SnapshotGcResult,
    SnapshotListArgs,
    SnapshotListResult,
    SnapshotRow,
)

__all__ = ["RENDERERS", "register"]


@argh.named("create")
def snapshot_create() -> SnapshotCreateArgs:
    """Snapshot every WAL event up to the current head."""
    return SnapshotCreateArgs()


@argh.named("list")
def snapshot_list() -> SnapshotListArgs:
    """List snapshots, newest first."""
    return SnapshotListArgs()


@argh.named("gc")
@argh.arg("--keep", type=int, help="how many of the newest snapshots to keep (default 5)")
def snapshot_gc(*, keep: int = 5) -> SnapshotGcArgs:
    """Delete all but the newest snapshots."""
    return SnapshotGcArgs(keep=keep)


@argh.named("rebuild")
@argh.arg("--from-snapshot", help="start from the newest snapshot, then replay the WAL after it")
def rebuild(*, from_snapshot: bool = False) -> RebuildArgs:
    """Drop the local view and rebuild it from the WAL."""
    return RebuildArgs(from_snapshot=from_snapshot)


@argh.named("doctor")
@argh.arg("--fix", help="repair local state (rebuilds the view; never rewrites refs)")
def doctor(*, fix: bool = False) -> DoctorArgs:
    """Check the repository, WAL, signatures, actor, view and dependency graph."""
    return DoctorArgs(fix=fix)


@argh.named("stats")
def db_stats() -> DbStatsArgs:
    """Show the local view's size, counts and freshness."""
    return DbStatsArgs()


def _snapshot(r: Renderer, x: SnapshotRow) -> str:
    verb = "Created" if x.created else "Up to date:"
    return f"{verb} snapshot {printable(x.ref_name)} ({x.event_count} events, WAL {x.wal_head})\n"


def _snapshots(r: Renderer, x: SnapshotListResult) -> str:
    if not x.snapshots:
        return "No snapshots\n"
    # Snapshot refs may come from elsewhere (a mirror clone): names shown escaped, and those
    # this clone never made or verified marked, since grite does not use them.
    return "".join(
        f"{printable(s.ref_name)}  {r.when(s.timestamp)}  "
        f"{s.event_count if s.event_count is not None else '?'} events  {printable(s.oid[:12])}"
        f"{'' if s.trusted else '  (not verified: unused)'}\n"
        for s in x.snapshots
    )


def _gc(_r: Renderer, x: SnapshotGcResult) -> str:
    return f"Deleted {x.deleted} snapshot(s), kept {x.kept}\n"


def _rebuild(_r: Renderer, x: RebuildResult) -> str:
    lines = []
    if x.from_snapshot is not None:
        lines.append(
            f"Loaded {x.snapshot_events} events from snapshot {x.from_snapshot}, "
            f"replayed {x.wal_events} from the WAL"
        )
    lines.append(f"Rebuilt the view: {x.event_count} events, {x.issue_count} issues")
    return "\n".join(lines) + "\n"


_MARK = {"ok": "[ok]", "warn": "[!!]", "error": "[ERR]"}


def _doctor(_r: Renderer, x: DoctorResult) -> str:
    lines = []
    for c in x.checks:
        # Messages quote WAL commits and snapshots, which may hold anything.
        lines.append(f"{_MARK[c.status]} {c.id}: {printable(c.message)}")
        if not c.fixed and c.status != "ok":
            lines += [f"     -> {printable(p)}" for p in c.plan]
    if x.applied:
        lines.append(f"\nApplied fixes: {', '.join(x.applied)}")
    return "\n".join(lines) + "\n"


def _stats(r: Renderer, x: DbStatsResult) -> str:
    rebuilt = r.when(x.last_rebuild_ts) if x.last_rebuild_ts else "never"
    return (
        f"View: {x.path} ({x.size_bytes} bytes)\n"
        f"Events: {x.event_count}, issues: {x.issue_count}\n"
        f"WAL head: {x.wal_head}\n"
        f"Last rebuild: {rebuilt}\n"
        f"Snapshots: {x.snapshot_count} ({x.events_since_snapshot} events since the newest)\n"
    )


RENDERERS: dict[type, Callable[[Any, Any], str]] = {
    SnapshotRow: _snapshot,
    SnapshotListResult: _snapshots,
    SnapshotGcResult: _gc,
    RebuildResult: _rebuild,
    DoctorResult: _doctor,
    DbStatsResult: _stats,
}


def register(
    top: argparse._SubParsersAction,  # type: ignore[type-arg]
    issue: argparse._SubParsersAction,  # type: ignore[type-arg]
    parents: list[argparse.ArgumentParser],
) -> None:
    """Add `grite snapshot ...`, `grite rebuild`, `grite doctor` and `grite db stats`."""
    leaves(
        group(top, "snapshot", "snapshots of the WAL for fast rebuilds", parents),
        [snapshot_create, snapshot_list, snapshot_gc],
        parents,
    )
    leaves(top, [rebuild, doctor], parents)
    leaves(group(top, "db", "the local view database", parents), [db_stats], parents)
