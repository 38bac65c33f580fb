"""The daemon transport reconnects once when the daemon hangs up before its hello.

Under socket activation an instance that is exiting can take a connection from the service
manager's queue and close it unserved; the client must then connect once more (the manager
starts the next instance) instead of falling back in-process. Real Unix sockets; the server
side is a thread that plays "exiting instance, then new instance".
"""

from __future__ import annotations

import os
import socket
import tempfile
import threading
from collections.abc import Iterator

import pytest

from grite.ipc import protocol, wire
from grite.ipc.paths import paths_for_socket
from grite.ipc.transport import DaemonTransport, Unserved


class _Server:
    """Closes the first `drop` connections unserved; greets the next one."""

    def __init__(self, path: str, drop: int) -> None:
        self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.listener.bind(path)
        self.listener.listen(8)
        self.accepted = 0
        self._drop = drop
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while True:
            try:
                sock, _ = self.listener.accept()
            except OSError:
                return
            self.accepted += 1
            with sock:
                if self.accepted <= self._drop:
                    continue  # accepted, never served: EOF before the hello
                wire.recv_frame(sock)
                hello = protocol.Hello(
                    protocol_version=protocol.PROTOCOL_VERSION,
                    build_id=protocol.build_id(),
                    pid=os.getpid(),
                    mode="systemd",
                )
                wire.send_frame(sock, protocol.encode(hello))
                return

    def close(self) -> None:
        self.listener.close()
        self._thread.join(5)


@pytest.fixture
def socket_path() -> Iterator[str]:
    base = tempfile.mkdtemp(prefix="g", dir="/tmp")
    try:
        yield os.path.join(base, "daemon.sock")
    finally:
        for name in os.listdir(base):
            os.unlink(os.path.join(base, name))
        os.rmdir(base)


def _transport(socket_path: str) -> DaemonTransport:
    return DaemonTransport(paths_for_socket(socket_path), control=True, socket_path=socket_path)


def test_connection_closed_before_hello_is_retried_once(socket_path: str) -> None:
    server = _Server(socket_path, drop=1)
    try:
        with _transport(socket_path) as transport:
            assert transport.connect()
            assert transport.server is not None and transport.server.mode == "systemd"
        assert server.accepted == 2
    finally:
        server.close()


def test_a_second_hang_up_is_not_retried_again(socket_path: str) -> None:
    server = _Server(socket_path, drop=5)
    try:
        with pytest.raises(Unserved) as info:
            _transport(socket_path)._open(None)
        assert info.value.cause == "lost"
        assert server.accepted == 2
    finally:
        server.close()


def test_no_socket_is_still_unavailable(socket_path: str) -> None:
    with pytest.raises(Unserved) as info:
        _transport(socket_path)._open(None)
    assert info.value.cause == "no_daemon"
