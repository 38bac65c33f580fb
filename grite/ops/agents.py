"""Agent operations: the ready queue (`issue ready`) and the atomic claim (`issue ready --claim`),
plus OpRunner, which runs any operation from its args Struct outside argv parsing (the daemon's
typed `Op` request, `grite batch` and `grite.Client` in-process all go through it).

Claim atomicity: the `issue:<id>` lease ref is created with git's create-if-absent (or replaced
by compare-and-swap when expired), which exactly one process wins, whoever else tries at the
same moment, in this or another process, and -- when the repository has a grite remote -- in
any clone of that remote, because the ref is then changed on the remote by a compare-and-swap
push (grite.storage.lock_remote); only the winner assigns the issue. Two claimers under
the SAME actor also exclude each other: a lease is ours only when its nonce is the one derived
from this request, so a retried request (same request id) resumes its own claim and any other
request treats the issue as taken. Must not import grite.cli, grite.ipc or grite.daemon.
"""

from __future__ import annotations

import functools
import operator
import typing
from collections.abc import Callable, Mapping
from typing import Any

import msgspec

from grite.model.depgraph import ready_issue_ids
from grite.model.errors import Conflict, GriteError, InvalidArgs, NotFound
from grite.model.events import AssigneeAdded
from grite.model.leases import first_choice
from grite.model.locks import (
    LockRecord,
    conflicts_with,
    lock_ref_name,
    nonce_from_bytes,
    parse_ttl,
)
from grite.model.projection import IssueSummary
from grite.model.requests_agents import (
    IssueClaimArgs,
    IssueClaimResult,
    IssueReadyArgs,
    IssueReadyResult,
)
from grite.ops.actors import actor_bytes, resolve_actor
from grite.ops.context import ActorSelector, OpContext
from grite.ops.issues import row, write_events
from grite.ops.leases import open_leases, remote_of
from grite.ops.repo_handle import RepoHandle
from grite.storage.lock_remote import LeaseBook
from grite.storage.locks import StoredLock
from grite.storage.repo import RepoPaths, discover_repo

__all__ = ["OpRunner", "issue_claim", "issue_ready"]


def _ready(ctx: OpContext, labels: list[str]) -> list[IssueSummary]:
    summaries = ctx.handle.summaries()
    by_id = {s.issue_id: s for s in summaries}
    deps = {s.issue_id: s.dependencies for s in summaries}
    wanted = {x.strip() for x in labels if x.strip()}
    ready = [by_id[i] for i in ready_issue_ids(summaries, deps)]
    return [s for s in ready if wanted.issubset(s.labels)]


def issue_ready(ctx: OpContext, args: IssueReadyArgs) -> IssueReadyResult:
    """Open issues none of whose depends_on targets is open and that no open issue blocks.

    Ordered by (created_ts, issue_id): oldest first, stable across calls and machines.
    """
    rows = [row(s) for s in _ready(ctx, args.labels)]
    return IssueReadyResult(issues=rows, total=len(rows))


# Rounds of "decide from the arbiter's refs, compare-and-swap" before giving up: each lost
# round means another claimer just took an issue, so this bounds a burst of bad luck.
_CLAIM_ROUNDS = 50


def _live_issue_leases(locks: list[StoredLock], now_ms: int) -> list[LockRecord]:
    return [
        lk.record
        for lk in locks
        if lk.record.resource.startswith("issue:") and not lk.record.expired(now_ms)
    ]


def _claimed(s: IssueSummary, held: list[LockRecord], nonce_of: Callable[[bytes], str]) -> bool:
    """Assigned to anyone, or leased by anyone but this very request."""
    resource = f"issue:{s.issue_id.hex()}"
    nonce = nonce_of(s.issue_id)
    if any(r.resource == resource and r.nonce == nonce for r in held):
        return False
    return bool(s.assignees) or any(conflicts_with(r.resource, resource) for r in held)


def _claim_order(
    ctx: OpContext,
    candidates: list[IssueSummary],
    held: list[LockRecord],
    me_hex: str,
    nonce_of: Callable[[bytes], str],
) -> list[IssueSummary]:
    """The candidates in the order to try them: oldest first, except that with other
    claimers at work the first few unclaimed ones that this request does not start at go
    last (grite.model.leases.first_choice)."""
    ready = {f"issue:{s.issue_id.hex()}" for s in candidates}
    contenders = sum(1 for r in held if r.owner != me_hex and r.resource in ready)
    free = [s for s in candidates if not _claimed(s, held, nonce_of)]
    skip = first_choice(len(free), contenders, ctx.derive_id(b"claim-spread"))
    if skip == 0:
        return candidates
    later = {s.issue_id for s in free[:skip]}
    return [s for s in candidates if s.issue_id not in later] + free[:skip]


