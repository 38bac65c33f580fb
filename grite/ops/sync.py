"""`grite sync`: exchange events with a git remote and merge WAL histories.

Pull fetches the remote's grite refs into `refs/grite/remotes/<remote>/` and merges the remote
WAL into the local one: adopt it when we have none, nothing when it is behind us, fast-forward
when we are behind it, and when both moved, append ONE commit on top of the remote head holding
our local-only events (ids not in the remote chain) in their original order. The result stays a
linear `prev_wal` chain (https://github.com/neul-labs/grite/blob/main/crates/libgrite-git/src/wal.rs), nothing is lost or duplicated, and since
projections are order-independent every clone converges. This clone's lock refs then follow
the remote's (grite.storage.lease_remote.mirror_lock_refs), unless they hold a change the remote
has not seen. Push is fast-forward only and never
forced; a rejected WAL push means the remote moved, so we pull, merge and push again a bounded
number of times.

Every ref move is a compare-and-swap, and no per-repository write lock is held across network
I/O: a concurrent local write simply makes the merge start over.

Imports storage and model only; never prints or reads the environment.
"""

from __future__ import annotations

import random
import time

from grite.model.errors import Conflict, Environment
from grite.model.events import Event
from grite.model.requests_sync import RefRejection, SyncArgs, SyncResult
from grite.ops import cancellation
from grite.ops.actors import actor_bytes
from grite.ops.context import OpContext
from grite.ops.ingest import check_remote_wal, outgoing_invalid
from grite.ops.lease_arbiter import DEFAULT_REMOTE, configured_remote
from grite.storage.lease_remote import lock_tracking, mirror_lock_refs
from grite.storage.sync import LOCKS_PREFIX, SyncRepo, tracking_prefix
from grite.storage.wal import WAL_REF, Wal

__all__ = ["MAX_PUSH_ATTEMPTS", "merge_remote_wal", "sync"]

MAX_PUSH_ATTEMPTS = 5
_MAX_MERGE_TRIES = 20
_WAL_NAME = WAL_REF.decode()


class _Merge:
    """Events that arrived, and local-only events re-applied on top of the remote head."""

    __slots__ = ("pulled", "reapplied")

    def __init__(self, pulled: int, reapplied: int) -> None:
        self.pulled = pulled
        self.reapplied = reapplied


def _ids(entries_events: list[Event]) -> set[bytes]:
    return {e.event_id for e in entries_events}


def merge_remote_wal(
    repo: SyncRepo, wal: Wal, actor: bytes, remote_head: str | None, *, rebase: bool = False
) -> _Merge:
    """Merge the remote WAL head (already fetched and checked) into the local `refs/grite/wal`.

    Args:
        repo: the repository's refs and objects.
        wal: the repository's WAL, used to read (and verify) events.
        actor: who is recorded on the commit that re-applies local-only events.
        remote_head: the fetched remote WAL head, or None if the remote has no WAL.
        rebase: re-apply local-only events on top of the remote head even when the remote is
            behind us: how a clone leaves invalid commits of its own out of a push (reads skip
            their events, so re-applying drops them).

    Returns:
        How many events arrived, and how many local-only events were re-applied on top of
        the remote head (0 unless the histories had diverged).

    Raises:
        CorruptData: the remote's events fail their hashes (nothing is changed).
        Environment: the local WAL kept moving under us (a runaway writer).
    """
    if remote_head is None and not rebase:
        return _Merge(0, 0)
    for _ in range(_MAX_MERGE_TRIES):
        local = repo.ref(WAL_REF)
        if local == remote_head or (
            not rebase
            and local is not None
            and remote_head is not None
            and repo.is_ancestor(remote_head, local)
        ):
            return _Merge(0, 0)
        if remote_head is not None and (local is None or repo.is_ancestor(local, remote_head)):
            # Reading verifies every chunk and event id before the ref moves onto them.
            incoming = wal.read_entries(since=local, head=remote_head)
            if repo.set_wal_head(local, remote_head):
                return _Merge(sum(len(e.events) for e in incoming), 0)
            continue
        remote_chain = set(repo.chain(remote_head))
        fork = next((c for c in repo.chain(local) if c in remote_chain), None)
        ours = [e for entry in wal.read_entries(since=fork, head=local) for e in entry.events]
        theirs = []
        if remote_head is not None:
            theirs = [
                e for entry in wal.read_entries(since=fork, head=remote_head) for e in entry.events
            ]
        their_ids = _ids(theirs)
        our_ids = _ids(ours)
        local_only: list[Event] = []
        seen: set[bytes] = set()
        for event in ours:
            if event.event_id not in their_ids and event.event_id not in seen:
                seen.add(event.event_id)
                local_only.append(event)
        incoming_count = len(_ids(theirs) - our_ids)
        new = remote_head
        if local_only:
            new = repo.write_wal_commit(actor, local_only, remote_head)
        if new is None:
            return _Merge(0, 0)  # nothing valid of ours and no remote WAL: nothing to push
        if repo.set_wal_head(local, new):
            return _Merge(incoming_count, len(local_only))
    raise Environment(
        "refs/grite/wal kept changing while merging the remote's events; retry 'grite sync' "
        "when other grite writers are idle (nothing was lost)"
    )


