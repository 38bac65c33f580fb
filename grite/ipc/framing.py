"""Length-prefixed frames on a Unix stream socket, blocking and asyncio flavours.

A frame is a 4-byte big-endian unsigned length followed by that many payload bytes; payloads
over MAX_FRAME are refused on both sides. The prefix and the limit live only in this module.
Socket errors are translated here into the typed IpcError family below, so nothing above ipc
names an OSError from a socket. Imports only the standard library and grite.model.errors.
"""

from __future__ import annotations

from grite.model.errors import Environment

TYPE_CHECKING = False
if TYPE_CHECKING:
    # Only for annotations: the blocking client must not pay for importing asyncio, socket
    # (enum, selectors) or typing.
    import _socket
    import asyncio

__all__ = [
    "MAX_FRAME",
    "ConnectionClosed",
    "FrameTimeout",
    "FrameTooLarge",
    "IpcError",
    "encode_frame",
    "read_frame",
    "recv_frame",
    "send_frame",
    "write_frame",
]

MAX_FRAME = 16 * 1024 * 1024
_HEADER_SIZE = 4  # big-endian unsigned length


class IpcError(Environment):
    """The daemon connection failed; the caller may run the command in-process instead."""


class FrameTooLarge(IpcError):
    """A frame announced or carried more than MAX_FRAME bytes."""

    def __init__(self, size: int) -> None:
        super().__init__(
            f"IPC frame of {size} bytes exceeds the {MAX_FRAME}-byte limit; "
            "split the request or run with --no-daemon",
            {"size": size},
        )
        self.size = size


class ConnectionClosed(IpcError):
    """The peer closed or reset the connection before a whole frame arrived."""


class FrameTimeout(IpcError):
    """The peer did not send or accept a frame before the deadline."""


def encode_frame(payload: bytes) -> bytes:
    """Prefix `payload` with its length.

    Args:
        payload: the encoded message.

    Returns:
        The bytes to write on the socket.

    Raises:
        FrameTooLarge: if the payload exceeds MAX_FRAME.
    """
    size = len(payload)
    if size > MAX_FRAME:
        raise FrameTooLarge(size)
    return size.to_bytes(_HEADER_SIZE, "big") + payload


def send_frame(sock: _socket.socket, *payloads: bytes) -> None:
    """Write one frame per payload on a blocking socket (honouring its timeout), in one write.

    Raises:
        FrameTooLarge: if a payload exceeds MAX_FRAME.
        FrameTimeout: if the socket timeout expired.
        ConnectionClosed: if the peer went away.
    """
    data = b"".join(encode_frame(payload) for payload in payloads)
    try:
        sock.sendall(data)
    except TimeoutError as exc:
        raise FrameTimeout("timed out sending to the grite daemon") from exc
    except OSError as exc:
        raise ConnectionClosed(f"lost the grite daemon connection while sending: {exc}") from exc


def _recv_exactly(sock: _socket.socket, size: int) -> bytes:
    if size == 0:
        return b""
    buf = bytearray(size)
    view = memoryview(buf)
    got = 0
    try:
        while got < size:
            n = sock.recv_into(view[got:], size - got)
            if n == 0:
                raise ConnectionClosed(
                    f"the grite daemon closed the connection after {got} of {size} bytes"
                )
            got += n
    except TimeoutError as exc:
        raise FrameTimeout("timed out waiting for the grite daemon") from exc
    except ConnectionClosed:
        raise
    except OSError as exc:
        raise ConnectionClosed(f"lost the grite daemon connection: {exc}") from exc
    return bytes(buf)


def recv_frame(sock: _socket.socket) -> bytes:
    """Read one frame from a blocking socket (honouring its timeout).

    Returns:
        The payload.

    Raises:
        ConnectionClosed: on EOF or reset, also at a frame boundary (a reply was expected).
        FrameTooLarge: if the announced length exceeds MAX_FRAME.
        FrameTimeout: if the socket timeout expired.
    """
    size = int.from_bytes(_recv_exactly(sock, _HEADER_SIZE), "big")
    if size > MAX_FRAME:
        raise FrameTooLarge(size)
    return _recv_exactly(sock, size) if size else b""


async def read_frame(reader: asyncio.StreamReader) -> bytes | None:
    """Read one frame from an asyncio stream.

    Returns:
        The payload, or None on a clean EOF at a frame boundary (the client hung up).

    Raises:
        ConnectionClosed: on EOF inside a frame, or a reset.
        FrameTooLarge: if the announced length exceeds MAX_FRAME (the body is not read).
    """
    try:
        header = await reader.readexactly(_HEADER_SIZE)
    except EOFError as exc:  # asyncio.IncompleteReadError, caught by base to keep asyncio lazy
        if not getattr(exc, "partial", b""):
            return None
        raise ConnectionClosed("the client sent a truncated frame header") from exc
    except OSError as exc:
        raise ConnectionClosed(f"client connection lost: {exc}") from exc
    size = int.from_bytes(header, "big")
    if size > MAX_FRAME:
        raise FrameTooLarge(size)
    try:
        return await reader.readexactly(size) if size else b""
    except EOFError as exc:
        raise ConnectionClosed(
            f"the client closed the connection after {len(getattr(exc, 'partial', b''))} "
            f"of {size} bytes"
        ) from exc
    except OSError as exc:
        raise ConnectionClosed(f"client connection lost: {exc}") from exc


async def write_frame(writer: asyncio.StreamWriter, payload: bytes) -> None:
    """Write one frame on an asyncio stream and wait until it is flushed.

    Raises:
        FrameTooLarge: if the payload exceeds MAX_FRAME.
        ConnectionClosed: if the client went away.
    """
    data = encode_frame(payload)
    try:
        writer.write(data)
        await writer.drain()
    except OSError as exc:
        raise ConnectionClosed(f"client connection lost while replying: {exc}") from exc
