"""Maintenance operations: snapshots (create, list, gc, automatic), rebuild, doctor, db stats.

The view is a cache of the WAL, so every repair here is local: rebuild drops the view and
replays the WAL (or the latest snapshot plus the WAL after its `wal_head`, which gives the same
projections because they do not depend on event order), and `doctor --fix` only ever rebuilds
the view. Nothing here rewrites `refs/grite/wal`.
"""

from __future__ import annotations

import os
import time

import msgspec

from grite.model.context import context_of, is_context_event
from grite.model.depgraph import find_cycles
from grite.model.errors import CorruptData, Environment, GriteError, InvalidArgs, NotFound
from grite.model.events import Event
from grite.model.projection import IssueProjection, apply_event, new_projection, summarize
from grite.model.requests_maint import (
    DbStatsArgs,
    DbStatsResult,
    DoctorArgs,
    DoctorCheck,
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
from grite.ops.actors import resolve_actor
from grite.ops.context import OpContext
from grite.storage.config import (
    accepted_unsigned_actors,
    effective_verify_policy,
)
from grite.storage.signing import repo_public_keys, signature_problem
from grite.storage.snapshots import SnapshotInfo, SnapshotStore
from grite.storage.view import VIEW_FORMAT, ViewMeta
from grite.storage.wal import InvalidWalCommit, Wal, WalEntry, WalHistoryChanged

__all__ = [
    "DEFAULT_SNAPSHOT_EVENTS",
    "HealthCheckFailed",
    "db_stats",
    "doctor",
    "maybe_snapshot",
    "rebuild",
    "replay",
    "snapshot_create",
    "snapshot_gc",
    "snapshot_list",
]

# `[snapshot] max_events` default: events since the last snapshot before one is taken.
DEFAULT_SNAPSHOT_EVENTS = 10_000


class HealthCheckFailed(GriteError):
    """doctor found an error it did not (or could not) fix; details carry every check."""

    code = "internal"


def replay(events: list[Event]) -> dict[bytes, IssueProjection]:
    """Projections of every issue touched by `events` (as the view stores them)."""
    projections: dict[bytes, IssueProjection] = {}
    for e in events:
        if is_context_event(e):
            continue  # the context store, not an issue (see grite.model.context)
        p = projections.get(e.issue_id)
        if p is None:
            p = projections[e.issue_id] = new_projection(e.issue_id)
        apply_event(p, e)
    return projections


def _row(info: SnapshotInfo, created: bool = False) -> SnapshotRow:
    return SnapshotRow(
        oid=info.oid,
        ref_name=info.ref,
        timestamp=info.timestamp,
        wal_head=info.wal_head,
        event_count=info.event_count,
        created=created,
        trusted=info.trusted,
    )


def _events_up_to(wal: Wal, store: SnapshotStore, head: str) -> list[Event]:
    """Every event of the WAL up to `head`: from the newest usable snapshot plus the WAL after
    it, so an automatic snapshot does not reread the whole history."""
    for info in store.list(trusted_only=True):
        try:
            described, events = store.read(info)
            if described.wal_head is None:
                continue
            entries = wal.read_entries(since=described.wal_head, head=head)
        except (CorruptData, WalHistoryChanged):
            continue
        return events + [e for entry in entries for e in entry.events]
    return [e for entry in wal.read_entries(head=head) for e in entry.events]


def _create_snapshot(ctx: OpContext, store: SnapshotStore) -> SnapshotRow:
    wal = ctx.handle.wal
    head = wal.head()
    if head is None:
        raise InvalidArgs(
            "nothing to snapshot: the WAL is empty; create or sync some issues first",
            {"wal_head": None},
        )
    snapshots = store.list(trusted_only=True)
    if snapshots:
        newest = store.describe(snapshots[0])
        if newest.wal_head == head:
            return _row(newest)  # already there (also makes a retried request a no-op)
    events = _events_up_to(wal, store, head)
    if not events:
        raise InvalidArgs("nothing to snapshot: the WAL holds no events")
    # Refs are named by millisecond; a same-millisecond snapshot takes the next free name.
    for offset in range(50):
        info = store.create(ctx.now_ms + offset, head, events)
        if info is not None:
            return _row(info, created=True)
    raise Environment("could not find a free snapshot ref name; run 'grite snapshot gc'")


def snapshot_create(ctx: OpContext, args: SnapshotCreateArgs) -> SnapshotRow:
    """Snapshot every WAL event up to the current head.

    Raises:
        InvalidArgs: the WAL is empty (nothing is written).
    """
    with SnapshotStore(ctx.paths.git_dir) as store:
        return _create_snapshot(ctx, store)


def snapshot_list(ctx: OpContext, args: SnapshotListArgs) -> SnapshotListResult:
    rows = []
    with SnapshotStore(ctx.paths.git_dir) as store:
        for info in store.list():
            try:
                info = store.describe(info)
            except CorruptData:
                pass  # listed without its facts; doctor reports it
            rows.append(_row(info))
    return SnapshotListResult(snapshots=rows, total=len(rows))


def snapshot_gc(ctx: OpContext, args: SnapshotGcArgs) -> SnapshotGcResult:
    """Delete all but the newest `keep` snapshots."""
    if args.keep < 0:
        raise InvalidArgs("--keep must be 0 or more", {"keep": args.keep})
    deleted = 0
    with SnapshotStore(ctx.paths.git_dir) as store:
        snapshots = store.list()
        for info in snapshots[args.keep :]:
            if store.delete(info):
                deleted += 1
    return SnapshotGcResult(deleted=deleted, kept=min(args.keep, len(snapshots)))


def maybe_snapshot(ctx: OpContext) -> None:
    """After an append: snapshot when `[snapshot] max_events` events (default 10000) arrived
    since the newest snapshot. Costs one view-meta read below the threshold; never fails the
    write (a failure becomes a warning)."""
    try:
        cfg = ctx.repo_config()
        limit = DEFAULT_SNAPSHOT_EVENTS
        if cfg.snapshot is not None and cfg.snapshot.max_events is not None:
            limit = cfg.snapshot.max_events
        if limit <= 0:
            return
        count = ctx.handle.event_count()
        if count < limit:
            return
        with SnapshotStore(ctx.paths.git_dir) as store:
            snapshots = store.list(trusted_only=True)
            last = 0
            if snapshots:
                try:
                    last = store.describe(snapshots[0]).event_count or 0
                except CorruptData:
                    last = 0
            if count - last >= limit:
                _create_snapshot(ctx, store)
    except GriteError as exc:
        ctx.warnings.append(f"automatic snapshot failed: {exc.message}")


def rebuild(ctx: OpContext, args: RebuildArgs) -> RebuildResult:
    """Drop the view and rebuild it from the WAL, or from the newest readable snapshot plus
    the WAL after its wal_head."""
    handle = ctx.handle
    snap: SnapshotInfo | None = None
    base: tuple[list[IssueProjection], ViewMeta] | None = None
    base_context = None
    if args.from_snapshot:
        with SnapshotStore(ctx.paths.git_dir) as store:
            for info in store.list():
                if not info.trusted:
                    ctx.warnings.append(
                        f"skipping snapshot {info.ref}: this clone did not make it and has not "
                        "compared it with the WAL ('grite doctor --fix' does)"
                    )
                    continue
                try:
                    snap, events = store.read(info)
                except CorruptData as exc:
                    ctx.warnings.append(f"skipping unreadable snapshot {info.ref}: {exc.message}")
                    continue
                break
        if snap is None:
            ctx.warnings.append("no snapshot found; rebuilt from the WAL")
        else:
            handle.verifier.check(
                [WalEntry(commit=snap.oid, actor="", chunk_hash="", events=events)]
            )
            meta = ViewMeta(
                wal_head=snap.wal_head,
                event_count=len(events),
                rebuilt_ms=int(time.time() * 1000),
            )
            base = (list(replay(events).values()), meta)
            base_context = context_of(events)
    meta = handle.rebuild(base, base_context=base_context)
    issues = len(handle.summaries())
    snapshot_events = None if snap is None else snap.event_count
    return RebuildResult(
        wal_head=meta.wal_head,
        event_count=meta.event_count,
        issue_count=issues,
        from_snapshot=None if snap is None else snap.ref,
        snapshot_events=snapshot_events,
        wal_events=meta.event_count - (snapshot_events or 0),
    )


# -- doctor -------------------------------------------------------------------------------


def _check(id_: str, status: str, message: str, *plan: str) -> DoctorCheck:
    return DoctorCheck(id=id_, status=status, message=message, plan=list(plan))  # type: ignore[arg-type]


_SQLITE_MAGIC = b"SQLite format 3\0"


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def _view_file_check(ctx: OpContext) -> DoctorCheck | None:
    """Look at the view database file before anything opens (and silently repairs) it."""
    db = os.path.join(ctx.paths.grite_dir, "view", "cache.db")
    try:
        with open(db, "rb") as f:
            head = f.read(len(_SQLITE_MAGIC))
    except FileNotFoundError:
        return _check("view", "warn", f"view database {db} is missing", "rebuild the view")
    except OSError as exc:
        return _check("view", "error", f"cannot read the view {db}: {exc}", "rebuild the view")
    if head and head != _SQLITE_MAGIC:
        return _check(
            "view", "error", f"view database {db} is not an SQLite database", "rebuild the view"
        )
    return None


def _view_checks(ctx: OpContext, entries: list[WalEntry], head: str | None) -> DoctorCheck:
    view = ctx.handle.view
    meta = view.meta()
    if meta.format != VIEW_FORMAT:
        return _check("view", "error", "view metadata is unreadable", "rebuild the view")
    if meta.wal_head != head:
        return _check(
            "view",
            "warn",
            f"view reflects WAL commit {meta.wal_head} but the WAL head is {head} "
            "(it catches up on the next read)",
            "rebuild the view",
        )
    expected = replay([e for entry in entries for e in entry.events])
    bad: list[str] = []
    try:
        for issue_id, p in expected.items():
            if view.projection(issue_id) != p:
                bad.append(issue_id.hex())
        summaries = view.summaries()
    except msgspec.DecodeError as exc:
        return _check(
            "view", "error", f"the view holds undecodable data ({exc})", "rebuild the view"
        )
    created = {i: summarize(p) for i, p in expected.items() if p.created}
    bad += [i.hex() for i in set(summaries) ^ set(created)]
    bad += [i.hex() for i in created if i in summaries and summaries[i] != created[i]]
    if bad:
        shown = ", ".join(sorted(set(bad))[:5])
        return _check(
            "view",
            "error",
            f"the view differs from the WAL for {len(set(bad))} issue(s) ({shown})",
            "rebuild the view",
        )
    return _check(
        "view", "ok", f"view is current: {meta.event_count} events, {len(created)} issues"
    )


def _wal_check(
    head: str | None, entries: list[WalEntry], skipped: list[InvalidWalCommit]
) -> DoctorCheck:
    n_events = sum(len(e.events) for e in entries)
    if head is None:
        return _check("wal", "ok", "WAL not created yet (no events)")
    if not skipped:
        return _check(
            "wal",
            "ok",
            f"WAL readable: {_plural(len(entries), 'commit')}, {_plural(n_events, 'event')}, "
            "every chunk hash and event id verified",
        )
    shown = "; ".join(exc.message for exc in reversed(skipped[-5:]))
    more = f" (and {len(skipped) - 5} more)" if len(skipped) > 5 else ""
    return _check(
        "wal",
        "warn",
        f"{_plural(len(skipped), 'invalid WAL commit')} ignored by every read: {shown}{more}; "
        f"{_plural(len(entries), 'commit')} and {_plural(n_events, 'event')} verified",
        "nothing to repair: an invalid commit's events are ignored on every clone, and "
        "'grite sync' refuses such commits from remotes; see docs/security.md",
    )


def _matches_wal(wal: Wal, store: SnapshotStore, info: SnapshotInfo) -> str | None:
    """Why a snapshot is not exactly the WAL's valid events up to its wal_head (None: it is)."""
    try:
        described, events = store.read(info)
        if described.wal_head is None:
            return "it names no WAL head"
        entries = wal.read_entries(head=described.wal_head)
    except (CorruptData, WalHistoryChanged) as exc:
        return exc.message
    expected = sorted(e.event_id for entry in entries for e in entry.events)
    if sorted(e.event_id for e in events) != expected:
        return (
            f"its {len(events)} events are not the {len(expected)} events of the WAL up to "
            f"{described.wal_head}"
        )
    return None


def _snapshot_check(ctx: OpContext, fix: bool) -> DoctorCheck | None:
    """Snapshots fetched from elsewhere are never used until compared with the WAL: report
    them, and with --fix trust those that match."""
    with SnapshotStore(ctx.paths.git_dir) as store:
        untrusted = [info for info in store.list() if not info.trusted]
        if not untrusted:
            return None
        wal = Wal(ctx.paths.git_dir)
        try:
            verdicts = {info.ref: _matches_wal(wal, store, info) for info in untrusted}
        finally:
            wal.close()
        matching = [info for info in untrusted if verdicts[info.ref] is None]
        if fix:
            for info in matching:
                store.trust(info)
    wrong = {ref: why for ref, why in verdicts.items() if why is not None}
    parts = []
    if matching:
        verb = "were compared with the WAL and are now used" if fix else "match the WAL"
        parts.append(f"{_plural(len(matching), 'snapshot')} made elsewhere {verb}")
    if wrong:
        listed = "; ".join(f"{ref}: {why}" for ref, why in sorted(wrong.items())[:5])
        parts.append(
            f"{_plural(len(wrong), 'snapshot')} do not match the WAL and are never used ({listed})"
        )
    plan = []
    if matching and not fix:
        plan.append("'grite doctor --fix' lets grite use the matching ones")
    if wrong:
        plan.append("delete them with 'git update-ref -d <ref>' (they may have been forged)")
    status = "ok" if fix and not wrong else "warn"
    check = _check("snapshots", status, "; ".join(parts), *plan)
    if fix and matching:
        check = msgspec.structs.replace(check, fixed=True)
    return check


def doctor(ctx: OpContext, args: DoctorArgs) -> DoctorResult:
    """Check the repository, WAL, signatures, actor, view and dependency graph.

    Raises:
        HealthCheckFailed: an error-level check failed and was not fixed (details hold all).
    """
    checks: list[DoctorCheck] = []
    applied: list[str] = []
    git_dir = ctx.paths.git_dir
    if os.path.isfile(os.path.join(git_dir, "HEAD")):
        checks.append(_check("git_repo", "ok", f"git repository at {git_dir}"))
    else:
        checks.append(_check("git_repo", "error", f"{git_dir} has no HEAD: not a git repository"))

    entries: list[WalEntry] | None = None
    head: str | None = None
    wal = Wal(git_dir)
    try:
        head = wal.head()
        read = wal.read_good_entries(head=head)
        if read.error is not None:
            raise read.error
        entries = read.entries
        checks.append(_wal_check(head, entries, read.skipped))
    except CorruptData as exc:
        checks.append(
            _check(
                "wal",
                "error",
                exc.message,
                "the WAL is shared history and doctor never rewrites it: fetch the missing "
                "objects from another clone ('git fetch <remote> refs/grite/wal') or restore "
                "the repository from a backup",
            )
        )
    finally:
        wal.close()

    policy, problem = effective_verify_policy(ctx.repo_config())
    if problem is not None:
        ctx.warn_once(problem)
    if entries is not None and policy != "off":
        keys = repo_public_keys(ctx.paths.grite_dir)
        unsigned_ok = accepted_unsigned_actors(ctx.repo_config())
        problems = [
            f"{e.event_id.hex()[:12]} in {entry.commit[:12]}: {p}"
            for entry in entries
            for e in entry.events
            if (p := signature_problem(e, keys.get, unsigned_ok)) is not None
        ]
        if problems:
            ignored = "; their commits are ignored" if policy == "require" else ""
            checks.append(
                _check(
                    "signatures",
                    "warn",
                    f"{len(problems)} event(s) fail signature checks: "
                    f"{'; '.join(problems[:5])}{ignored}",
                    "add the signing actors' public keys under .git/grite/actors/, then run "
                    "'grite rebuild'",
                )
            )
        else:
            checks.append(_check("signatures", "ok", "every event is validly signed"))
        # The view leaves out what `require` refuses: compare it with what it should hold.
        entries, _refused = ctx.handle.verifier.split(entries)

    try:
        cfg, _directory, source = resolve_actor(ctx, create=False)
        checks.append(_check("actor_config", "ok", f"actor {cfg.actor_id} ({source})"))
    except NotFound as exc:
        checks.append(_check("actor_config", "warn", exc.message, "run 'grite init'"))
    except GriteError as exc:
        checks.append(_check("actor_config", "error", exc.message))

    view_check = _view_file_check(ctx)
    if view_check is None and entries is not None:
        view_check = _view_checks(ctx, entries, head)
    if view_check is not None:
        if args.fix and view_check.status != "ok" and entries is not None:
            ctx.handle.rebuild()
            applied.append("rebuild")
            view_check = msgspec.structs.replace(
                view_check, fixed=True, message=view_check.message + "; rebuilt the view"
            )
        checks.append(view_check)

    snapshot_check = _snapshot_check(ctx, args.fix)
    if snapshot_check is not None:
        checks.append(snapshot_check)
        if snapshot_check.fixed:
            applied.append("trust-snapshots")

    if entries is not None:
        projections = replay([e for entry in entries for e in entry.events])
        deps = {
            i: [d for d in summarize(p).dependencies] for i, p in projections.items() if p.created
        }
        cycles = find_cycles(deps)
        if cycles:
            text = "; ".join(
                f"{c.dep_type}: " + " -> ".join(i.hex()[:8] for i in [*c.issue_ids, c.issue_ids[0]])
                for c in cycles[:5]
            )
            checks.append(
                _check(
                    "dependencies",
                    "warn",
                    f"{len(cycles)} dependency cycle(s): {text}",
                    "break each cycle with 'grite issue dep remove'",
                )
            )
        else:
            checks.append(_check("dependencies", "ok", "no dependency cycles"))

    ok = all(c.status != "error" or c.fixed for c in checks)
    result = DoctorResult(checks=checks, applied=applied, ok=ok)
    if not ok:
        failed = [f"{c.id}: {c.message}" for c in checks if c.status == "error" and not c.fixed]
        hint = "" if args.fix else "; 'grite doctor --fix' repairs the view"
        raise HealthCheckFailed(
            f"health checks failed: {' | '.join(failed)}{hint}",
            {"checks": msgspec.to_builtins(checks), "applied": applied},
        )
    return result


def db_stats(ctx: OpContext, args: DbStatsArgs) -> DbStatsResult:
    handle = ctx.handle
    head = handle.refresh()
    issues = len(handle.summaries())
    meta = handle.view.meta()
    last_snapshot_events = 0
    with SnapshotStore(ctx.paths.git_dir) as store:
        snapshots = store.list()
        if snapshots:
            try:
                last_snapshot_events = store.describe(snapshots[0]).event_count or 0
            except CorruptData:
                pass
    since = max(0, meta.event_count - meta.rebuilt_event_count)
    days = None if meta.rebuilt_ms is None else max(0, ctx.now_ms - meta.rebuilt_ms) // 86_400_000
    return DbStatsResult(
        events_since_rebuild=since,
        days_since_rebuild=days,
        rebuild_recommended=since > 10_000 or (days is not None and days > 7),
        path=handle.view.path,
        size_bytes=handle.view.size_bytes(),
        event_count=meta.event_count,
        issue_count=issues,
        wal_head=head,
        view_head=meta.wal_head,
        last_rebuild_ts=meta.rebuilt_ms,
        snapshot_count=len(snapshots),
        events_since_snapshot=max(0, meta.event_count - last_snapshot_events),
    )
