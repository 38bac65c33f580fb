"""The messages exchanged between `grite` clients and `grite-daemon`, and their msgpack codecs.

A connection starts with one Hello in each direction (client first). Then the client sends
Request envelopes; for each, the daemon answers zero or more non-final frames (Output,
Notification) and exactly one final frame (Result or Error). Tags never change; new fields get
defaults; a rename or removal bumps PROTOCOL_VERSION. The build id (grite.ipc.build) identifies
the installed grite source so that a client never talks to a daemon running other code. The
`grite` command encodes these shapes without msgspec (grite.ipc.wire); a test keeps the two
identical.

Imports only the standard library, msgspec, grite.ipc.build and grite.model: library clients
(grite.Client) and the daemon load it; a warm `grite` command does not (grite.ipc.wire).
"""

from __future__ import annotations

import msgspec

from grite.ipc.build import BUILD_ID_LEN, PROTOCOL_VERSION, build_id, compute_build_id
from grite.model.invocation import Invocation, Outcome

__all__ = [
    "BUILD_ID_LEN",
    "ERROR_CODES",
    "NO_DATA",
    "PROTOCOL_VERSION",
    "SCHEMA_VERSION",
    "Ack",
    "DaemonStatus",
    "DaemonStop",
    "Error",
    "Hello",
    "Notification",
    "Op",
    "OpError",
    "OpResult",
    "Output",
    "Ping",
    "Progress",
    "Request",
    "RequestBody",
    "RequestHead",
    "Response",
    "ResponseHead",
    "Result",
    "ResultData",
    "Retire",
    "RunArgv",
    "RunArgvResult",
    "StatusResult",
    "Watch",
    "build_id",
    "compute_build_id",
    "decode_body",
    "decode_hello",
    "decode_request",
    "decode_request_head",
    "decode_response",
    "decode_response_head",
    "encode",
    "request_tag",
]

SCHEMA_VERSION = 1

# Wire error codes: the daemon-level ones, then grite.model.errors codes carried unchanged.
ERROR_CODES = (
    "busy",
    "version_mismatch",
    "bad_request",
    "internal",
    "invalid_args",
    "not_found",
    "conflict",
    "environment",
    "corrupt",
    "cancelled",
    "foreign_namespace",
)


class Hello(msgspec.Struct, frozen=True, kw_only=True):
    """First frame in each direction. The server's capabilities are its request tags."""

    protocol_version: int
    build_id: str
    pid: int
    capabilities: list[str] = []
    mode: str = ""  # server only: "systemd", "launchd" or "self-bind"
    install: str = ""  # the grite package directory (grite.ipc.build.install_dir)


# ---- request bodies (tag = snake_case name; never change a tag) ----


class RunArgv(msgspec.Struct, frozen=True, kw_only=True, tag="run_argv"):
    """Run one full CLI command; the reply is a RunArgvResult carrying its Outcome."""

    invocation: Invocation


class DaemonStatus(msgspec.Struct, frozen=True, kw_only=True, tag="daemon_status"):
    """Describe the daemon; the reply is a StatusResult."""


class DaemonStop(msgspec.Struct, frozen=True, kw_only=True, tag="daemon_stop"):
    """Stop after in-flight work (the user asked); the reply is an Ack."""


class Retire(msgspec.Struct, frozen=True, kw_only=True, tag="retire"):
    """Exit after in-flight work because a client of another build met us; reply Ack."""


class Ping(msgspec.Struct, frozen=True, kw_only=True, tag="ping"):
    """Liveness round trip; the reply is an Ack."""


class Op(msgspec.Struct, frozen=True, kw_only=True, tag="op"):
    """Run one operation given as its args Struct; the reply is an OpResult.

    `args` is the msgpack of one args Struct of grite.model.requests or a requests_* module,
    tagged by its `"type"` (e.g. "issue_show"). It travels as Raw so that this module (the
    client's hot path) need not import every area's Structs: the daemon decodes it against
    the union of the operations it serves, and answers an unknown type with an invalid_args
    OpResult. The envelope's request_id is the idempotency key and `actor` acts as --actor.
    """

    args: msgspec.Raw
    cwd: str  # the repository is discovered from here, as the CLI does from its cwd
    now_ms: int  # client clock: a retried write reproduces identical events
    data_dir: str | None = None  # like --data-dir / GRITE_HOME


class Watch(msgspec.Struct, frozen=True, kw_only=True, tag="watch"):
    """Stream Notification frames about the repository containing `cwd` until the client
    closes the connection; with `since`, first replay every WAL commit after that head. The
    final frame (Ack) comes only when the daemon stops; an unknown `since` is an Error."""

    cwd: str
    since: str | None = None


RequestBody = RunArgv | DaemonStatus | DaemonStop | Retire | Ping | Op | Watch


class Request(msgspec.Struct, frozen=True, kw_only=True):
    """The envelope of every request after the hello."""

    request_id: bytes
    body: RequestBody
    repo_root: str = ""
    actor: str = ""
    schema_version: int = SCHEMA_VERSION


class RequestHead(msgspec.Struct, frozen=True, kw_only=True):
    """What can be read from a request whose body does not decode (for a useful error)."""

    request_id: bytes = b""
    schema_version: int = 0


# ---- result payloads ----


class RunArgvResult(msgspec.Struct, frozen=True, kw_only=True, tag="run_argv"):
    outcome: Outcome


