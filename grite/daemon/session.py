"""One client connection: peer checks, hello, then requests read, dispatched and answered.

A session checks that the peer is our uid and whether it runs in our mount namespace (peer_uid,
foreign_peer below), waits `hello_timeout` for the client's hello and answers with the daemon's,
then reads requests until EOF and dispatches each through the ONE table keyed by request Struct
type (handlers/table.py), whose tags are the capabilities sent in the hello. A warm read whose
answer is kept (replies.py) is answered here without the worker hop. Work requests are watched:
a Progress frame every `keepalive` seconds, and a hang-up cancels them (grite.ops.cancellation).
This module also says what a handler is (`Route`, `Call`, `Refusal`); handlers import it, never
the reverse. Its `serve` is the one place in the daemon that catches `Exception`.
"""

from __future__ import annotations

import asyncio
import enum
import logging
import os
import socket
import struct
import sys
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import msgspec

from grite.daemon.service import State
from grite.daemon.validation import request_problem
from grite.ipc import protocol, wire
from grite.ipc.wire import ConnectionClosed, FrameTooLarge
from grite.model.errors import exit_code_for

if TYPE_CHECKING:
    from grite.daemon.replies import ReplyCache
    from grite.daemon.service import Service

__all__ = [
    "Call",
    "Connection",
    "Kind",
    "Refusal",
    "Route",
    "Session",
    "error",
    "foreign_peer",
    "mount_namespace",
    "peer_pid",
    "peer_uid",
    "send",
]

_log = logging.getLogger("grite.daemon")

# How long a connection accepted while draining may take to send its request.
_DRAIN_READ = 2.0
# Kept replies are written without waiting while less than this is still unsent.
_WRITE_BUFFER = 64 * 1024


# -- who is connecting: the peer's uid and pid, and whether the daemon may act for it ---------
# The kernel questions a session asks of a freshly accepted Unix socket: SO_PEERCRED on
# Linux, LOCAL_PEERCRED/LOCAL_PEERPID on macOS, the mount namespace under /proc, and macOS's
# sandbox_check. Synchronous and cheap (a few syscalls).


def peer_uid(sock: Any) -> int | None:
    """The connecting process's uid (SO_PEERCRED on Linux, LOCAL_PEERCRED on macOS)."""
    try:
        if hasattr(socket, "SO_PEERCRED"):
            raw = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
            return int(struct.unpack("3i", raw)[1])
        # macOS: SOL_LOCAL=0, LOCAL_PEERCRED=1 -> struct xucred {u_int version; uid_t uid; ...}
        raw = sock.getsockopt(0, 1, 76)
        return int(struct.unpack_from("=II", raw)[1])
    except OSError:
        return None


def peer_pid(sock: Any) -> int | None:
    """The connecting process's pid (SO_PEERCRED on Linux, LOCAL_PEERPID on macOS)."""
    try:
        if hasattr(socket, "SO_PEERCRED"):
            raw = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
            return int(struct.unpack("3i", raw)[0])
        # macOS: SOL_LOCAL=0, LOCAL_PEERPID=2 -> pid_t
        return int(struct.unpack("i", sock.getsockopt(0, 2, 4))[0])
    except OSError:
        return None


def mount_namespace(pid: int | str) -> str | None:
    """The mount namespace of a process (`mnt:[inode]`), None when it cannot be read."""
    try:
        return os.readlink(f"/proc/{pid}/ns/mnt")
    except OSError:
        return None


def _sandboxed_on_macos(pid: int) -> bool:
    """Whether a macOS process runs under a sandbox profile (sandbox_check with no operation:
    the same call `sandbox-exec`'s children and App Sandbox apps answer 1 to)."""
    import ctypes  # Deliberately lazy: macOS only, once per connection.

    try:
        lib = ctypes.CDLL("/usr/lib/libSystem.dylib")
        check = lib.sandbox_check
    except (OSError, AttributeError):
        return False
    check.restype = ctypes.c_int
    check.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
    return bool(check(pid, None, 0))


