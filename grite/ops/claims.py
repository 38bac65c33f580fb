"""The atomic claim (`issue ready --claim`, `grite.Client.claim()`): lease and assign the first
ready issue nobody has claimed.

Where the lease is decided is grite.ops.lease_arbiter's business: the grite remote when there is one
(unless `--local`), else this clone. Either way a claim is rounds of one compare-and-swap
each (`LeaseBook.swap_where`): the round decides which issue to lease from the arbiter's lock
refs as they are at that moment (on a remote: as the push itself finds them), and the swap
succeeds only if the issue's lease ref still holds what the round saw. Exactly one claimer
wins an issue, whoever else tries at the same moment, in this process, another process, or
another clone of the remote; a lost round means someone just took that issue, and the next
round picks another. Only the winner assigns the issue.

Two claimers under the SAME actor also exclude each other: a lease is ours only when its
nonce is the one derived from this request, so a retried request (same request id) resumes
its own claim and any other request treats the issue as taken.

What this clone knows of the arbiter's leases without asking (its lock refs, or the remote's
as last fetched) orders the candidates; an exact `issue:<id>` lease is recognised by its ref
name alone (the ref is a hash of the resource), so only leases on other resources, and the
leases of the candidates the round passes, are read.

Imports storage and model only; never prints or reads the environment.
"""

from __future__ import annotations

from collections.abc import Callable

from grite.model.errors import Conflict, GriteError, NotFound
from grite.model.events import AssigneeAdded
from grite.model.lease_arbitration import first_choice
from grite.model.leases import (
    LockRecord,
    conflicts_with,
    lock_ref_name,
    nonce_from_bytes,
    parse_ttl,
)
from grite.model.projection import IssueSummary
from grite.model.requests_agents import IssueClaimArgs, IssueClaimResult
from grite.ops.actors import my_handle
from grite.ops.agents import ready_summaries
from grite.ops.context import OpContext
from grite.ops.issues import row, write_events
from grite.ops.lease_arbiter import open_leases, remote_of
from grite.storage.lease_refs import StoredLock
from grite.storage.lease_remote import LeaseBook

__all__ = ["issue_claim"]

# Rounds of "decide from the arbiter's refs, compare-and-swap" before giving up: each lost
# round means another claimer just took an issue, so this bounds a burst of bad luck.
_CLAIM_ROUNDS = 50

Updates = dict[str, tuple[str | None, str | None]]


def _resource(issue_id: bytes) -> str:
    return f"issue:{issue_id.hex()}"


class _Known:
    """What this clone knows of the arbiter's leases without asking it.

    `leased`: issues with an exact lease ref (live or expired; not read). `held`: the live
    leases on issue prefixes, which cover the issues they prefix. (A claim passes over
    `issue:` leases only, as it always has; `repo:` and `path:` locks guard writes through
    the lock policy.)
    """

    def __init__(self, book: LeaseBook, summaries: list[IssueSummary], now_ms: int) -> None:
        exact = {lock_ref_name(_resource(s.issue_id)): s.issue_id for s in summaries}
        refs = book.refs_seen()
        self.leased = {exact[ref] for ref in refs if ref in exact}
        others = [book.known(ref, oid) for ref, oid in refs.items() if ref not in exact]
        self.held = [
            lk.record
            for lk in others
            if lk is not None
            and lk.record.resource.startswith("issue:")
            and not lk.record.expired(now_ms)
        ]

    def covers(self, issue_id: bytes) -> bool:
        """A live lease on an issue prefix covers the issue."""
        resource = _resource(issue_id)
        return any(
            r.resource != resource and conflicts_with(r.resource, resource) for r in self.held
        )


def _claim_order(
    ctx: OpContext, candidates: list[IssueSummary], known: _Known, me_hex: str, me_handle: str
) -> list[IssueSummary]:
    """The candidates in the order to try them: oldest first, except that with other
    claimers at work the first few unclaimed ones that this request does not start at go
    last (grite.model.lease_arbitration.first_choice)."""
    mine = {me_hex, me_handle}
    busy = [s for s in candidates if s.issue_id in known.leased and not mine & set(s.assignees)]
    free = [
        s
        for s in candidates
        if not s.assignees and s.issue_id not in known.leased and not known.covers(s.issue_id)
    ]
    skip = first_choice(len(free), len(busy), ctx.derive_id(b"claim-spread"))
    if skip == 0:
        return candidates
    later = {s.issue_id for s in free[:skip]}
    return [s for s in candidates if s.issue_id not in later] + free[:skip]


class _Pick:
    """What one round chose: the issue and its lease (to take, or this request's own from
    an earlier attempt), and what the round passed over."""

    __slots__ = ("issue", "lease", "passed", "resumed", "unknown")

    def __init__(self) -> None:
        self.issue: IssueSummary | None = None
        self.lease: StoredLock | None = None
        self.resumed = False
        self.passed = 0  # claimed issues passed over before the pick
        self.unknown = 0  # candidates leased by commits this clone has not fetched


