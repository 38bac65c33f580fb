"""Length-prefixed framing: blocking and asyncio sides, limits, truncation."""

from __future__ import annotations

import asyncio
import socket
import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from grite.ipc import wire
from grite.ipc.wire import MAX_FRAME, ConnectionClosed, FrameTooLarge


@settings(max_examples=50, deadline=None)
@given(st.binary(max_size=5000))
def test_blocking_round_trip_preserves_payload(payload: bytes) -> None:
    a, b = socket.socketpair()
    with a, b:
        wire.send_frame(a, payload)
        assert wire.recv_frame(b) == payload


def test_frame_header_is_big_endian_length() -> None:
    assert wire.encode_frame(b"abc") == b"\x00\x00\x00\x03abc"


def test_encode_refuses_payload_over_limit() -> None:
    with pytest.raises(FrameTooLarge):
        wire.encode_frame(bytes(MAX_FRAME + 1))


def test_recv_refuses_oversize_header_without_reading_body() -> None:
    a, b = socket.socketpair()
    with a, b:
        a.sendall(struct.pack(">I", MAX_FRAME + 1))
        with pytest.raises(FrameTooLarge):
            wire.recv_frame(b)


def test_recv_reports_truncated_frame() -> None:
    a, b = socket.socketpair()
    with b:
        a.sendall(b"\x00\x00\x00\x10abc")
        a.close()
        with pytest.raises(ConnectionClosed):
            wire.recv_frame(b)


def test_recv_times_out_with_typed_error() -> None:
    a, b = socket.socketpair()
    with a, b:
        b.settimeout(0.01)
        with pytest.raises(wire.FrameTimeout):
            wire.recv_frame(b)


async def _read_all(data: bytes) -> list[bytes | None]:
    reader = asyncio.StreamReader()
    reader.feed_data(data)
    reader.feed_eof()
    out: list[bytes | None] = []
    while True:
        frame = await wire.read_frame(reader)
        out.append(frame)
        if frame is None:
            return out


def test_async_reader_returns_none_on_clean_eof() -> None:
    data = wire.encode_frame(b"one") + wire.encode_frame(b"")
    assert asyncio.run(_read_all(data)) == [b"one", b"", None]


def test_async_reader_rejects_half_frame_and_oversize() -> None:
    with pytest.raises(ConnectionClosed):
        asyncio.run(_read_all(b"\x00\x00\x00\x09abc"))
    with pytest.raises(ConnectionClosed):
        asyncio.run(_read_all(b"\x00\x00"))
    with pytest.raises(FrameTooLarge):
        asyncio.run(_read_all(struct.pack(">I", MAX_FRAME + 1)))
