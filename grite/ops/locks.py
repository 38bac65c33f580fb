"""Lease lock operations (`grite lock acquire|renew|release|status|gc`) and the lock policy
that every issue write passes through (`check_lock_policy`, called by
grite.ops.issues.write_events).

Acquire, renew, release and gc are decided where grite.ops.lease_arbiter says: on the grite remote
when the repository has one (unless `--local`), else in this clone's refs; either way each
change is a compare-and-swap of one lock ref. Acquire checks every unexpired lock of another
actor for a namespace conflict first (a held `path:src/` blocks `path:src/main.rs`; `repo:`
blocks everything), then creates the exact ref atomically. Two actors taking overlapping (not identical) resources at the same instant can
both pass the first check; each re-checks after winning its ref and backs off if it now sees a
conflicting lock, so at worst both fail and retry, and never do both hold. Locks held by the
acting actor never block it.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import msgspec

from grite.model.errors import Conflict
from grite.model.leases import (
    DEFAULT_TTL_SECONDS,
    LockRecord,
    conflicts_with,
    nonce_from_bytes,
    parse_resource,
    parse_ttl,
)
from grite.model.requests_locks import (
    LockAcquireArgs,
    LockGcArgs,
    LockGcResult,
    LockInfo,
    LockReleaseArgs,
    LockReleaseResult,
    LockRenewArgs,
    LockResult,
    LockStatusArgs,
    LockStatusResult,
)
from grite.ops.actors import actor_bytes
from grite.ops.context import OpContext
from grite.ops.lease_arbiter import open_leases, remote_of
from grite.storage.config import effective_lock_policy
from grite.storage.lease_refs import LockStore, StoredLock
from grite.storage.lease_remote import LeaseBook

__all__ = [
    "check_lock_policy",
    "held_for_write",
    "lock_acquire",
    "lock_gc",
    "lock_policy",
    "lock_release",
    "lock_renew",
    "lock_status",
]

# Compare-and-swap attempts before reporting that the lock keeps changing under us.
_ATTEMPTS = 20


def lock_policy(ctx: OpContext) -> str:
    """The repository's lock policy: `off`, `warn` (default) or `require`; an unknown value
    is warned about once and read as grite 0.5.3 reads it (see effective_lock_policy)."""
    policy, problem = effective_lock_policy(ctx.repo_config())
    if problem is not None:
        ctx.warn_once(problem)
    return policy


def _blocking(locks: list[StoredLock], resource: str, me: str, now_ms: int) -> list[StoredLock]:
    return [
        lk
        for lk in locks
        if lk.record.owner != me
        and not lk.record.expired(now_ms)
        and conflicts_with(lk.record.resource, resource)
    ]


def _describe(lk: StoredLock, now_ms: int) -> str:
    r = lk.record
    return f"{r.resource} is locked by {r.owner} (expires in {r.remaining_seconds(now_ms)}s)"


def _conflict(resource: str, held: StoredLock, now_ms: int, verb: str = "acquire") -> Conflict:
    r = held.record
    return Conflict(
        f"cannot {verb} lock on {resource}: {r.resource} is held by {r.owner} "
        f"(expires in {r.remaining_seconds(now_ms)}s); wait for it to expire or ask its owner "
        "to run 'grite lock release', see 'grite lock status'",
        {
            "resource": resource,
            "held_resource": r.resource,
            "owner": r.owner,
            "expires_unix_ms": r.expires_unix_ms,
        },
    )


def check_lock_policy(ctx: OpContext, actor: bytes, resource: str) -> None:
    """Apply the lock policy to a write on `resource` by `actor`.

    `warn` adds one line per conflicting lock to `ctx.warnings`; `require` refuses.

    Raises:
        Conflict: policy `require` and another actor holds a conflicting, unexpired lock.
    """
    policy = lock_policy(ctx)
    if policy == "off":
        return
    blocking = _blocking(ctx.handle.locks().list(), resource, actor.hex(), ctx.now_ms)
    if not blocking:
        return
    if policy == "warn":
        ctx.warnings.extend(_describe(lk, ctx.now_ms) for lk in blocking)
        return
    held = "; ".join(_describe(lk, ctx.now_ms) for lk in blocking)
    raise Conflict(
        f"blocked by lock policy: {held}; nothing was written. Wait for the lock to expire, "
        "ask its owner to release it, or change lock_policy in .git/grite/config.toml",
        {"resource": resource, "locks": [lk.record.resource for lk in blocking]},
    )


def _result(action: str, lk: StoredLock, ttl: int, book: LeaseBook) -> LockResult:
    r = lk.record
    return LockResult(
        action=action,
        resource=r.resource,
        owner=r.owner,
        nonce=r.nonce,
        expires_unix_ms=r.expires_unix_ms,
        ttl_seconds=ttl,
        ref=lk.ref,
        remote=remote_of(book),
    )


def _take(
    ctx: OpContext, resource: str, ttl: int, renew: bool, local: bool, keep_longer: bool = False
) -> LockResult:
    """Take or extend a lease. With `keep_longer` (acquire without --ttl) a lease of ours
    that runs longer than `ttl` keeps its expiry: the default never shortens a lease."""
    me = actor_bytes(ctx).hex()
    now = ctx.now_ms
    record = LockRecord(
        owner=me,
        nonce=nonce_from_bytes(ctx.derive_id(b"lock-nonce")),
        expires_unix_ms=now + ttl * 1000,
        resource=resource,
    )
    doing = f"{'renew' if renew else 'acquire'} the lock on {resource}"
    with open_leases(ctx, local=local, doing=doing) as store:
        for _ in range(_ATTEMPTS):
            others = [
                lk
                for lk in _blocking(store.list(), resource, me, now)
                if lk.record.resource != resource
            ]
            if others:
                raise _conflict(resource, others[0], now)
            existing = store.read(resource)
            if existing is None:
                won = store.create(record)
                action = "acquired"
            else:
                ex = existing.record
                if ex.owner != me and (renew or not ex.expired(now)):
                    raise _conflict(resource, existing, now, "renew" if renew else "acquire")
                if keep_longer and ex.owner == me and ex.expires_unix_ms > record.expires_unix_ms:
                    record = msgspec.structs.replace(record, expires_unix_ms=ex.expires_unix_ms)
                    ttl = ex.remaining_seconds(now)
                won = store.replace(record, existing.commit)
                action = "renewed" if renew else ("refreshed" if ex.owner == me else "acquired")
            if won is None:
                continue  # the ref moved between our read and our write: look again
            store.refresh()  # on a remote, see what other clones took meanwhile
            late = [
                lk
                for lk in _blocking(store.list(), resource, me, now)
                if lk.record.resource != resource
            ]
            if late:
                # Someone took an overlapping resource while we took ours: back off.
                store.delete(won)
                raise _conflict(resource, late[0], now)
            return _result(action, won, ttl, store)
    raise Conflict(
        f"the lock on {resource} kept changing while taking it; try again",
        {"resource": resource},
    )


def lock_acquire(ctx: OpContext, args: LockAcquireArgs) -> LockResult:
    """Take (or refresh, when already ours) a lease on a resource."""
    resource = parse_resource(args.resource)
    ttl = parse_ttl(args.ttl)
    return _take(ctx, resource, ttl, renew=False, local=args.local, keep_longer=args.ttl is None)


def lock_renew(ctx: OpContext, args: LockRenewArgs) -> LockResult:
    """Extend our lease; a lock owned by another actor, even expired, is refused."""
    resource = parse_resource(args.resource)
    return _take(ctx, resource, parse_ttl(args.ttl), renew=True, local=args.local)


def lock_release(ctx: OpContext, args: LockReleaseArgs) -> LockReleaseResult:
    resource = parse_resource(args.resource)
    me = actor_bytes(ctx).hex()
    with open_leases(ctx, local=args.local, doing=f"release the lock on {resource}") as store:
        remote = remote_of(store)
        for _ in range(_ATTEMPTS):
            existing = store.read(resource)
            if existing is None:
                return LockReleaseResult(resource=resource, released=False, remote=remote)
            r = existing.record
            if r.owner != me and not r.expired(ctx.now_ms):
                raise Conflict(
                    f"cannot release lock on {resource}: it is owned by {r.owner} "
                    f"(expires in {r.remaining_seconds(ctx.now_ms)}s); only its owner can "
                    "release it before it expires",
                    {"resource": resource, "owner": r.owner},
                )
            if store.delete(existing):
                return LockReleaseResult(resource=resource, released=True, remote=remote)
    raise Conflict(f"the lock on {resource} kept changing; try again", {"resource": resource})


def lock_status(ctx: OpContext, args: LockStatusArgs) -> LockStatusResult:
    me = actor_bytes(ctx).hex()
    now = ctx.now_ms
    with LockStore(ctx.paths.git_dir) as store:
        locks = store.list()
    infos = [
        LockInfo(
            resource=lk.record.resource,
            owner=lk.record.owner,
            expires_unix_ms=lk.record.expires_unix_ms,
            time_remaining_seconds=lk.record.remaining_seconds(now),
            expired=lk.record.expired(now),
            mine=lk.record.owner == me,
            ref=lk.ref,
        )
        for lk in locks
    ]
    return LockStatusResult(locks=infos, total=len(infos), policy=lock_policy(ctx))


def lock_gc(ctx: OpContext, args: LockGcArgs) -> LockGcResult:
    """Delete every expired lock (whoever owned it), where leases are decided.

    On a remote, the expired leases go in one push, each deleted only if the remote still
    holds the very lease found expired: one renewed or taken over meanwhile stays, and no
    live lease is ever deleted.
    """
    with open_leases(ctx, local=args.local, doing="remove expired locks") as store:
        locks = store.list()
        expired = [lk for lk in locks if lk.record.expired(ctx.now_ms)]
        removed = store.delete_many(expired)
        return LockGcResult(removed=removed, kept=len(locks) - removed, remote=remote_of(store))


@contextmanager
def held_for_write(ctx: OpContext, issue_id: bytes, wanted: bool) -> Iterator[None]:
    """`--lock` on an issue write: hold `issue:<full id>` while the write runs, as grite 0.5.3
    does (https://github.com/neul-labs/grite, crates/grite/src/commands/issue.rs, LockGuard).

    The full id, lowercase, is the resource a 0.5.3 teammate's exact-match check
    (`check_lock("issue:<id as typed>")`) finds when they type the full id; prefixes they lock
    are found by our check (grite.model.leases.conflicts_with). A lock of ours that was already
    held stays held afterwards (0.5.3 would release it); one taken here is released even when
    the write fails.

    Raises:
        Conflict: another actor holds a conflicting lock; nothing was written.
    """
    if not wanted:
        yield
        return
    resource = f"issue:{issue_id.hex()}"
    # Clone-local, like 0.5.3's: the lease lives only as long as this one local write.
    taken = _take(ctx, resource, DEFAULT_TTL_SECONDS, renew=False, local=True)
    try:
        yield
    finally:
        if taken.action == "acquired":
            with LockStore(ctx.paths.git_dir) as store:
                existing = store.read(resource)
                if existing is not None and existing.record.nonce == taken.nonce:
                    store.delete(existing)
