"""Arguments and results of the lock commands (`grite lock ...`).

Same conventions as grite.model.requests: frozen, kw_only Structs; args are tagged with names
that never change.
"""

from __future__ import annotations

import msgspec

__all__ = [
    "LockAcquireArgs",
    "LockGcArgs",
    "LockGcResult",
    "LockInfo",
    "LockReleaseArgs",
    "LockReleaseResult",
    "LockRenewArgs",
    "LockResult",
    "LockStatusArgs",
    "LockStatusResult",
]


class LockAcquireArgs(msgspec.Struct, frozen=True, kw_only=True, tag="lock_acquire"):
    resource: str
    ttl: str | None = None
    local: bool = False  # this clone's leases only, even when a grite remote exists


class LockRenewArgs(msgspec.Struct, frozen=True, kw_only=True, tag="lock_renew"):
    resource: str
    ttl: str | None = None
    local: bool = False  # this clone's leases only, even when a grite remote exists


class LockReleaseArgs(msgspec.Struct, frozen=True, kw_only=True, tag="lock_release"):
    resource: str
    local: bool = False


class LockStatusArgs(msgspec.Struct, frozen=True, kw_only=True, tag="lock_status"):
    pass


class LockGcArgs(msgspec.Struct, frozen=True, kw_only=True, tag="lock_gc"):
    local: bool = False


class LockResult(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """A lock this actor now holds (acquire and renew). `remote` is left out when None, so
    a clone without a grite remote prints grite 0.5.3's fields only (as release and gc do)."""

    action: str  # "acquired", "refreshed" or "renewed"
    resource: str
    owner: str
    nonce: str
    expires_unix_ms: int
    ttl_seconds: int
    ref: str
    remote: str | None = None  # the git remote that granted the lease (None: this clone)


class LockReleaseResult(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    resource: str
    released: bool
    remote: str | None = None


class LockInfo(msgspec.Struct, frozen=True, kw_only=True):
    resource: str
    owner: str
    expires_unix_ms: int
    time_remaining_seconds: int
    expired: bool
    mine: bool
    ref: str


class LockStatusResult(msgspec.Struct, frozen=True, kw_only=True):
    locks: list[LockInfo]
    total: int
    policy: str


class LockGcResult(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    removed: int
    kept: int
    remote: str | None = None  # where the expired leases were removed (None: this clone)
