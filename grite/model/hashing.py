"""Canonical CBOR preimage and event_id (grite 0.5.3: https://github.com/neul-labs/grite/blob/main/crates/libgrite-core/src/hash.rs).

cbor2 emits definite lengths and minimal integer heads for lists, ints, bytes and text, which is
exactly RFC 8949 preferred serialization for the shapes we hash; test vectors V1-V3 pin it.
"""

from __future__ import annotations

import hashlib

import cbor2
import msgspec

from grite.model.events import ContextUpdated, Event, EventKind, IssueCreated

__all__ = ["compute_event_id", "event_preimage", "make_event", "verify_event_id"]

_PREIMAGE_VERSION = 1


def event_preimage(
    issue_id: bytes, actor: bytes, ts_unix_ms: int, parent: bytes | None, kind: EventKind
) -> bytes:
    return cbor2.dumps(
        [_PREIMAGE_VERSION, issue_id, actor, ts_unix_ms, parent, kind.TAG, kind.payload()]
    )


def compute_event_id(
    issue_id: bytes, actor: bytes, ts_unix_ms: int, parent: bytes | None, kind: EventKind
) -> bytes:
    pre = event_preimage(issue_id, actor, ts_unix_ms, parent, kind)
    return hashlib.blake2b(pre, digest_size=32).digest()


def make_event(
    *,
    issue_id: bytes,
    actor: bytes,
    ts_unix_ms: int,
    kind: EventKind,
    parent: bytes | None = None,
    sig: bytes | None = None,
) -> Event:
    """Build an Event with its id computed from the preimage.

    IssueCreated labels and ContextUpdated symbols are stored sorted, as the payload hashes
    them, so that an event decoded from a chunk equals the one that was written.
    """
    if isinstance(kind, IssueCreated):
        kind = IssueCreated(title=kind.title, body=kind.body, labels=sorted(kind.labels))
    elif isinstance(kind, ContextUpdated):
        symbols = sorted(kind.symbols, key=lambda s: (s.name, s.kind))
        kind = msgspec.structs.replace(kind, symbols=symbols)
    event_id = compute_event_id(issue_id, actor, ts_unix_ms, parent, kind)
    return Event(
        event_id=event_id,
        issue_id=issue_id,
        actor=actor,
        ts_unix_ms=ts_unix_ms,
        parent=parent,
        kind=kind,
        sig=sig,
    )


def verify_event_id(event: Event) -> bool:
    return event.event_id == compute_event_id(
        event.issue_id, event.actor, event.ts_unix_ms, event.parent, event.kind
    )
