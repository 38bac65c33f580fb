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


class LockRenewArgs(msgspec.Struct, frozen=True, kw_only=True, tag="lock_renew"):
    resource: str
    ttl: str | None = None


class LockReleaseArgs(msgspec.Struct, frozen=True, kw_only=True, tag="lock_release"):
    resource: str


class LockStatusArgs(msgspec.Struct, frozen=True, kw_only=True, tag="lock_status"):
    pass


class LockGcArgs(msgspec.Struct, frozen=True, kw_only=True, tag="lock_gc"):
    pass


class LockResult(msgspec.Struct, frozen=True, kw_only=True):
    """A lock this actor now holds (acquire and renew)."""

    action: str  # "acquired", "refreshed" or "renewed"
    resource: str
    owner: str
    nonce: str
    expires_unix_ms: int
    ttl_seconds: int
    ref: str


class LockReleaseResult(msgspec.Struct, frozen=True, kw_only=True):
    resource: str
    released: bool


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


class LockGcResult(msgspec.Struct, frozen=True, kw_only=True):
    removed: int
    kept: int
