"""One blocking connection to the grite daemon: connect, exchange hellos, then frames.

Frame level only: requests go out as encoded bytes and replies come back as the bytes of their
frames, so each caller decodes with its own codec (the `grite` command with grite.ipc.wire,
library callers with msgspec through grite.ipc.protocol). The hello may travel in one write
with the first request (pipelined): a daemon of another build refuses that request without
running it, so nothing is lost by sending it early. Every failure is raised as an IpcError
subclass. Imports only the standard library, grite.ipc.wire and grite.model.errors: this is
the `grite` command's hot path (the `socket` module alone would load enum and selectors, so
the C `_socket` module is used directly).
"""

from __future__ import annotations

import _socket
import os

from grite.ipc import wire
from grite.ipc.build import PROTOCOL_VERSION
from grite.ipc.wire import IpcError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from types import TracebackType

__all__ = [
    "CONNECT_TIMEOUT",
    "HELLO_TIMEOUT",
    "REQUEST_TIMEOUT",
    "Connection",
    "ProtocolViolation",
    "ServerHello",
]

CONNECT_TIMEOUT = 2.0
# The first reply bounds the wait, not connect: under socket activation connect always
# succeeds even when the daemon cannot start.
HELLO_TIMEOUT = 5.0
REQUEST_TIMEOUT = 60.0


class ProtocolViolation(IpcError):
    """The daemon sent something this build cannot understand."""


class ServerHello:
    """The daemon's hello (grite.ipc.protocol.Hello), read without msgspec."""

    __slots__ = ("build_id", "capabilities", "install", "mode", "pid", "protocol_version")

    def __init__(self, frame: object) -> None:
        if not isinstance(frame, dict):
            raise ProtocolViolation("the daemon's hello is not a map")
        try:
            self.protocol_version = int(frame["protocol_version"])
            self.build_id = str(frame["build_id"])
            self.pid = int(frame["pid"])
        except (KeyError, TypeError, ValueError) as exc:
            raise ProtocolViolation(f"the daemon's hello lacks {exc}") from exc
        caps = frame.get("capabilities", [])
        self.capabilities = [str(c) for c in caps] if isinstance(caps, list) else []
        self.mode = str(frame.get("mode", ""))
        self.install = str(frame.get("install", ""))

    def speaks(self, build_id: str) -> bool:
        """Whether this daemon runs `build_id` with our protocol (it will serve us)."""
        return self.protocol_version == PROTOCOL_VERSION and self.build_id == build_id


class Connection:
    """One open connection to the daemon. Use `Connection.open(path)`, then `greet`."""

    def __init__(self, sock: _socket.socket, path: str) -> None:
        self._sock = sock
        self.path = path
        self.server: ServerHello | None = None
        self.timeout = REQUEST_TIMEOUT
        # A request frame was (or was being) sent and its final reply has not been read:
        # what a Ctrl-C must settle with the daemon (grite.ipc.transport.DaemonTransport).
        self.awaiting = False
        self.answer: bytes | None = None  # the final reply to the last request sent

    @classmethod
    def open(
        cls, socket_path: str, *, connect_timeout: float = CONNECT_TIMEOUT
    ) -> Connection | None:
        """Connect to `socket_path`; None when no daemon answers there (no socket, refused,
        not a socket, timed out). Without an exception: every command asks a socket that is
        usually absent first (its build's own, see grite.ipc.transport)."""
        sock = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
        try:
            sock.settimeout(connect_timeout)
            sock.connect(socket_path)
        except OSError:  # FileNotFoundError, ConnectionRefusedError, TimeoutError, ...
            sock.close()
            return None
        return cls(sock, socket_path)

    def greet(
        self,
        build_id: str,
        install: str,
        *,
        first: bytes | None = None,
        hello_timeout: float = HELLO_TIMEOUT,
        timeout: float = REQUEST_TIMEOUT,
    ) -> ServerHello:
        """Send our hello (and `first`, a request frame, in the same write); read theirs.

        Raises:
            IpcError: the daemon hung up, timed out or sent no readable hello.
        """
        self._sock.settimeout(hello_timeout)
        mine = wire.hello(PROTOCOL_VERSION, build_id, os.getpid(), install)
        # Marked before the bytes go: a Ctrl-C right after they left must not be taken for
        # "never sent" (the daemon may already be running the request).
        self.awaiting, self.answer = first is not None, None
        wire.send_frame(self._sock, mine, *(() if first is None else (first,)))
        try:
            self.server = ServerHello(wire.decode(wire.recv_frame(self._sock)))
        except wire.WireError as exc:
            raise ProtocolViolation(f"unreadable hello from the daemon: {exc}") from exc
        self.timeout = timeout
        self._sock.settimeout(timeout)
        return self.server

    def send(self, payload: bytes) -> None:
        """Send one request frame."""
        self.awaiting, self.answer = True, None  # before the bytes go, as in greet
        wire.send_frame(self._sock, payload)

    def settle(self, timeout: float) -> bytes | None:
        """After a Ctrl-C: tell the daemon (close our side) and read its final answer.

        The daemon cancels a request whose write it has not committed and answers either way,
        so the caller can say what was done. None when no request was pending or no answer
        came within `timeout`.
        """
        if not self.awaiting:
            return self.answer
        try:
            self._sock.shutdown(_socket.SHUT_WR)
            if self.server is None:
                self._sock.settimeout(timeout)
                wire.recv_frame(self._sock)  # the daemon's hello, sent before the reply
            return self.read_final(timeout=timeout)
        except (IpcError, OSError):
            return None

    def read_final(
        self, *, on_frame: Callable[[bytes], None] | None = None, timeout: float | None = None
    ) -> bytes:
        """Read the reply's frames up to the final one (Result or Error) and return it.

        Args:
            on_frame: receives each non-final frame (Output, Notification) in order.
            timeout: per-frame bound for this reply (default: the connection's).

        Raises:
            IpcError: the connection failed or a frame is unreadable; close it then.
        """
        if timeout is not None:
            self._sock.settimeout(timeout)
        try:
            while True:
                data = wire.recv_frame(self._sock)
                try:
                    _, final, _ = wire.reply_head(data)
                except wire.WireError as exc:
                    raise ProtocolViolation(f"unreadable frame from the daemon: {exc}") from exc
                if final:
                    self.awaiting, self.answer = False, data
                    return data
                if on_frame is not None:
                    on_frame(data)
        finally:
            if timeout is not None:
                self._sock.settimeout(self.timeout)

    def frames(self, frame_timeout: float | None) -> Iterator[bytes]:
        """Yield every frame of a long reply (Watch) as it comes, the final frame last.

        Args:
            frame_timeout: bound on the wait for each frame; None waits forever.
        """
        self._sock.settimeout(frame_timeout)
        try:
            while True:
                data = wire.recv_frame(self._sock)
                try:
                    _, final, _ = wire.reply_head(data)
                except wire.WireError as exc:
                    raise ProtocolViolation(f"unreadable frame from the daemon: {exc}") from exc
                yield data
                if final:
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
