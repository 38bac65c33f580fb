"""Kept replies: the frame is msgspec's Result byte for byte, and a moved ref drops the reply."""

from __future__ import annotations

import msgspec
from hypothesis import given
from hypothesis import strategies as st

from grite.daemon.replies import READ_TAGS, ReplyCache, key_of, read_tag, result_frame
from grite.ipc import protocol


class _Wal:
    """Implements the one seam the cache uses (grite.storage.wal.Wal.stamp)."""

    def __init__(self) -> None:
        self.value: tuple[tuple[int, int, int] | None, ...] = ((1, 2, 41),)

    def stamp(self) -> tuple[tuple[int, int, int] | None, ...]:
        return self.value


def _show(rid: bytes, issue: str = "abcd", actor: str = "") -> bytes:
    args = msgspec.msgpack.encode({"type": "issue_show", "issue": issue})
    op = protocol.Op(args=msgspec.Raw(args), cwd="/repo", now_ms=1)
    return protocol.encode(protocol.Request(request_id=rid, body=op, actor=actor))


@given(st.binary(max_size=300), st.binary(min_size=1, max_size=64))
def test_the_frame_is_the_result_msgspec_encodes(data: bytes, rid: bytes) -> None:
    result = protocol.OpResult(data=msgspec.Raw(msgspec.msgpack.encode(data)), warnings=[])
    frame = result_frame(rid, protocol.encode(result))
    assert frame == protocol.encode(protocol.Result(request_id=rid, data=result))


def test_read_tags_are_found_in_args() -> None:
    assert read_tag(msgspec.msgpack.encode({"issue": "x", "type": "issue_list"})) == "issue_list"
    assert read_tag(b"\xc1") == ""
    assert "issue_create" not in READ_TAGS and "issue_show" in READ_TAGS


def test_a_kept_reply_holds_until_the_ref_moves() -> None:
    cache, wal = ReplyCache(), _Wal()
    first = _show(b"1" * 16)
    assert cache.answer(first) is None
    result = protocol.OpResult(data=msgspec.Raw(msgspec.msgpack.encode({"title": "t"})))
    key = key_of(protocol.decode_request(first))
    assert key is not None
    cache.keep(key, wal, wal.stamp(), result)  # type: ignore[arg-type]
    again = cache.answer(_show(b"2" * 16))
    assert again is not None
    decoded = protocol.decode_response(again)
    assert decoded == protocol.Result(request_id=b"2" * 16, data=result)
    # Another issue, another actor: not the same question.
    assert cache.answer(_show(b"3" * 16, issue="ef01")) is None
    assert cache.answer(_show(b"3" * 16, actor="a" * 32)) is None
    wal.value = ((1, 3, 41),)  # the ref moved (another process wrote)
    assert cache.answer(_show(b"4" * 16)) is None
    assert cache.hits == 1


def test_the_cache_stays_bounded() -> None:
    cache, wal = ReplyCache(capacity=3), _Wal()
    result = protocol.OpResult()
    for n in range(10):
        key = key_of(protocol.decode_request(_show(b"r" * 16, issue=f"{n:04x}")))
        assert key is not None
        cache.keep(key, wal, wal.stamp(), result)  # type: ignore[arg-type]
    assert len(cache._entries) <= 3
