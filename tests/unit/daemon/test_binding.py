"""Self-bind publishing never takes the path from a socket unit that binds it meanwhile.

The socket unit is played by a real listening socket bound at the path, as systemd does on
`systemctl --user start grite.socket` (it unlinks a leftover node and binds its own). The only
thing simulated is the moment: the probe is wrapped so the "unit" binds right after it ran.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
from pytest_mock import MockerFixture

from grite.daemon import binding
from grite.daemon.binding import Binding
from grite.ipc.paths import RuntimePaths, paths_for_socket
from grite.ipc.spawner import probe


@pytest.fixture
def paths(tmp_path: Path) -> RuntimePaths:
    run = tmp_path / "run"
    run.mkdir(mode=0o700)
    return paths_for_socket(str(run / "daemon.sock"))


@pytest.fixture
def unit_sockets() -> Iterator[list[socket.socket]]:
    held: list[socket.socket] = []
    yield held
    for s in held:
        s.close()


def _bind_like_systemd(path: str, held: list[socket.socket]) -> tuple[int, int]:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.bind(path)
    s.listen(8)
    held.append(s)
    st = os.stat(path)
    return st.st_dev, st.st_ino


def _ident(path: str) -> tuple[int, int]:
    st = os.stat(path)
    return st.st_dev, st.st_ino


def _stale_socket(path: str) -> None:
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.bind(path)
    s.close()  # the node stays, nothing listens: what a killed daemon or a stopped unit leaves
    os.utime(path, (1_700_000_000, 1_700_000_000))  # it was left some time ago


def test_replaces_a_stale_socket_and_serves(paths: RuntimePaths) -> None:
    _stale_socket(paths.socket)
    b = Binding.acquire(paths)
    assert b is not None
    try:
        assert probe(paths.socket)
        assert b.owns_socket()
        assert sorted(os.listdir(os.path.dirname(paths.socket))) == ["daemon.lock", "daemon.sock"]
    finally:
        b.listener.close()
        b.release()


def test_steps_back_when_a_unit_serves_the_path(
    paths: RuntimePaths, unit_sockets: list[socket.socket]
) -> None:
    unit = _bind_like_systemd(paths.socket, unit_sockets)
    assert Binding.acquire(paths) is None
    assert _ident(paths.socket) == unit


def test_a_unit_binding_right_after_the_probe_keeps_the_path(
    paths: RuntimePaths, unit_sockets: list[socket.socket], mocker: MockerFixture
) -> None:
    _stale_socket(paths.socket)
    seen: list[tuple[int, int]] = []

    def probe_then_unit_binds(path: str, timeout: float = 1.0) -> bool:
        alive = probe(path, timeout)
        seen.append(_bind_like_systemd(path, unit_sockets))
        return alive

    mocker.patch.object(binding, "probe", probe_then_unit_binds)
    assert Binding.acquire(paths) is None
    assert _ident(paths.socket) == seen[0], "the unit's socket node was replaced"
    assert probe(paths.socket)
    assert sorted(os.listdir(os.path.dirname(paths.socket))) == ["daemon.lock", "daemon.sock"]


def test_a_unit_binding_before_the_publish_keeps_the_path(
    paths: RuntimePaths, unit_sockets: list[socket.socket], mocker: MockerFixture
) -> None:
    _stale_socket(paths.socket)
    real_link = os.link
    seen: list[tuple[int, int]] = []

    def unit_binds_then_link(src: str, dst: str) -> None:
        if dst == paths.socket and not seen:
            seen.append(_bind_like_systemd(dst, unit_sockets))
        real_link(src, dst)

    mocker.patch.object(binding.os, "link", unit_binds_then_link)
    assert Binding.acquire(paths) is None
    assert _ident(paths.socket) == seen[0]
    assert probe(paths.socket)
    assert sorted(os.listdir(os.path.dirname(paths.socket))) == ["daemon.lock", "daemon.sock"]


def test_a_unit_binding_after_the_publish_is_noticed(
    paths: RuntimePaths, unit_sockets: list[socket.socket]
) -> None:
    b = Binding.acquire(paths)
    assert b is not None
    try:
        assert b.owns_socket()
        _bind_like_systemd(paths.socket, unit_sockets)
        assert not b.owns_socket()  # housekeeping then stops with "lost_socket"
        b.unlink_socket()
        assert probe(paths.socket), "unlink_socket removed the unit's socket"
    finally:
        b.listener.close()
        b.release()
