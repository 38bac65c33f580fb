"""Notifications a daemon publishes about one repository, and their codec.

A watcher receives, per WAL commit in WAL order, one IssueChanged per event of that commit and
then one WalAdvanced naming the commit (so the last WalAdvanced seen is always a safe point to
resume from with `grite watch --since`). LockChanged and SnapshotCreated report the other refs;
Subscribed opens every live stream, naming the head it starts after.
The union is tagged (`"type"`); a receiver skips variants it does not know (`decode` returns
None), so new variants can be added without breaking older clients. Tags never change.

Pure: imports only msgspec; no I/O.
"""

from __future__ import annotations

from typing import Literal

import msgspec

__all__ = [
    "NULL_HEAD",
    "WAL_SOURCES",
    "IssueChanged",
    "LockChanged",
    "Notification",
    "SnapshotCreated",
    "Subscribed",
    "WalAdvanced",
    "decode",
    "decode_json",
    "encode",
    "encode_json",
]

# Why the WAL moved: a write the daemon ran, a sync the daemon ran, anything else it noticed
# (another process, `git fetch`), or history replayed for `watch --since`.
WAL_SOURCES = ("local_write", "sync", "external", "replay")
WalSource = Literal["local_write", "sync", "external", "replay"]
# As a `since`, "before the first WAL commit": replay the whole WAL.
NULL_HEAD = "0" * 40


class IssueChanged(msgspec.Struct, frozen=True, kw_only=True, tag="issue_changed"):
    """One event was added to an issue. `kind` is the event kind's name (e.g. CommentAdded)."""

    issue_id: str
    event_id: str
    kind: str
    actor: str = ""
    wal_commit: str = ""  # the WAL commit that carries the event


class WalAdvanced(msgspec.Struct, frozen=True, kw_only=True, tag="wal_advanced"):
    """`refs/grite/wal` moved from `previous` (None: it did not exist) to `wal_head`."""

    wal_head: str
    previous: str | None
    source: str  # one of WAL_SOURCES; receivers must accept values they do not know
    events: int = 0  # how many events the commit carries


class LockChanged(msgspec.Struct, frozen=True, kw_only=True, tag="lock_changed"):
    """A lease lock was taken, renewed or released (`expires_ms` 0 and owner "" = released)."""

    resource: str
    owner: str
    expires_ms: int


class SnapshotCreated(msgspec.Struct, frozen=True, kw_only=True, tag="snapshot_created"):
    """A snapshot ref was written."""

    ref: str


class Subscribed(msgspec.Struct, frozen=True, kw_only=True, tag="subscribed"):
    """First live notification of a watch (after any replay): everything after `wal_head`
    follows. `wal_head` None means the WAL was empty; resume from NULL_HEAD then."""

    wal_head: str | None


Notification = IssueChanged | WalAdvanced | LockChanged | SnapshotCreated | Subscribed


class _Tag(msgspec.Struct, kw_only=True):
    type: str = ""


_msgpack_encoder = msgspec.msgpack.Encoder()
_msgpack_decoder: msgspec.msgpack.Decoder[Notification] = msgspec.msgpack.Decoder(Notification)
_json_encoder = msgspec.json.Encoder()
_json_decoder: msgspec.json.Decoder[Notification] = msgspec.json.Decoder(Notification)
_tag_decoder = msgspec.msgpack.Decoder(_Tag)


def encode(note: Notification) -> bytes:
    """msgpack bytes of a notification (the wire form)."""
    return _msgpack_encoder.encode(note)


def decode(data: bytes) -> Notification | None:
    """Decode a notification; None when it is a variant this build does not know.

    Raises:
        msgspec.DecodeError: the bytes are not a notification at all.
    """
    try:
        return _msgpack_decoder.decode(data)
    except msgspec.ValidationError:
        _tag_decoder.decode(data)  # raises if it is not even a tagged map
        return None


def encode_json(note: Notification) -> bytes:
    """One JSON object (no newline): the `grite watch --json` line."""
    return _json_encoder.encode(note)


def decode_json(line: str | bytes) -> Notification | None:
    """Decode a `grite watch --json` line; None for an unknown variant."""
    try:
        return _json_decoder.decode(line)
    except msgspec.ValidationError:
        return None
