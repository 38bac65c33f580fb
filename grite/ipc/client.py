"""Blocking client for the grite daemon: connect, hello, then requests on one connection.

A Connection may carry many requests in sequence (the CLI sends one; a library client or
`grite batch` send many). Every failure is raised as an IpcError subclass, so a caller can fall
back to running in-process. Imports only the standard library, msgspec, grite.ipc and
grite.model: this is the `grite` command's hot path.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Callable, Iterator
from types import TracebackType

import msgspec

from grite.ipc import framing, protocol
from grite.ipc.framing import IpcError

__all__ = [
    "CONNECT_TIMEOUT",
    "HELLO_TIMEOUT",
    "REQUEST_TIMEOUT",
    "Connection",
    "DaemonMismatch",
    "DaemonUnavailable",
    "ProtocolViolation",
]

CONNECT_TIMEOUT = 2.0
# The first reply bounds the wait, not connect: under socket activation connect always
# succeeds even when the daemon cannot start.
HELLO_TIMEOUT = 5.0
REQUEST_TIMEOUT = 60.0


class DaemonUnavailable(IpcError):
    """No daemon listens on the socket (missing, refused, or not a socket)."""


class DaemonMismatch(IpcError):
    """The daemon speaks another protocol or runs another build; it was asked to retire."""


class ProtocolViolation(IpcError):
    """The daemon sent something this build cannot understand."""


def _head(data: bytes) -> protocol.ResponseHead:
    try:
        return protocol.decode_response_head(data)
    except msgspec.DecodeError:
        return protocol.ResponseHead()


class Connection:
    """One open, greeted connection to the daemon.

    Use `Connection.open(path)`; close with `.close()` or a `with` block.
    """

    def __init__(self, sock: socket.socket, server: protocol.Hello, timeout: float) -> None:
        self._sock = sock
        self.server = server
        self.timeout = timeout

    @classmethod
    def open(
        cls,
        socket_path: str,
        *,
        connect_timeout: float = CONNECT_TIMEOUT,
        hello_timeout: float = HELLO_TIMEOUT,
        timeout: float = REQUEST_TIMEOUT,
        retire_mismatch: bool = True,
        accept_other_build: bool = False,
    ) -> Connection:
        """Connect and exchange hellos.

        Args:
            socket_path: the daemon's socket.
            connect_timeout: bound on connect().
            hello_timeout: bound on the server's hello.
            timeout: default bound on each request's frames.
            retire_mismatch: on a protocol or build mismatch, ask the daemon to retire.
            accept_other_build: keep a connection to a daemon of another build (same
                protocol) for control requests such as status and stop.

        Returns:
            The connection.

        Raises:
            DaemonUnavailable: nothing listens there.
            DaemonMismatch: the daemon is another build (after asking it to retire).
            IpcError: any other transport or protocol failure.
        """
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.settimeout(connect_timeout)
            try:
                sock.connect(socket_path)
            except (FileNotFoundError, ConnectionRefusedError, NotADirectoryError) as exc:
                raise DaemonUnavailable(f"no grite daemon at {socket_path}") from exc
            except TimeoutError as exc:
                raise DaemonUnavailable(f"timed out connecting to {socket_path}") from exc
            except OSError as exc:
                raise DaemonUnavailable(f"cannot connect to {socket_path}: {exc}") from exc
            sock.settimeout(hello_timeout)
            mine = protocol.Hello(
                protocol_version=protocol.PROTOCOL_VERSION,
                build_id=protocol.build_id(),
                pid=os.getpid(),
            )
            framing.send_frame(sock, protocol.encode(mine))
            try:
                server = protocol.decode_hello(framing.recv_frame(sock))
            except msgspec.DecodeError as exc:
                raise ProtocolViolation(f"unreadable hello from the daemon: {exc}") from exc
            conn = cls(sock, server, timeout)
            other_build = server.build_id != mine.build_id and not accept_other_build
            if server.protocol_version != protocol.PROTOCOL_VERSION or other_build:
                if retire_mismatch:
                    conn._retire_quietly()
                raise DaemonMismatch(
                    f"daemon pid {server.pid} runs build {server.build_id} "
                    f"(protocol {server.protocol_version}); this is build {mine.build_id}"
                )
            sock.settimeout(timeout)
            return conn
        except BaseException:
            sock.close()
            raise

    def _retire_quietly(self) -> None:
        try:
            self.request(protocol.Retire())
        except IpcError:
            pass  # best effort: the next daemon start replaces it anyway

    def request(
        self,
        body: protocol.RequestBody,
        *,
        request_id: bytes | None = None,
        repo_root: str = "",
        actor: str = "",
        timeout: float | None = None,
        on_frame: Callable[[protocol.Output | protocol.Notification], None] | None = None,
    ) -> protocol.Result | protocol.Error:
        """Send one request and return its final frame.

        Args:
            body: the request variant.
            request_id: 16-byte idempotency key (random when omitted).
            repo_root: the repository the request is about, if any.
            actor: the actor id, if known.
            timeout: per-frame bound for this request (default: the connection's).
            on_frame: receives non-final frames (Output, Notification) in order.

        Returns:
            The Result or Error frame.

        Raises:
            IpcError: the connection failed or the daemon broke the protocol; the
                connection must then be closed.
        """
        rid = os.urandom(16) if request_id is None else request_id
        envelope = protocol.Request(request_id=rid, body=body, repo_root=repo_root, actor=actor)
        if timeout is not None:
            self._sock.settimeout(timeout)
        try:
            framing.send_frame(self._sock, protocol.encode(envelope))
            while True:
                data = framing.recv_frame(self._sock)
                try:
                    frame = protocol.decode_response(data)
                except msgspec.DecodeError as exc:
                    # Receivers skip unknown non-final kinds; an unknown final kind is fatal.
                    try:
                        head = protocol.decode_response_head(data)
                    except msgspec.DecodeError:
                        head = protocol.ResponseHead()
                    if head.final:
                        raise ProtocolViolation(
                            f"unknown final frame {head.type!r} from the daemon: {exc}"
                        ) from exc
                    continue
                if isinstance(frame, (protocol.Result, protocol.Error)):
                    if frame.request_id != rid and frame.request_id:
                        raise ProtocolViolation("the daemon answered another request id")
                    return frame
                if on_frame is not None:
                    on_frame(frame)
        finally:
            if timeout is not None:
                self._sock.settimeout(self.timeout)

    def stream(
        self,
        body: protocol.RequestBody,
        *,
        request_id: bytes | None = None,
        repo_root: str = "",
        actor: str = "",
        frame_timeout: float | None = None,
    ) -> Iterator[protocol.Response]:
        """Send one request and yield every frame of its reply, the final frame last.

        For long-lived replies (Watch): unlike request(), frames are handed out as they come.

        Args:
            body: the request variant.
            request_id: 16-byte idempotency key (random when omitted).
            repo_root: the repository the request is about, if any.
            actor: the actor id, if known.
            frame_timeout: bound on the wait for each frame; None waits forever.

        Raises:
            IpcError: the connection failed or the daemon broke the protocol.
        """
        rid = os.urandom(16) if request_id is None else request_id
        envelope = protocol.Request(request_id=rid, body=body, repo_root=repo_root, actor=actor)
        framing.send_frame(self._sock, protocol.encode(envelope))
        self._sock.settimeout(frame_timeout)
        try:
            while True:
                data = framing.recv_frame(self._sock)
                try:
                    frame = protocol.decode_response(data)
                except msgspec.DecodeError as exc:
                    head = _head(data)
                    if head.final:
                        raise ProtocolViolation(
                            f"unknown final frame {head.type!r} from the daemon: {exc}"
                        ) from exc
                    continue
                yield frame
                if isinstance(frame, (protocol.Result, protocol.Error)):
                    return
        finally:
            self._sock.settimeout(self.timeout)

    def close(self) -> None:
        """Close the connection (the daemon sees EOF and forgets it)."""
        self._sock.close()

    def __enter__(self) -> Connection:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
