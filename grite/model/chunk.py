"""The `GRITECNK` chunk codec, byte-exact with grite 0.5.3 (reference section 5.4).

A chunk is an 18-byte header (magic, version u16 little-endian, codec name length, "cbor-v1")
followed by one CBOR array of 8-element records. Decoding verifies every record's event_id, so
a tampered chunk is reported, never used.
"""

from __future__ import annotations

import hashlib
import io
import struct
from typing import Any

import cbor2

from grite.model.errors import CorruptData
from grite.model.events import Event, kind_from_payload
from grite.model.hashing import compute_event_id

__all__ = ["CHUNK_MAGIC", "chunk_hash", "decode_chunk", "encode_chunk"]

CHUNK_MAGIC = b"GRITECNK"
_VERSION = 1
_CODEC = b"cbor-v1"
_HEADER = CHUNK_MAGIC + struct.pack("<HB", _VERSION, len(_CODEC)) + _CODEC


def chunk_hash(data: bytes) -> str:
    """BLAKE2b-256 of the whole chunk file, as lowercase hex."""
    return hashlib.blake2b(data, digest_size=32).hexdigest()


def encode_chunk(events: list[Event]) -> bytes:
    records = [
        [
            e.event_id,
            e.issue_id,
            e.actor,
            e.ts_unix_ms,
            e.parent,
            e.kind.TAG,
            e.kind.payload(),
            e.sig,
        ]
        for e in events
    ]
    return _HEADER + cbor2.dumps(records)


def _record_bytes(value: Any, n: int, name: str) -> bytes:
    if not isinstance(value, bytes) or len(value) != n:
        raise CorruptData(f"chunk record: {name} must be {n} bytes")
    return value


def decode_chunk(data: bytes, verify: bool = True) -> list[Event]:
    """Decode a chunk file into events, in stored order.

    Args:
        data: the whole chunk file.
        verify: recompute every event_id and refuse a mismatch.

    Raises:
        CorruptData: bad header, undecodable CBOR, malformed record, or an event_id mismatch.
    """
    if len(data) < 11:
        raise CorruptData("chunk too small")
    if data[:8] != CHUNK_MAGIC:
        raise CorruptData("invalid chunk magic bytes")
    (version,) = struct.unpack_from("<H", data, 8)
    if version != _VERSION:
        raise CorruptData(f"unsupported chunk version: {version}")
    codec_len = data[10]
    codec = data[11 : 11 + codec_len]
    if len(codec) != codec_len:
        raise CorruptData("truncated chunk codec name")
    if codec != _CODEC:
        raise CorruptData(f"unsupported chunk codec: {codec.decode('latin-1')!r}")
    body = io.BytesIO(data[11 + codec_len :])
    try:
        records = cbor2.CBORDecoder(body).decode()
    except Exception as exc:  # cbor2 raises several unrelated types for bad input
        raise CorruptData(f"chunk CBOR does not decode: {exc}") from exc
    if body.read(1):
        raise CorruptData("chunk has bytes after its CBOR array")
    if not isinstance(records, list):
        raise CorruptData("chunk body is not an array")
    events = []
    for rec in records:
        if not isinstance(rec, list) or len(rec) != 8:
            raise CorruptData("chunk record must have 8 fields")
        event_id = _record_bytes(rec[0], 32, "event_id")
        issue_id = _record_bytes(rec[1], 16, "issue_id")
        actor = _record_bytes(rec[2], 16, "actor")
        ts = rec[3]
        if not isinstance(ts, int) or isinstance(ts, bool) or ts < 0:
            raise CorruptData("chunk record: ts must be an unsigned integer")
        parent = None if rec[4] is None else _record_bytes(rec[4], 32, "parent")
        tag = rec[5]
        if not isinstance(tag, int) or isinstance(tag, bool):
            raise CorruptData("chunk record: kind tag must be an integer")
        kind = kind_from_payload(tag, rec[6])
        sig = rec[7]
        if sig is not None and not isinstance(sig, bytes):
            raise CorruptData("chunk record: sig must be bytes or null")
        if verify:
            computed = compute_event_id(issue_id, actor, ts, parent, kind)
            if computed != event_id:
                raise CorruptData(
                    f"event_id mismatch: stored {event_id.hex()}, computed {computed.hex()}",
                    {"event_id": event_id.hex()},
                )
        events.append(
            Event(
                event_id=event_id,
                issue_id=issue_id,
                actor=actor,
                ts_unix_ms=ts,
                parent=parent,
                kind=kind,
                sig=sig,
            )
        )
    return events