def _locks_of(remote_refs: dict[str, str]) -> dict[str, str]:
    prefix = LOCKS_PREFIX.decode()
    return {ref: oid for ref, oid in remote_refs.items() if ref.startswith(prefix)}


def _count_events(wal: Wal, since: str | None, head: str | None) -> int:
    if head is None or head == since:
        return 0
    return sum(len(e.events) for e in wal.read_entries(since=since, head=head))


def _message(
    remote: str,
    pulled: int | None,
    pushed: int | None,
    rebased_count: int,
    remote_had_wal: bool,
    rejected: list[RefRejection],
) -> str:
    lines = []
    if pulled:
        lines.append(f"Pulled {pulled} event{'s' if pulled != 1 else ''} from {remote}")
    if rebased_count:
        lines.append(
            f"Merged diverged histories: re-applied {rebased_count} local "
            f"event{'s' if rebased_count != 1 else ''} on top of {remote}"
        )
    if pushed:
        lines.append(f"Pushed {pushed} event{'s' if pushed != 1 else ''} to {remote}")
    if not lines:
        if pulled is not None and pushed is None and not remote_had_wal:
            lines.append(f"Nothing to pull: {remote} has no grite data yet")
        else:
            lines.append(f"Already up to date with {remote}")
    for r in rejected:
        lines.append(f"Not pushed: {r.ref} ({r.reason})")
    return "\n".join(lines)


def _leave_out_invalid(repo: SyncRepo, wal: Wal, actor: bytes, remote: str) -> list[str]:
    """Before a push: when what it would send holds invalid commits (stored before pulls were
    checked, or fetched with plain git), re-apply the valid events after the oldest of them on
    top of its parent, so that poison is never pushed onward (history before it is kept).
    Returns the commits left out."""
    remote_head = repo.ref(tracking_prefix(remote) + b"wal")
    bad = outgoing_invalid(wal, remote_head, repo.ref(WAL_REF))
    if bad:
        parents = wal.parents(bad[-1])
        merge_remote_wal(repo, wal, actor, parents[0] if parents else None, rebase=True)
    return bad


def _not_done(pulled: int | None, *, push: bool) -> str:
    """What an interrupted sync did (the WAL matches it); `pulled` None: no pull asked."""
    if pulled:
        return f"pulled {pulled} event{'s' if pulled != 1 else ''}; nothing was pushed"
    if pulled is None:
        return "nothing was pushed"
    return "nothing was pulled or pushed" if push else "nothing was pulled"