class _Claimer:
    """The rounds of one claim request."""

    def __init__(
        self,
        book: LeaseBook,
        order: list[IssueSummary],
        known: _Known,
        me_hex: str,
        nonce_of: Callable[[bytes], str],
        now_ms: int,
        ttl: int,
    ) -> None:
        self.book = book
        self.order = order
        self.known = known
        self.me_hex = me_hex
        self.nonce_of = nonce_of
        self.now_ms = now_ms
        self.ttl = ttl
        self.excluded: set[bytes] = set()  # taken, then found closed or assigned
        self.pick = _Pick()

    def decide(self, current: dict[str, str]) -> Updates:
        """One round's choice, from the arbiter's lock refs now (grite.storage.lease_remote.Decide)."""
        self.pick = pick = _Pick()
        order = [s for s in self.order if s.issue_id not in self.excluded]
        # A retry of this request (same request id) resumes the lease it took before.
        for s in order:
            ref = lock_ref_name(_resource(s.issue_id))
            lock = self.book.known(ref, current[ref]) if ref in current else None
            if lock is not None and self._ours(lock.record, s.issue_id):
                pick.issue, pick.lease, pick.resumed = s, lock, True
                return {}
        for s in order:
            if s.assignees or self.known.covers(s.issue_id):
                pick.passed += 1
                continue
            ref = lock_ref_name(_resource(s.issue_id))
            parent = current.get(ref)
            if parent is not None:
                lock = self.book.known(ref, parent)
                if lock is None:
                    pick.unknown += 1
                    pick.passed += 1
                    continue
                if not lock.record.expired(self.now_ms):
                    pick.passed += 1
                    continue
            record = LockRecord(
                owner=self.me_hex,
                nonce=self.nonce_of(s.issue_id),
                expires_unix_ms=self.now_ms + self.ttl * 1000,
                resource=_resource(s.issue_id),
            )
            commit = self.book.write_commit(record, parent)
            pick.issue = s
            pick.lease = StoredLock(ref=ref, commit=commit, record=record)
            return {ref: (parent, commit)}
        return {}

    def _ours(self, record: LockRecord, issue_id: bytes) -> bool:
        return record.owner == self.me_hex and record.nonce == self.nonce_of(issue_id)

    def take(self, summaries: list[IssueSummary]) -> tuple[_Pick, int] | None:
        """Rounds until a lease is ours: (the pick, claimed issues passed over), or None.

        Raises:
            Conflict: every round was lost to other claimers.
        """
        passed = 0
        for _ in range(_CLAIM_ROUNDS):
            moved = self.book.swap_where(self.decide)
            pick = self.pick
            if pick.issue is None or pick.lease is None:
                if not pick.unknown:
                    return None
                # Leases this clone has not fetched may have expired: fetch, look again.
                self.book.refresh()
                self.known = _Known(self.book, summaries, self.now_ms)
                continue
            if pick.resumed or pick.lease.ref in moved:
                return pick, passed + pick.passed
            passed += 1  # another claimer took it between the look and the swap
        raise Conflict(
            f"every one of {_CLAIM_ROUNDS} claim attempts lost a race with other claimers; "
            "try again",
            {"rounds": _CLAIM_ROUNDS},
        )


def issue_claim(ctx: OpContext, args: IssueClaimArgs) -> IssueClaimResult:
    """Lease and assign the first ready issue nobody has claimed.

    Claimed means: assigned to anyone, or covered by an unexpired lease that is not this
    request's own. With a grite remote (unless `args.local`) the lease is decided there, in
    one push per round; the claim is acknowledged only once the remote has accepted it. The
    assignee added is the acting actor's handle (grite.model.names); its event goes to the local WAL and
    reaches other clones with the next `grite sync` (the lease keeps them off meanwhile).

    Raises:
        NotFound: no ready issue is left unclaimed.
        Environment: the grite remote cannot be reached (nothing was taken).
        Conflict: every attempt lost a race with other claimers.
    """
    ttl = parse_ttl(args.ttl)
    me_hex, me_handle = my_handle(ctx)
    now = ctx.now_ms
    candidates = ready_summaries(ctx, args.labels)

    def nonce_of(issue_id: bytes) -> str:
        return nonce_from_bytes(ctx.derive_id(b"claim" + issue_id))

    skipped = 0
    with open_leases(ctx, local=args.local, doing="claim an issue") as book:
        summaries = ctx.handle.summaries() if candidates else []
        known = _Known(book, summaries, now)
        order = _claim_order(ctx, candidates, known, me_hex, me_handle)
        claimer = _Claimer(book, order, known, me_hex, nonce_of, now, ttl)
        while candidates:
            taken = claimer.take(summaries)
            if taken is None:
                break
            pick, passed = taken
            assert pick.issue is not None and pick.lease is not None
            s, lease = pick.issue, pick.lease
            skipped += passed
            p = ctx.handle.projection(s.issue_id)
            assigned = p is not None and any(v.present for v in p.assignees.values())
            if not pick.resumed and (p is None or p.state != "open" or assigned):
                # Assigned or closed between our read and our lease: not ours to take.
                book.delete(lease)
                claimer.excluded.add(s.issue_id)
                skipped += 1
                continue
            try:
                write = write_events(ctx, s.issue_id, [AssigneeAdded(user=me_handle)], "assigned")
            except BaseException:
                _give_back(book, lease)
                raise
            after = ctx.handle.summaries()
            current = next((x for x in after if x.issue_id == s.issue_id), s)
            return IssueClaimResult(
                issue=row(current),
                assignee=me_handle,
                lease_resource=lease.record.resource,
                lease_owner=me_hex,
                lease_expires_unix_ms=lease.record.expires_unix_ms,
                event_ids=write.event_ids,
                wal_head=write.wal_head,
                skipped=skipped,
                remote=remote_of(book),
            )
    if candidates:
        why = f"all {len(candidates)} ready issues are already claimed (assigned or leased)"
    else:
        why = "no issue is ready (open, with nothing open holding it back)"
    raise NotFound(
        f"no ready issue to claim: {why}; run 'grite issue ready' to see the queue, or "
        "'grite lock status' to see the leases",
        {"ready": len(candidates), "claimed": len(candidates)},
    )


def _give_back(book: LeaseBook, lease: StoredLock) -> None:
    """Release a lease whose assignment failed; if that fails too, the lease expires."""
    try:
        book.delete(lease)
    except GriteError:
        pass  # the assignment's own error is the one to report
