"""Lease locks as pure rules: resources, their conflicts, TTLs and the lock record
(as grite 0.5.3:
https://github.com/neul-labs/grite/blob/main/crates/libgrite-core/src/lock.rs).

A resource is `namespace:rest` with namespace `repo`, `path` or `issue`. `repo:` conflicts with
every resource; two `path:` resources conflict when one path contains the other; two `issue:`
resources conflict when they name the same issue (a hex prefix of 4+ characters names the
issues it prefixes, so a lock taken with a short id still guards the issue). These rules apply
to acquiring a lock as much as to the lock policy on writes.

Pure: imports only grite.model; time and randomness come in as arguments.
"""

from __future__ import annotations

import hashlib
import re
from typing import Literal

import msgspec

from grite.model.errors import InvalidArgs
from grite.model.ids import MIN_PREFIX_LEN, is_hex

__all__ = [
    "DEFAULT_TTL_SECONDS",
    "LOCK_POLICIES",
    "NAMESPACES",
    "LockRecord",
    "LockPolicy",
    "conflicts_with",
    "lock_ref_name",
    "nonce_from_bytes",
    "parse_resource",
    "parse_ttl",
    "paths_overlap",
    "resource_hash",
]

NAMESPACES = ("repo", "path", "issue")
LOCK_POLICIES = ("off", "warn", "require")
LockPolicy = Literal["off", "warn", "require"]
DEFAULT_TTL_SECONDS = 300
_MAX_TTL_SECONDS = 366 * 24 * 3600
_TTL = re.compile(r"(\d+)\s*([smhd]?)")
_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}


class LockRecord(msgspec.Struct, frozen=True, kw_only=True):
    """The content of `lock.json` (field order is the on-disk order of grite 0.5.3)."""

    owner: str
    nonce: str
    expires_unix_ms: int
    resource: str

    def expired(self, now_ms: int) -> bool:
        """Expired once `now_ms` reaches the expiry (non-strict, as in the reference)."""
        return now_ms >= self.expires_unix_ms

    def remaining_seconds(self, now_ms: int) -> int:
        return max(0, (self.expires_unix_ms - now_ms + 999) // 1000)


def parse_resource(text: str) -> str:
    """Validate a resource string and return its canonical form.

    Args:
        text: `repo:NAME`, `path:PATH` or `issue:ID` as typed by a user.

    Returns:
        The resource; issue ids are lowercased.

    Raises:
        InvalidArgs: no namespace, an unknown namespace, or nothing after the colon.
    """
    ns, sep, rest = text.partition(":")
    example = "e.g. repo:global, path:src/ or issue:<id>"
    if not sep:
        raise InvalidArgs(
            f"lock resource {text!r} has no namespace; write it as namespace:name, {example}",
            {"resource": text},
        )
    if ns not in NAMESPACES:
        raise InvalidArgs(
            f"lock resource {text!r} has an unknown namespace {ns!r}; use one of "
            f"{', '.join(NAMESPACES)} ({example})",
            {"resource": text},
        )
    if not rest.strip():
        raise InvalidArgs(
            f"lock resource {text!r} names nothing after '{ns}:'; {example}",
            {"resource": text},
        )
    if ns == "issue":
        rest = rest.strip().lower()
    return f"{ns}:{rest}"


def parse_ttl(text: str | int | None) -> int:
    """Parse a lease length: `300` (seconds), `30s`, `15m`, `2h`, `1d`.

    Returns:
        Seconds (DEFAULT_TTL_SECONDS for None).

    Raises:
        InvalidArgs: not a positive duration, or longer than a year.
    """
    if text is None:
        return DEFAULT_TTL_SECONDS
    match = _TTL.fullmatch(str(text).strip().lower())
    if match is None:
        raise InvalidArgs(
            f"invalid --ttl {text!r}: give seconds (300) or a number with a unit s, m, h or d "
            "(30s, 15m, 2h, 1d)",
            {"value": str(text)},
        )
    seconds = int(match.group(1)) * _UNITS[match.group(2)]
    if seconds <= 0 or seconds > _MAX_TTL_SECONDS:
        raise InvalidArgs(
            f"invalid --ttl {text!r}: the lease must be between 1 second and 366 days",
            {"value": str(text)},
        )
    return seconds


def _namespace(resource: str) -> tuple[str, str]:
    ns, sep, rest = resource.partition(":")
    return (ns, rest) if sep else (resource, "")


def paths_overlap(a: str, b: str) -> bool:
    """Whether one path contains the other (`src/` holds `src/main.rs`; `src` is not `srcx`)."""
    a, b = a.rstrip("/"), b.rstrip("/")
    if a in ("", ".") or b in ("", "."):
        return True  # the repository root holds every path
    return a == b or a.startswith(b + "/") or b.startswith(a + "/")


def _issues_overlap(a: str, b: str) -> bool:
    a, b = a.lower(), b.lower()
    if a == b:
        return True
    if is_hex(a) and is_hex(b) and min(len(a), len(b)) >= MIN_PREFIX_LEN:
        return a.startswith(b) or b.startswith(a)
    return False


def conflicts_with(held: str, wanted: str) -> bool:
    """Whether a lock on `held` stands in the way of `wanted` (symmetric).

    Expiry and ownership are the caller's business: this compares resources only.
    """
    ns_a, rest_a = _namespace(held)
    ns_b, rest_b = _namespace(wanted)
    if ns_a == "repo" or ns_b == "repo":
        return True
    if ns_a == ns_b == "path":
        return paths_overlap(rest_a, rest_b)
    if ns_a == ns_b == "issue":
        return _issues_overlap(rest_a, rest_b)
    return held == wanted


def resource_hash(resource: str) -> str:
    """The first 8 bytes of SHA-256 of the resource, as 16 hex characters."""
    return hashlib.sha256(resource.encode("utf-8")).hexdigest()[:16]


def lock_ref_name(resource: str) -> str:
    return f"refs/grite/locks/{resource_hash(resource)}"


def nonce_from_bytes(raw: bytes) -> str:
    """A UUID version 4 string made from 16 (random or derived) bytes."""
    b = bytearray(raw[:16].ljust(16, b"\0"))
    b[6] = (b[6] & 0x0F) | 0x40
    b[8] = (b[8] & 0x3F) | 0x80
    h = b.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"