def foreign_peer(sock: Any, own_namespace: str | None) -> str:
    """Why the peer on `sock` must not have the daemon act for it ("" when it may).

    A process in another mount namespace (a sandbox with a read-only home, a container) sees
    other files than the daemon: run by the daemon, its command could write where it cannot.
    The client then runs the command itself, under its own restrictions.
    """
    pid = peer_pid(sock)
    if pid is None:
        return "the daemon cannot tell which process is connecting"
    if sys.platform == "darwin":
        if _sandboxed_on_macos(pid):
            return f"the client (pid {pid}) runs in a macOS sandbox"
        return ""
    if own_namespace is None:
        return ""  # no /proc (not Linux): nothing to compare
    theirs = mount_namespace(pid)
    if theirs != own_namespace:
        return (
            f"the client (pid {pid}) runs in another mount namespace ({theirs or 'unknown'}, "
            f"the daemon's is {own_namespace}): it may not reach the files the daemon reaches"
        )
    return ""


class Refusal(Exception):
    """A handler declines a request with a wire error code (not a crash)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class Kind(enum.Enum):
    CONTROL = "control"  # answered from the daemon's own state, for any client
    WORK = "work"  # runs something for the client: checked, kept alive, cancelled on hang-up
    STREAM = "stream"  # writes its own non-final frames before the final one


class Connection:
    """One client connection's facts, owned by its handler task."""

    def __init__(self, writer: asyncio.StreamWriter) -> None:
        self.writer = writer
        self.busy = False  # a request was read and its final frame is not written yet
        self.served = 0  # requests answered; a fresh connection gets one even while draining
        self.mismatched = False  # the client is another build: only control requests
        # The client runs in another mount namespace: it may not reach what the daemon
        # reaches, so the daemon runs nothing for it (only control requests).
        self.foreign = ""
        self.hung_up = False  # the client closed its side while a request ran (Ctrl-C)
        self.reader: asyncio.StreamReader | None = None  # set once greeted (watch needs EOF)
        # The read watchdog: the deadline of the read in progress (None between reads) and
        # the one timer that enforces it, moved on lazily rather than re-armed per frame.
        self.read_deadline: float | None = None
        self.watchdog: asyncio.TimerHandle | None = None

    def watch_read(self, timeout: float) -> None:
        """Abort the connection unless the read starting now completes within `timeout`."""
        loop = asyncio.get_running_loop()
        self.read_deadline = loop.time() + timeout
        if self.watchdog is None or self.watchdog.when() > self.read_deadline:
            if self.watchdog is not None:
                self.watchdog.cancel()
            self.watchdog = loop.call_at(self.read_deadline, self._check)

    def _check(self) -> None:
        self.watchdog = None
        deadline = self.read_deadline
        if deadline is None:
            return  # not reading now: the next read arms a timer again
        loop = asyncio.get_running_loop()
        if loop.time() >= deadline:
            self.writer.transport.abort()  # the pending read ends with a reset
        else:
            self.watchdog = loop.call_at(deadline, self._check)

    def stop_watching(self) -> None:
        if self.watchdog is not None:
            self.watchdog.cancel()
            self.watchdog = None


@dataclass(frozen=True)
class Call:
    """What a handler gets besides the request: its connection, and for work its cancel event
    (set when the client hangs up before the work's write)."""

    conn: Connection
    cancel: threading.Event | None = None


Handler = Callable[[protocol.Request, Call], Awaitable[protocol.ResultData]]


@dataclass(frozen=True)
class Route:
    """One entry of the dispatch table: how a request type is served, and by whom."""

    kind: Kind
    handler: Handler


async def send(writer: asyncio.StreamWriter, message: msgspec.Struct) -> None:
    """Write one frame to the client."""
    await wire.write_frame(writer, protocol.encode(message))


def error(rid: bytes, code: str, message: str) -> protocol.Error:
    """The final Error frame for request `rid`, with the exit code for `code`."""
    return protocol.Error(request_id=rid, code=code, message=message, exit_code=exit_code_for(code))


