"""What goes over the daemon's socket: length-prefixed frames, and the client's msgpack.

Frames: a 4-byte big-endian unsigned length followed by that many payload bytes; payloads over
MAX_FRAME are refused on both sides. The prefix and the limit live only here, in blocking
(client) and asyncio (daemon) flavours. Socket errors are translated here into the typed
IpcError family, so nothing above ipc names an OSError from a socket.

The client's msgpack, without msgspec: the hello, the request envelope and reply frames.

The daemon reads and writes its messages with msgspec (grite.ipc.protocol). Importing msgspec
costs a `grite` command about as much as starting Python (msgspec and typing_extensions, ~15 ms
measured with `python -X importtime`), while a warm command's client has only to send one
request and read one reply. So the client encodes and decodes those few shapes here, in plain
msgpack, and tests/unit/ipc/test_wire.py checks every field against msgspec in both directions.
The `msgpack` package would do the generic part, but it imports datetime and its own Python
wrappers, which is most of what we are avoiding.

What msgspec does and this module copies: a Struct is a map of its fields in declaration
order, a tagged Struct starts with `"type": <tag>`, integers take the smallest encoding (uint
for >= 0, int for < 0), floats are float64, and `msgspec.Raw` is copied verbatim (`Raw` here).
Imports grite.model.errors only (no standard library module at import time): this runs on
every command.
"""

from __future__ import annotations

from grite.model.errors import Environment

TYPE_CHECKING = False
if TYPE_CHECKING:
    # Only for annotations: the blocking client must not pay for importing asyncio, socket
    # (enum, selectors) or typing.
    import _socket
    import asyncio
    from collections.abc import Mapping

__all__ = [
    "MAX_FRAME",
    "ConnectionClosed",
    "FrameTimeout",
    "FrameTooLarge",
    "IpcError",
    "Raw",
    "WireError",
    "decode",
    "encode",
    "encode_frame",
    "hello",
    "read_frame",
    "recv_frame",
    "reply_head",
    "request",
    "run_argv",
    "send_frame",
    "write_frame",
]

# -- frames -------------------------------------------------------------------------------

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


# -- the client's msgpack ------------------------------------------------------------------


class WireError(ValueError):
    """The bytes are not the msgpack this module reads."""


class Raw(bytes):
    """Bytes that already are msgpack: copied into a message as they are (msgspec.Raw)."""

    __slots__ = ()


def _head(out: bytearray, size: int, fix: int, fix_max: int, codes: bytes) -> None:
    # codes: the 8-, 16- and 32-bit length markers (0 where the type has no 8-bit form).
    if size <= fix_max:
        out.append(fix | size)
    elif size < 0x100 and codes[0]:
        out += bytes((codes[0], size))
    elif size < 0x10000:
        out.append(codes[1])
        out += size.to_bytes(2, "big")
    else:
        out.append(codes[2])
        out += size.to_bytes(4, "big")


def _int(out: bytearray, value: int) -> None:
    if 0 <= value < 0x80 or -32 <= value < 0:
        out += value.to_bytes(1, "big", signed=True)
    elif value >= 0:
        for code, width in ((0xCC, 1), (0xCD, 2), (0xCE, 4), (0xCF, 8)):
            if value < 1 << (8 * width):
                out.append(code)
                out += value.to_bytes(width, "big")
                return
        raise WireError(f"integer {value} does not fit in 64 bits")
    else:
        for code, width in ((0xD0, 1), (0xD1, 2), (0xD2, 4), (0xD3, 8)):
            if value >= -(1 << (8 * width - 1)):
                out.append(code)
                out += value.to_bytes(width, "big", signed=True)
                return
        raise WireError(f"integer {value} does not fit in 64 bits")


def _encode(out: bytearray, value: object) -> None:
    if value is None:
        out.append(0xC0)
    elif value is True:
        out.append(0xC3)
    elif value is False:
        out.append(0xC2)
    elif isinstance(value, int):
        _int(out, value)
    elif isinstance(value, str):
        data = value.encode("utf-8")
        _head(out, len(data), 0xA0, 31, b"\xd9\xda\xdb")
        out += data
    elif isinstance(value, Raw):
        out += value
    elif isinstance(value, (bytes, bytearray)):
        _head(out, len(value), 0, -1, b"\xc4\xc5\xc6")
        out += value
    elif isinstance(value, (list, tuple)):
        _head(out, len(value), 0x90, 15, b"\x00\xdc\xdd")
        for item in value:
            _encode(out, item)
    elif isinstance(value, dict):
        _head(out, len(value), 0x80, 15, b"\x00\xde\xdf")
        for key, item in value.items():
            _encode(out, key)
            _encode(out, item)
    elif isinstance(value, float):
        out.append(0xCB)
        out += _float64(value)
    else:
        raise WireError(f"cannot encode {type(value).__name__}")


def _float64(value: float) -> bytes:
    import struct  # deliberately lazy: no message the client sends holds a float

    return struct.pack(">d", value)


def encode(value: object) -> bytes:
    """Encode None, bool, int, str, bytes, Raw, list, tuple, dict (and float) as msgpack."""
    out = bytearray()
    _encode(out, value)
    return bytes(out)