def sync(ctx: OpContext, args: SyncArgs) -> SyncResult:
    """Pull and/or push grite refs with a git remote (neither flag: both).

    Raises:
        NotFound: no git remote of that name.
        Environment: the remote cannot be reached.
        Conflict: the remote kept moving and the push was still rejected after
            MAX_PUSH_ATTEMPTS rounds of pull, merge and push.
        RemoteRefused: the remote's WAL holds a commit grite does not accept (nothing changed).
    """
    do_pull = args.pull or not args.push
    do_push = args.push or not args.pull
    remote = args.remote or configured_remote(ctx) or DEFAULT_REMOTE
    actor = actor_bytes(ctx)
    wal = ctx.handle.wal
    pulled_events = 0
    rebased = False
    rebased_count = 0
    pushed_events = 0
    attempts = 0
    remote_had_wal = False
    rejected: list[RefRejection] = []
    left_out: list[str] = []

    def pull(repo: SyncRepo, url: str) -> None:
        nonlocal pulled_events, rebased, rebased_count, remote_had_wal
        seen_locks = lock_tracking(repo, remote)
        remote_refs = repo.fetch(remote, url)
        # The remote decides leases: this clone's lock refs follow what the fetch brought.
        mirror_lock_refs(repo, remote, seen_locks, _locks_of(remote_refs))
        remote_head = remote_refs.get(_WAL_NAME)
        remote_had_wal = remote_head is not None
        # The gate: nothing the remote sent moves the WAL or the view before it is checked.
        check_remote_wal(
            wal,
            remote,
            repo.ref(WAL_REF),
            remote_head,
            now_ms=ctx.now_ms,
            verifier=ctx.handle.verifier,
        )
        # Ctrl-C (grite.ops.cancellation): the last moment the WAL is still as it was.
        cancellation.checkpoint(_not_done(pulled_events, push=do_push))
        merged = merge_remote_wal(repo, wal, actor, remote_head)
        pulled_events += merged.pulled
        if merged.reapplied:
            rebased = True
            rebased_count += merged.reapplied

    with SyncRepo(ctx.paths.git_dir, ctx.paths.repo_root) as repo:
        url = repo.remote_url(remote)
        if do_pull:
            pull(repo, url)
        if do_push:
            while True:
                attempts += 1
                cancellation.checkpoint(_not_done(pulled_events if do_pull else None, push=True))
                left_out += _leave_out_invalid(repo, wal, actor, remote)
                report = repo.push(remote, url, release_owner=actor.hex())
                reason = report.rejected.pop(_WAL_NAME, None)
                if reason is None:
                    sent = report.updated.get(_WAL_NAME)
                    pushed_events = _count_events(wal, report.remote_before.get(_WAL_NAME), sent)
                    rejected = [
                        RefRejection(ref=ref, reason=why)
                        for ref, why in sorted(report.rejected.items())
                    ]
                    break
                if attempts >= MAX_PUSH_ATTEMPTS:
                    raise Conflict(
                        f"push to {remote!r} was rejected {attempts} times ({reason}); "
                        "the remote keeps changing: run 'grite sync' again later "
                        "(local events are kept)",
                        {"remote": remote, "attempts": attempts, "reason": reason},
                    )
                # The remote moved since we looked: join its history and try again, backing off
                # a little so concurrent syncers do not collide in lockstep.
                time.sleep(0.02 * (2**attempts) * (0.5 + random.random()))
                pull(repo, url)
    head = ctx.handle.refresh()
    message = _message(
        remote,
        pulled_events if do_pull else None,
        pushed_events if do_push else None,
        rebased_count,
        remote_had_wal,
        rejected,
    )
    if left_out:
        message += (
            f"\nLeft out {len(left_out)} invalid WAL commit"
            f"{'s' if len(left_out) != 1 else ''} ({', '.join(c[:12] for c in left_out[:5])}): "
            f"this clone's valid events were re-applied on top of {remote} instead"
        )
    return SyncResult(
        remote=remote,
        url=url,
        pulled=do_pull,
        pushed=do_push,
        pulled_events=pulled_events,
        pushed_events=pushed_events,
        wal_head=head,
        rebased=rebased,
        attempts=attempts,
        rejected_refs=rejected,
        message=message,
        left_out=left_out,
        events=pulled_events,
        events_rebased=pushed_events if rebased else 0,
        pull_events=pulled_events,
        pull_wal_head=head if do_pull else None,
        push_success=do_push,
        push_rebased=rebased,
        push_events_rebased=pushed_events if rebased else 0,
    )