class Session:
    """Serves one accepted connection until EOF, an error or shutdown.

    Args:
        service: the accept loop (settings, state, counters).
        table: the dispatch table, request Struct type -> Route.
        replies: the kept answers of warm reads.
        own_namespace: the daemon's mount namespace (None where there is no /proc).
        conn: this connection's facts (registered by the accept loop).
        reader: the connection's read side.
    """

    def __init__(
        self,
        service: Service,
        table: dict[type, Route],
        replies: ReplyCache,
        own_namespace: str | None,
        conn: Connection,
        reader: asyncio.StreamReader,
    ) -> None:
        self._service = service
        self._table = table
        self._replies = replies
        self._own_namespace = own_namespace
        self._conn = conn
        self._reader = reader

    async def serve(self) -> None:
        """Check the peer, greet it and serve its requests; never raises for one client."""
        conn, writer = self._conn, self._conn.writer
        try:
            sock = writer.get_extra_info("socket")
            uid = peer_uid(sock)
            if uid != os.geteuid():
                _log.warning("refused a connection from uid %s", uid)
                return
            conn.foreign = foreign_peer(sock, self._own_namespace)
            if await self._greet():
                await self._serve_requests()
        except (ConnectionClosed, ConnectionError, asyncio.CancelledError):
            pass
        except Exception:  # the one place a bug is caught: log it, keep serving others
            _log.exception("connection handler failed")
        finally:
            conn.stop_watching()
            writer.close()

    async def _greet(self) -> bool:
        """Read the client's hello and answer with ours; False when the connection ends."""
        conn, writer = self._conn, self._conn.writer
        try:
            data = await self._read(self._service.config.hello_timeout)
        except FrameTooLarge as exc:
            await self._refuse(b"", "bad_request", exc.message)
            return False
        if data is None:
            return False  # a liveness probe: connect and close
        try:
            client = protocol.decode_hello(data)
        except msgspec.DecodeError as exc:
            await self._refuse(b"", "bad_request", f"expected a hello frame: {exc}")
            return False
        hello = self._service.hello
        conn.mismatched = (
            client.protocol_version != protocol.PROTOCOL_VERSION
            or client.build_id != hello.build_id
        )
        await send(writer, hello)
        conn.reader = self._reader
        return True

    async def _serve_requests(self) -> None:
        conn, writer, service = self._conn, self._conn.writer, self._service
        load = service.load
        while True:
            running = service.state is State.RUNNING
            wait = service.config.connection_idle if running else _DRAIN_READ
            try:
                data = await self._read(wait)
            except FrameTooLarge as exc:
                await self._refuse(b"", "bad_request", exc.message)
                return
            if data is None:
                return
            conn.busy = True
            try:
                # A warm read whose answer is kept and still holds is answered here, on the
                # loop, without the worker hop (grite.daemon.replies).
                kept = None if conn.mismatched or conn.foreign else self._replies.answer(data)
                reply: protocol.Result | protocol.Error | None = None
                if kept is not None:
                    load.requests_served += 1
                    writer.write(wire.encode_frame(kept))
                    if writer.transport.get_write_buffer_size() > _WRITE_BUFFER:
                        await writer.drain()  # a slow reader: wait for it, as send does
                else:
                    reply = await self._dispatch(data)
                    await send(writer, reply)
            finally:
                conn.busy = False
                conn.served += 1
                load.touch()
            if isinstance(reply, protocol.Error) and reply.code == "bad_request":
                return
            if conn.hung_up:
                return  # the client closed its side: it sends nothing more
            if service.state is not State.RUNNING:
                return

    async def _dispatch(self, data: bytes) -> protocol.Result | protocol.Error:
        conn = self._conn
        try:
            request = protocol.decode_request(data)
        except msgspec.DecodeError as exc:
            try:
                head = protocol.decode_request_head(data)
            except msgspec.DecodeError:
                head = protocol.RequestHead()
            if head.schema_version and head.schema_version != protocol.SCHEMA_VERSION:
                code, msg = "version_mismatch", f"unknown schema version {head.schema_version}"
            else:
                code, msg = "bad_request", f"undecodable request: {exc}"
            return error(head.request_id, code, msg)
        rid = request.request_id
        route = self._table.get(type(request.body))
        if request.schema_version != protocol.SCHEMA_VERSION:
            return error(rid, "version_mismatch", "unknown schema version")
        if route is None:
            return error(rid, "bad_request", "unsupported request")
        if conn.mismatched and route.kind is not Kind.CONTROL:
            return error(rid, "version_mismatch", "client and daemon builds differ")
        if conn.foreign and route.kind is not Kind.CONTROL:
            _log.info("declined a request: %s", conn.foreign)
            return error(rid, "foreign_namespace", f"{conn.foreign}; the client runs it itself")
        problem = request_problem(request)
        if problem is not None:
            _log.warning("refused a malformed request: %s", problem)
            return error(rid, "bad_request", f"malformed request: {problem}")
        try:
            if route.kind is Kind.WORK:
                data_out = await self._watched(request, route.handler)
            else:
                data_out = await route.handler(request, Call(conn))
        except Refusal as exc:
            return error(rid, exc.code, exc.message)
        except Exception:  # a bug in one command must not take the daemon down
            _log.exception("request %s failed", rid.hex())
            return error(rid, "internal", "the grite daemon failed; see its log")
        self._service.load.requests_served += 1
        return protocol.Result(request_id=rid, data=data_out)

    async def _watched(self, request: protocol.Request, handler: Handler) -> protocol.ResultData:
        """Run a request's handler while watching its client.

        Every `keepalive` seconds the client gets a Progress frame (its reply deadline is per
        frame, so long work is not timed out and run again in-process). When the client hangs
        up (Ctrl-C half-closes the connection, a killed client closes it) the request's cancel
        event is set: a write the group commit has not taken yet is dropped
        (grite.ops.cancellation). The handler always runs to its end: its worker is never
        abandoned, and the reply (cancelled, or what was done) still goes to a client that
        half-closed and waits for it.
        """
        conn = self._conn
        cancel = threading.Event()
        work = asyncio.ensure_future(handler(request, Call(conn, cancel)))
        assert conn.reader is not None
        # The client sends nothing while its request runs: any byte or EOF is a hang-up.
        hangup: asyncio.Future[bytes] | None = asyncio.ensure_future(conn.reader.read(1))
        started = time.monotonic()
        alive = True
        try:
            while True:
                waiting = {work} if hangup is None else {work, hangup}
                done, _ = await asyncio.wait(
                    waiting,
                    timeout=self._service.config.keepalive,
                    return_when=asyncio.FIRST_COMPLETED,
                )
                if work in done:
                    return work.result()
                if hangup is not None and hangup in done:
                    hangup = None
                    cancel.set()
                    conn.hung_up = True
                    _log.info("client hung up; cancelling request %s", request.request_id.hex())
                    continue
                if alive and not done:
                    elapsed = int((time.monotonic() - started) * 1000)
                    try:
                        await send(conn.writer, protocol.Progress(elapsed_ms=elapsed))
                    except ConnectionClosed:
                        alive = False  # gone: the hang-up above cancels the request
        finally:
            if hangup is not None:
                hangup.cancel()
                # Let the cancelled read give the stream back before the next request's read.
                await asyncio.wait({hangup})

    async def _read(self, timeout: float) -> bytes | None:
        # A timer that aborts the transport is far cheaper than wait_for (no extra task per
        # frame), and one timer per connection, moved on only when it fires, is cheaper than
        # one per frame; the pending read then ends with a reset and the handler returns.
        self._conn.watch_read(timeout)
        try:
            return await wire.read_frame(self._reader)
        finally:
            self._conn.read_deadline = None

    async def _refuse(self, rid: bytes, code: str, msg: str) -> None:
        try:
            await send(self._conn.writer, error(rid, code, msg))
        except ConnectionClosed:
            pass
