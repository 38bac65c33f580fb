"""The bounds every event and WAL object must keep, checked when data is decoded (and before it
is written, so grite never writes what it would refuse). docs/security.md explains each one.

They are far above anything grite or grite 0.5.3 writes in normal use, and low enough that a
hostile chunk cannot make a reader allocate, hash or print without bound.

Pure constants: no I/O, imports nothing of grite.
"""

from __future__ import annotations

__all__ = [
    "FUTURE_SKEW_MS",
    "MAX_CHUNK_BYTES",
    "MAX_LABELS",
    "MAX_LINE_NUMBER",
    "MAX_META_BYTES",
    "MAX_NAME_CHARS",
    "MAX_SNAPSHOT_META_BYTES",
    "MAX_SYMBOLS",
    "MAX_TEXT_CHARS",
    "MAX_TS_MS",
    "SIGNATURE_LEN",
]

# Event timestamps are Unix milliseconds from 0 (1970-01-01) to the last millisecond of the year
# 9999, the largest instant Python's datetime (and most date libraries) can show.
MAX_TS_MS = 253_402_300_799_999
# How far an event may be ahead of the commit that carries it, and (checked when `grite sync`
# pulls it, and when a clone first reads it) ahead of this machine's clock: a day covers any
# honest clock skew between machines, and stops a hostile event from winning last-writer-wins
# for years.
FUTURE_SKEW_MS = 24 * 3600 * 1000

# A chunk file (one WAL commit's events, or 1,000 of a snapshot's); checked before it is hashed
# or decoded. With CBOR tags refused (no shared references), no decoded value or event preimage
# can be larger than the chunk it came from.
MAX_CHUNK_BYTES = 16 * 1024 * 1024
# A WAL commit's meta.json (grite writes about 200 bytes) and a snapshot's snapshot.json (one
# line per 1,000 events).
MAX_META_BYTES = 64 * 1024
MAX_SNAPSHOT_META_BYTES = 16 * 1024 * 1024

# Free text: title, body, comment, link URL and note, context summary and value, path and key.
MAX_TEXT_CHARS = 1024 * 1024
# Names: label, assignee, attachment name and MIME type, language, symbol name and kind.
MAX_NAME_CHARS = 4096
# Labels of one IssueCreated, symbols of one ContextUpdated.
MAX_LABELS = 1024
MAX_SYMBOLS = 65_536
# Symbol line numbers are u32 in grite 0.5.3.
MAX_LINE_NUMBER = 2**32 - 1
# An Ed25519 signature; grite 0.5.3 writes no other kind.
SIGNATURE_LEN = 64