class _Reader:
    __slots__ = ("data", "pos")

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def take(self, size: int) -> bytes:
        end = self.pos + size
        if end > len(self.data):
            raise WireError("truncated msgpack")
        chunk = self.data[self.pos : end]
        self.pos = end
        return chunk

    def uint(self, width: int) -> int:
        return int.from_bytes(self.take(width), "big")

    def value(self) -> object:
        if self.pos >= len(self.data):
            raise WireError("truncated msgpack")
        code = self.data[self.pos]
        self.pos += 1
        if code < 0x80:
            return code
        if code >= 0xE0:
            return code - 0x100
        if 0xA0 <= code <= 0xBF:
            return self.text(code & 0x1F)
        if 0x90 <= code <= 0x9F:
            return [self.value() for _ in range(code & 0x0F)]
        if 0x80 <= code <= 0x8F:
            return self.mapping(code & 0x0F)
        simple = _SIMPLE.get(code, _MISSING)
        if simple is not _MISSING:
            return simple
        if code in _UINTS:
            return self.uint(_UINTS[code])
        if code in _INTS:
            return int.from_bytes(self.take(_INTS[code]), "big", signed=True)
        if code in _STRS:
            return self.text(self.uint(_STRS[code]))
        if code in _BINS:
            return self.take(self.uint(_BINS[code]))
        if code in _ARRAYS:
            return [self.value() for _ in range(self.uint(_ARRAYS[code]))]
        if code in _MAPS:
            return self.mapping(self.uint(_MAPS[code]))
        if code in (0xCA, 0xCB):
            import struct  # deliberately lazy, as in _float64

            return struct.unpack(">f" if code == 0xCA else ">d", self.take(code - 0xC6))[0]
        raise WireError(f"unsupported msgpack type 0x{code:02x}")

    def text(self, size: int) -> str:
        try:
            return self.take(size).decode("utf-8")
        except UnicodeDecodeError as exc:
            raise WireError(f"invalid UTF-8 in msgpack: {exc}") from exc

    def mapping(self, size: int) -> dict[object, object]:
        result: dict[object, object] = {}
        for _ in range(size):
            key = self.value()
            if isinstance(key, (list, dict)):
                raise WireError("unhashable msgpack map key")
            result[key] = self.value()
        return result


_MISSING = object()
_SIMPLE: dict[int, object] = {0xC0: None, 0xC2: False, 0xC3: True}
_UINTS = {0xCC: 1, 0xCD: 2, 0xCE: 4, 0xCF: 8}
_INTS = {0xD0: 1, 0xD1: 2, 0xD2: 4, 0xD3: 8}
_STRS = {0xD9: 1, 0xDA: 2, 0xDB: 4}
_BINS = {0xC4: 1, 0xC5: 2, 0xC6: 4}
_ARRAYS = {0xDC: 2, 0xDD: 4}
_MAPS = {0xDE: 2, 0xDF: 4}


def decode(data: bytes) -> object:
    """Decode one msgpack value (maps become dicts, arrays lists, bin bytes).

    Raises:
        WireError: truncated or malformed data, an unsupported type, or trailing bytes.
    """
    reader = _Reader(data)
    value = reader.value()
    if reader.pos != len(data):
        raise WireError("trailing bytes after msgpack value")
    return value


def reply_head(data: bytes) -> tuple[str, bool, str]:
    """(type, final, error code) of a reply frame, reading only what it needs.

    msgspec writes a tagged Struct's `"type"` first, so a Result is recognised after a few
    bytes however large its data; other frames are small and decoded whole.

    Raises:
        WireError: not a map starting with its "type".
    """
    reader = _Reader(data)
    if not data or not (0x81 <= data[0] <= 0x8F or data[0] in (0xDE, 0xDF)):
        raise WireError("a reply frame must be a non-empty map")
    reader.pos = 1 if data[0] <= 0x8F else 1 + _MAPS[data[0]]
    if reader.value() != "type":
        raise WireError('a reply frame must start with its "type"')
    kind = reader.value()
    if not isinstance(kind, str):
        raise WireError("a reply frame's type must be a string")
    if kind == "result":
        return kind, True, ""
    frame = decode(data)
    assert isinstance(frame, dict)
    final = frame.get("final", kind == "error")
    code = frame.get("code", "") if kind == "error" else ""
    return kind, final is True, code if isinstance(code, str) else ""


def hello(protocol_version: int, build_id: str, pid: int, install: str) -> bytes:
    """The client's Hello (grite.ipc.protocol.Hello, client side: no capabilities or mode)."""
    return encode(
        {
            "protocol_version": protocol_version,
            "build_id": build_id,
            "pid": pid,
            "capabilities": [],
            "mode": "",
            "install": install,
        }
    )


def request(
    request_id: bytes, body: Raw, *, repo_root: str = "", actor: str = "", schema_version: int = 1
) -> bytes:
    """A Request envelope around an encoded body variant."""
    return encode(
        {
            "request_id": request_id,
            "body": body,
            "repo_root": repo_root,
            "actor": actor,
            "schema_version": schema_version,
        }
    )


def run_argv(
    *,
    argv: list[str],
    cwd: str,
    env: Mapping[str, str],
    request_id: bytes,
    now_ms: int,
    stdin: bytes | None,
    stdout_isatty: bool,
    columns: int,
) -> Raw:
    """The RunArgv body: one CLI command (grite.model.invocation.Invocation inside)."""
    invocation = {
        "argv": argv,
        "cwd": cwd,
        "env": dict(env),
        "request_id": request_id,
        "now_ms": now_ms,
        "stdin": stdin,
        "stdout_isatty": stdout_isatty,
        "columns": columns,
    }
    return Raw(encode({"type": "run_argv", "invocation": invocation}))
