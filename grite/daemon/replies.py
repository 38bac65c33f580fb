"""Encoded replies of warm reads, answered on the event loop while their repository is unchanged.

A read (an operation of READ_TAGS) that ran without error or warning is kept as the msgpack of
its result, keyed by everything the answer depends on besides the repository's WAL: for a
typed Op the args bytes, the cwd, the data dir and the actor; for a forwarded command line
(RunArgv) the argv, cwd, forwarded environment, stdin, terminal facts and actor. It stays valid while the WAL ref files have the
stamp they had both before and after the read ran (grite.storage.wal.Wal.stamp: inode, mtime
and size, the check Wal.head makes before every read): the read then saw exactly that head,
and nothing has moved since. Another process's write, `git fetch` or `grite sync` changes the
stamp, and the next request runs the operation again.

Serving a kept reply costs a dict lookup and two stats, on the loop: the loop never blocks on I/O, and an
answer already in memory is not blocking work, and it skips the thread-pool hop, the operation and the
encoding, which were most of a warm `issue show`'s cost (py-spy, benchmarks/RESULTS.md). Used
from the event loop only: not thread-safe.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import msgspec

from grite.ipc import protocol, wire

if TYPE_CHECKING:
    from grite.storage.wal import Wal

__all__ = ["READ_TAGS", "ReplyCache", "result_frame"]

# Operations whose answer is a function of the WAL and their arguments only.
READ_TAGS = frozenset(
    {"issue_show", "issue_list", "issue_ready", "issue_dep_list", "issue_dep_topo"}
)

Key = tuple[object, ...]
Stamp = tuple[tuple[int, int, int] | None, ...]

# A Result frame, around the request id and the OpResult (msgspec's field order: the tag,
# request_id, data, final).
_HEAD = b"\x84" + wire.encode("type") + wire.encode("result") + wire.encode("request_id")
_DATA = wire.encode("data")
_TAIL = wire.encode("final") + wire.encode(True)


class _Tag(msgspec.Struct):
    type: str = ""


_tag_decoder = msgspec.msgpack.Decoder(_Tag)


def read_tag(args: bytes) -> str:
    """The operation tag of an Op's args ("" when unreadable)."""
    try:
        return _tag_decoder.decode(args).type
    except msgspec.DecodeError:
        return ""


def result_frame(request_id: bytes, data: bytes) -> bytes:
    """The encoded Result frame carrying `data` (msgpack of a ResultData variant)."""
    return _HEAD + wire.encode(request_id) + _DATA + data + _TAIL


def key_of(request: protocol.Request) -> Key | None:
    """The cache key of a request, None when it is neither an Op nor a RunArgv."""
    body = request.body
    if type(body) is protocol.Op:
        return ("op", bytes(body.args), body.cwd, body.data_dir, request.actor)
    if type(body) is protocol.RunArgv:
        inv = body.invocation
        env = tuple(sorted(inv.env.items()))
        argv = tuple(inv.argv)
        return (
            "argv",
            argv,
            inv.cwd,
            env,
            inv.stdin,
            inv.stdout_isatty,
            inv.columns,
            request.actor,
        )
    return None


class _Entry:
    __slots__ = ("payload", "stamp", "wal")

    def __init__(self, wal: Wal, stamp: Stamp, payload: bytes) -> None:
        self.wal = wal
        self.stamp = stamp
        self.payload = payload


class ReplyCache:
    """Kept replies, at most `capacity` (all dropped when full: cheap and bounded)."""

    def __init__(self, capacity: int = 4096) -> None:
        self._capacity = capacity
        self._entries: dict[Key, _Entry] = {}
        self.hits = 0

    def answer(self, data: bytes) -> bytes | None:
        """The Result frame for the request `data` if a kept reply still holds, else None.

        Only for requests of a client of this build: the caller checks the hello first.
        """
        try:
            request = protocol.decode_request(data)
        except msgspec.DecodeError:
            return None
        if request.schema_version != protocol.SCHEMA_VERSION:
            return None
        key = key_of(request)
        entry = None if key is None else self._entries.get(key)
        if entry is None:
            return None
        if entry.wal.stamp() != entry.stamp:
            del self._entries[key]  # type: ignore[arg-type]
            return None
        self.hits += 1
        return result_frame(request.request_id, entry.payload)

    def keep(self, key: Key, wal: Wal, stamp: Stamp, result: protocol.ResultData) -> None:
        """Keep `result`, the answer to `key` computed while the WAL had `stamp`."""
        if len(self._entries) >= self._capacity:
            self._entries.clear()
        self._entries[key] = _Entry(wal, stamp, protocol.encode(result))

    def clear(self) -> None:
        self._entries.clear()
