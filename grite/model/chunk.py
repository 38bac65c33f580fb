"""The `GRITECNK` chunk codec, byte-exact with grite 0.5.3 (https://github.com/neul-labs/grite/blob/main/crates/libgrite-git/src/chunk.rs).

A chunk is an 18-byte header (magic, version u16 little-endian, codec name length, "cbor-v1")
followed by one CBOR array of 8-element records. Chunks come from other clones, so decoding is
the trust boundary for event data: the size is capped before anything is hashed or decoded,
the CBOR may use only what the format writes (definite-length arrays, byte and text strings,
unsigned integers, null: no tags, so no shared references that would let a small chunk expand
into a huge preimage), every field is type- and range-checked (grite.model.limits), and every
record's event_id is verified. A chunk that fails any of it is refused as a whole.
"""

from __future__ import annotations

import collections.abc
import hashlib
import io
import struct
from collections.abc import Iterator
from typing import Any

import cbor2

from grite.model.errors import CorruptData
from grite.model.events import Event, kind_from_payload
from grite.model.hashing import event_preimage
from grite.model.limits import MAX_CHUNK_BYTES, MAX_TS_MS, SIGNATURE_LEN

__all__ = ["CHUNK_MAGIC", "chunk_hash", "decode_chunk", "encode_chunk"]

CHUNK_MAGIC = b"GRITECNK"
_VERSION = 1
_CODEC = b"cbor-v1"
_HEADER = CHUNK_MAGIC + struct.pack("<HB", _VERSION, len(_CODEC)) + _CODEC
# chunk array > record > payload > symbols > symbol: the deepest nesting the format has.
_MAX_DEPTH = 5


class _NoTags(collections.abc.Mapping[int, Any]):
    """cbor2's table of tag decoders, answering every tag with a refusal.

    cbor2 decodes its built-in tags (28/29 shared references among them) before any tag_hook
    is asked, but looks each tag up in `semantic_decoders` first; raising from that lookup
    refuses the chunk before the tagged value is built.
    """

    def __getitem__(self, tag: int) -> Any:
        raise cbor2.CBORDecodeError(f"CBOR tag {tag} is not part of the chunk format")

    def __iter__(self) -> Iterator[int]:
        return iter(())

    def __len__(self) -> int:
        return 0


_NO_TAGS = _NoTags()


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


def _records(data: bytes) -> list[Any]:
    if len(data) > MAX_CHUNK_BYTES:
        raise CorruptData(f"chunk is {len(data)} bytes, more than the {MAX_CHUNK_BYTES} allowed")
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
    decoder = cbor2.CBORDecoder(
        body, semantic_decoders=_NO_TAGS, max_depth=_MAX_DEPTH, allow_indefinite=False
    )
    try:
        records = decoder.decode()
    except Exception as exc:  # cbor2 wraps most failures, but not every one (EOF, memory)
        raise CorruptData(f"chunk CBOR does not decode: {exc}") from exc
    if body.read(1):
        raise CorruptData("chunk has bytes after its CBOR array")
    if not isinstance(records, list):
        raise CorruptData("chunk body is not an array")
    return records


def decode_chunk(data: bytes, verify: bool = True) -> list[Event]:
    """Decode a chunk file into events, in stored order.

    Args:
        data: the whole chunk file.
        verify: recompute every event_id and refuse a mismatch.

    Raises:
        CorruptData: too large, bad header, CBOR outside the format, a malformed record, a
            field out of bounds, or an event_id mismatch; the message names the event when the
            record got that far.
    """
    events = []
    for rec in _records(data):
        if not isinstance(rec, list) or len(rec) != 8:
            raise CorruptData("chunk record must have 8 fields")
        event_id = _record_bytes(rec[0], 32, "event_id")
        try:
            events.append(_event(event_id, rec, verify))
        except CorruptData as exc:
            raise CorruptData(
                f"event {event_id.hex()}: {exc.message}",
                {**exc.details, "event_id": event_id.hex()},
            ) from exc
    return events


def _event(event_id: bytes, rec: list[Any], verify: bool) -> Event:
    issue_id = _record_bytes(rec[1], 16, "issue_id")
    actor = _record_bytes(rec[2], 16, "actor")
    ts = rec[3]
    if not isinstance(ts, int) or isinstance(ts, bool) or not 0 <= ts <= MAX_TS_MS:
        raise CorruptData(
            f"ts_unix_ms {ts!r} is not a time from 1970 to 9999 in milliseconds",
            {"field": "ts_unix_ms"},
        )
    parent = None if rec[4] is None else _record_bytes(rec[4], 32, "parent")
    tag = rec[5]
    if not isinstance(tag, int) or isinstance(tag, bool):
        raise CorruptData("chunk record: kind tag must be an integer")
    kind = kind_from_payload(tag, rec[6])
    sig = rec[7]
    if sig is not None and (not isinstance(sig, bytes) or len(sig) != SIGNATURE_LEN):
        raise CorruptData(f"chunk record: sig must be null or {SIGNATURE_LEN} bytes (Ed25519)")
    if verify:
        # Bounded: without shared references every decoded value came from this chunk, so the
        # preimage is no larger than the chunk, itself capped before decoding.
        preimage = event_preimage(issue_id, actor, ts, parent, kind)
        computed = hashlib.blake2b(preimage, digest_size=32).digest()
        if computed != event_id:
            raise CorruptData(
                f"event_id mismatch: stored {event_id.hex()}, computed {computed.hex()}"
            )
    return Event(
        event_id=event_id,
        issue_id=issue_id,
        actor=actor,
        ts_unix_ms=ts,
        parent=parent,
        kind=kind,
        sig=sig,
    )