class _Pick:
    """What one round of a claim chose: the issue, and its lease (to take, or this
    request's own from an earlier attempt), plus what the round saw."""

    __slots__ = ("issue", "lease", "passed", "resumed", "unknown")

    def __init__(self) -> None:
        self.issue: IssueSummary | None = None
        self.lease: StoredLock | None = None
        self.resumed = False
        self.passed = 0  # claimed issues passed over before the pick
        self.unknown = 0  # candidates leased by commits this clone has not fetched


class _Claimer:
    """One claim request: decides, from the arbiter's lock refs at the moment of a
    compare-and-swap, which issue to take (grite.storage.lock_remote.Decide)."""

    def __init__(
        self,
        book: LeaseBook,
        order: list[IssueSummary],
        held: list[LockRecord],
        me_hex: str,
        nonce_of: Callable[[bytes], str],
        now_ms: int,
        ttl: int,
    ) -> None:
        self.book = book
        self.order = order
        self.held = held
        self.me_hex = me_hex
        self.nonce_of = nonce_of
        self.now_ms = now_ms
        self.ttl = ttl
        self.excluded: set[bytes] = set()  # taken, then found closed or assigned
        self.pick = _Pick()

    def decide(self, current: dict[str, str]) -> dict[str, tuple[str | None, str | None]]:
        self.pick = pick = _Pick()
        order = [s for s in self.order if s.issue_id not in self.excluded]
        # A retry of this request (same request id) resumes the lease it took before.
        for s in order:
            ref = lock_ref_name(f"issue:{s.issue_id.hex()}")
            lock = self.book.known(ref, current[ref]) if ref in current else None
            if lock is not None and self._ours(lock.record, s):
                pick.issue, pick.lease, pick.resumed = s, lock, True
                return {}
        for s in order:
            resource = f"issue:{s.issue_id.hex()}"
            others = [r for r in self.held if r.resource != resource]
            if s.assignees or any(conflicts_with(r.resource, resource) for r in others):
                pick.passed += 1
                continue
            ref = lock_ref_name(resource)
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
                resource=resource,
            )
            commit = self.book.write_commit(record, parent)
            pick.issue = s
            pick.lease = StoredLock(ref=ref, commit=commit, record=record)
            return {ref: (parent, commit)}
        return {}

    def _ours(self, record: LockRecord, s: IssueSummary) -> bool:
        return record.owner == self.me_hex and record.nonce == self.nonce_of(s.issue_id)

    def take(self) -> tuple[IssueSummary, StoredLock, bool, int] | None:
        """Rounds until a lease is ours: (issue, lease, resumed, passed over), or None.

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
                # Leases this clone has not seen yet may have expired: fetch, look again.
                self.book.refresh()
                self.held = _live_issue_leases(self.book.seen(), self.now_ms)
                continue
            if pick.resumed or pick.lease.ref in moved:
                return pick.issue, pick.lease, pick.resumed, passed + pick.passed
            passed += 1  # another claimer took it between the look and the swap
        raise Conflict(
            f"every one of {_CLAIM_ROUNDS} claim attempts lost a race with other claimers; "
            "try again",
            {"rounds": _CLAIM_ROUNDS},
        )


def issue_claim(ctx: OpContext, args: IssueClaimArgs) -> IssueClaimResult:
    """Lease and assign the first ready issue nobody has claimed.

    Claimed means: assigned to anyone, or covered by an unexpired `issue:` lease that is not
    this request's own. The lease is decided by the grite remote when there is one (unless
    `args.local`; see grite.ops.leases), in one compare-and-swap push that picks the issue
    from the remote's lock refs as the push finds them: the claim is acknowledged only once
    the remote has accepted it, and a lease lost to another clone moves on to the next
    issue. The assignee added is the acting actor's id (hex); its event goes to the local WAL
    and reaches other clones with the next `grite sync` (the lease already keeps them off).

    Raises:
        NotFound: no ready issue is left unclaimed.
        Environment: the grite remote cannot be reached (retry, or pass local).
        Conflict: every attempt lost a race with other claimers.
    """
    ttl = parse_ttl(args.ttl)
    me_hex = actor_bytes(ctx).hex()
    now = ctx.now_ms
    candidates = _ready(ctx, args.labels)

    def nonce_of(issue_id: bytes) -> str:
        return nonce_from_bytes(ctx.derive_id(b"claim" + issue_id))

    skipped = 0
    with open_leases(ctx, local=args.local, doing="claim an issue") as book:
        held = _live_issue_leases(book.seen(), now) if candidates else []
        order = _claim_order(ctx, candidates, held, me_hex, nonce_of)
        claimer = _Claimer(book, order, held, me_hex, nonce_of, now, ttl)
        while candidates:
            taken = claimer.take()
            if taken is None:
                break
            s, lease, resumed, passed = taken
            skipped += passed
            p = ctx.handle.projection(s.issue_id)
            assigned = p is not None and any(v.present for v in p.assignees.values())
            if not resumed and (p is None or p.state != "open" or assigned):
                # Assigned or closed between our read and our lease: not ours to take.
                book.delete(lease)
                claimer.excluded.add(s.issue_id)
                skipped += 1
                continue
            try:
                write = write_events(ctx, s.issue_id, [AssigneeAdded(user=me_hex)], "assigned")
            except BaseException:
                _give_back(book, lease)
                raise
            after = ctx.handle.summaries()
            current = next((x for x in after if x.issue_id == s.issue_id), s)
            return IssueClaimResult(
                issue=row(current),
                assignee=me_hex,
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


def _give_back(store: LeaseBook, lease: StoredLock) -> None:
    """Release a lease whose assignment failed; if that fails too, the lease expires."""
    try:
        store.delete(lease)
    except GriteError:
        pass  # the assignment's own error is the one to report


OpFunction = Callable[[OpContext, Any], Any]


class OpRunner:
    """Runs operations given as args Structs, for callers that have no argv to parse.

    Args:
        operations: the table from args type to op function (grite.cli.app.OPERATIONS); it
            is passed in because ops must not import the CLI.
    """

    def __init__(self, operations: Mapping[type, OpFunction]) -> None:
        self._ops = dict(operations)
        union = functools.reduce(operator.or_, self._ops)
        self._msgpack: msgspec.msgpack.Decoder[Any] = msgspec.msgpack.Decoder(union)
        self._json: msgspec.json.Decoder[Any] = msgspec.json.Decoder(union)
        self._results: dict[type, type | None] = {}

    def decode(self, data: bytes, *, json: bool = False) -> Any:
        """Decode one args Struct from msgpack (or JSON) using its `"type"` tag.

        Raises:
            InvalidArgs: not an object, an unknown type, or fields that do not fit.
        """
        try:
            return (self._json if json else self._msgpack).decode(data)
        except msgspec.DecodeError as exc:
            raise InvalidArgs(
                f'invalid command: {exc}; a command is an object whose "type" names the '
                'operation, e.g. {"type": "issue_show", "issue": "abcd"} (see grite(1), BATCH)',
                {"error": str(exc)},
            ) from exc

    def result_type(self, args_type: type) -> type | None:
        """The result Struct an operation returns (from its annotation), if declared."""
        if args_type not in self._results:
            fn = self._ops.get(args_type)
            hint: Any = None
            if fn is not None:
                try:
                    hint = typing.get_type_hints(fn).get("return")
                except (NameError, TypeError):
                    hint = None
            self._results[args_type] = hint if isinstance(hint, type) else None
        return self._results[args_type]

    def run(
        self,
        args: Any,
        *,
        cwd: str,
        opener: Callable[[RepoPaths], RepoHandle],
        request_id: bytes,
        now_ms: int,
        actor: str | None = None,
        data_dir: str | None = None,
        warnings: list[str] | None = None,
    ) -> Any:
        """Run one operation against the repository containing `cwd`.

        Args:
            args: the args Struct.
            cwd: where to discover the repository from.
            opener: returns an open RepoHandle for the repository (warm in the daemon).
            request_id: idempotency key (new ids and event ids derive from it).
            now_ms: the client's clock (a retry reproduces identical events).
            actor: act as this actor id (like --actor).
            data_dir: actor data directory (like --data-dir), absolute or relative to cwd.
            warnings: receives lines to show the user (e.g. lock policy warnings).

        Returns:
            The operation's result Struct.

        Raises:
            GriteError: whatever the operation raises; InvalidArgs for an unknown type.
        """
        fn = self._ops.get(type(args))
        if fn is None:
            raise InvalidArgs(f"unknown operation {type(args).__name__}")
        paths = discover_repo(cwd)
        if data_dir is not None and not data_dir.startswith("/"):
            data_dir = f"{cwd.rstrip('/')}/{data_dir}"
        selector = ActorSelector(actor=actor or None, data_dir=data_dir)
        ctx = OpContext(
            paths=paths,
            opener=opener,
            selector=selector,
            request_id=request_id,
            now_ms=now_ms,
            warnings=warnings,
        )
        if selector.actor is not None or selector.data_dir is not None:
            resolve_actor(ctx, create=False)
        return fn(ctx, args)
