"""A Ctrl-C right after a request's bytes left is settled with the daemon, never reported as
"nothing was done": the daemon may already be running it (tests/system/test_ctrl_c.py saw an
issue created after the client said so). The moment is the one thing simulated: send_frame is
wrapped to raise KeyboardInterrupt once the real send returned, on a real socket pair."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest
from pytest_mock import MockerFixture

from grite.ipc import client, wire
from grite.ipc.client import Connection
from grite.ipc.wire import IpcError


@pytest.fixture
def pair() -> Iterator[tuple[Connection, socket.socket]]:
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    conn = Connection(ours, "test")  # type: ignore[arg-type]
    yield conn, theirs
    ours.close()
    theirs.close()


def _interrupt_after_send(mocker: MockerFixture) -> None:
    real = wire.send_frame

    def send_then_ctrl_c(sock: object, *frames: bytes) -> None:
        real(sock, *frames)  # type: ignore[arg-type]
        raise KeyboardInterrupt

    mocker.patch.object(client.wire, "send_frame", send_then_ctrl_c)


def test_ctrl_c_right_after_a_request_was_sent_still_awaits_its_answer(
    pair: tuple[Connection, socket.socket], mocker: MockerFixture
) -> None:
    conn, daemon = pair
    _interrupt_after_send(mocker)
    with pytest.raises(KeyboardInterrupt):
        conn.send(b"request")
    assert daemon.recv(64).endswith(b"request")  # it did reach the daemon
    assert conn.awaiting, "a sent request was taken for one never sent"


def test_ctrl_c_right_after_hello_and_first_request_still_awaits_its_answer(
    pair: tuple[Connection, socket.socket], mocker: MockerFixture
) -> None:
    conn, daemon = pair
    _interrupt_after_send(mocker)
    with pytest.raises(KeyboardInterrupt):
        conn.greet("build", "/install", first=b"request")
    assert daemon.recv(4096).endswith(b"request")
    assert conn.awaiting


def test_a_hello_alone_awaits_nothing(pair: tuple[Connection, socket.socket]) -> None:
    conn, daemon = pair
    daemon.close()  # no hello comes back: greeting fails after our hello went out
    with pytest.raises((IpcError, OSError)):
        conn.greet("build", "/install", hello_timeout=1.0)
    assert not conn.awaiting