class StatusResult(msgspec.Struct, frozen=True, kw_only=True, tag="daemon_status"):
    pid: int
    mode: str
    socket: str
    build_id: str
    protocol_version: int
    started_ms: int
    uptime_ms: int
    repositories: list[str]
    requests_served: int
    in_flight: int
    connections: int
    idle_timeout_s: int  # 0 = never
    idle_left_ms: int  # -1 when there is no idle timeout
    kept_replies_served: int = 0  # warm reads answered from grite.daemon.replies
    # Where this daemon's log goes: a file path, or how to read the journal or its stderr.
    log: str = ""


class Ack(msgspec.Struct, frozen=True, kw_only=True, tag="ack"):
    pass


class OpError(msgspec.Struct, frozen=True, kw_only=True):
    """An operation failed with a grite error (code from grite.model.errors)."""

    code: str
    message: str
    details: msgspec.Raw = msgspec.Raw(b"\x80")  # msgpack map, as the JSON envelope shows it


# msgpack nil: the `data` of an OpResult that carries an error instead.
NO_DATA = msgspec.Raw(b"\xc0")


class OpResult(msgspec.Struct, frozen=True, kw_only=True, tag="op"):
    """The outcome of an Op: `data` (msgpack of the result Struct) unless `error` is set.

    `data` is a plain Raw with a nil default, never `Raw | None`: msgspec 0.23 refuses to
    decode a union with Raw, and an optional Raw made every reply undecodable.
    """

    data: msgspec.Raw = NO_DATA
    error: OpError | None = None
    warnings: list[str] = []


ResultData = RunArgvResult | StatusResult | Ack | OpResult


# ---- response frames ----


class Output(msgspec.Struct, frozen=True, kw_only=True, tag="output"):
    """Non-final: a chunk of output for a stream ("stdout" or "stderr")."""

    stream: str
    data: str
    final: bool = False


class Notification(msgspec.Struct, frozen=True, kw_only=True, tag="notification"):
    """Non-final: something changed (issue_changed, wal_advanced, ...); ignorable."""

    kind: str
    repo_root: str = ""
    data: dict[str, str] = {}
    final: bool = False
    body: bytes = b""  # msgpack of a grite.model.notifications Struct (tag == kind)


class Progress(msgspec.Struct, frozen=True, kw_only=True, tag="progress"):
    """Non-final: the request is still running (sent every keepalive interval while it runs).

    A client's reply deadline bounds the wait for each frame, so these keep a long request
    (a sync of a large pull) from timing out into a second, in-process run.
    """

    elapsed_ms: int
    final: bool = False


class Result(msgspec.Struct, frozen=True, kw_only=True, tag="result"):
    """Final: the request succeeded at the protocol level."""

    request_id: bytes
    data: ResultData
    final: bool = True


class Error(msgspec.Struct, frozen=True, kw_only=True, tag="error"):
    """Final: the daemon did not produce a result (one of ERROR_CODES)."""

    request_id: bytes
    code: str
    message: str
    details: dict[str, str] = {}
    exit_code: int = 1
    final: bool = True


Response = Output | Notification | Progress | Result | Error


class ResponseHead(msgspec.Struct, frozen=True, kw_only=True):
    """Read from a frame of a kind this build does not know: skip it unless final."""

    type: str = ""
    final: bool = True


# Codecs are built once: building them per message would dominate small requests.
_encoder = msgspec.msgpack.Encoder()
_hello_decoder = msgspec.msgpack.Decoder(Hello)
_request_decoder = msgspec.msgpack.Decoder(Request)
_body_decoder = msgspec.msgpack.Decoder(RequestBody)
_request_head_decoder = msgspec.msgpack.Decoder(RequestHead)
_response_decoder = msgspec.msgpack.Decoder(Response)
_response_head_decoder = msgspec.msgpack.Decoder(ResponseHead)


def encode(message: msgspec.Struct) -> bytes:
    """Encode any protocol Struct to msgpack."""
    return _encoder.encode(message)


def decode_hello(data: bytes) -> Hello:
    """Decode a hello. Raises msgspec.DecodeError (ValidationError) on bad input."""
    return _hello_decoder.decode(data)


def decode_request(data: bytes) -> Request:
    """Decode a request envelope. Raises msgspec.DecodeError (ValidationError) on bad input."""
    return _request_decoder.decode(data)


def decode_body(data: bytes) -> RequestBody:
    """Decode one request body variant. Raises msgspec.DecodeError on bad input."""
    return _body_decoder.decode(data)


def decode_request_head(data: bytes) -> RequestHead:
    """Decode the envelope fields only. Raises msgspec.DecodeError on bad input."""
    return _request_head_decoder.decode(data)


def decode_response(data: bytes) -> Response:
    """Decode a response frame. Raises msgspec.DecodeError (ValidationError) on bad input."""
    return _response_decoder.decode(data)


def decode_response_head(data: bytes) -> ResponseHead:
    """Decode a response's kind and finality. Raises msgspec.DecodeError on bad input."""
    return _response_head_decoder.decode(data)


def request_tag(kind: type[msgspec.Struct]) -> str:
    """Return the wire tag of a request body type (its capability name)."""
    tag = kind.__struct_config__.tag
    if not isinstance(tag, str):
        raise TypeError(f"{kind.__name__} has no string tag")
    return tag
