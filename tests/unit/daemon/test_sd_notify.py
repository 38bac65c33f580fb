"""sd_notify messages arrive at a real AF_UNIX datagram socket standing in for systemd's.

Both senders are covered: pure Python and systemd-python (a missing systemd-python fails in CI,
CI=true, and is skipped with a reason elsewhere).
"""

from __future__ import annotations

import logging
import os
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from grite.daemon import sd_notify
from grite.daemon.sd_notify import Notifier


@pytest.fixture(params=["pure", "systemd-python"])
def use_ext(request: pytest.FixtureRequest) -> bool:
    if request.param == "systemd-python" and sd_notify._sd_daemon is None:
        if os.environ.get("CI") == "true":
            pytest.fail("CI installs systemd-python (extra 'systemd'); it failed to import")
        pytest.skip("systemd-python is not installed (pip install -e '.[systemd]')")
    return bool(request.param == "systemd-python")


@pytest.fixture
def receiver(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[socket.socket]:
    """A bound datagram socket named in NOTIFY_SOCKET, as systemd provides one."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(tmp_path / "notify.sock"))
    sock.settimeout(5)
    monkeypatch.setenv("NOTIFY_SOCKET", str(tmp_path / "notify.sock"))
    with sock:
        yield sock


def received(sock: socket.socket) -> str:
    return sock.recv(4096).decode()


def test_ready_status_stopping_arrive_in_order(receiver: socket.socket, use_ext: bool) -> None:
    notifier = Notifier(use_systemd_python=use_ext)
    assert notifier.enabled
    notifier.ready()
    notifier.status("serving 2 clients")
    notifier.stopping()
    notifier.watchdog()
    assert received(receiver) == "READY=1"
    assert received(receiver) == "STATUS=serving 2 clients"
    assert received(receiver) == "STOPPING=1"
    assert received(receiver) == "WATCHDOG=1"


def test_ready_with_status_is_one_datagram(receiver: socket.socket, use_ext: bool) -> None:
    Notifier(use_systemd_python=use_ext).ready("idle exit in 300 s")
    assert received(receiver) == "READY=1\nSTATUS=idle exit in 300 s"


def test_status_is_made_single_line(receiver: socket.socket) -> None:
    Notifier(use_systemd_python=False).status("line one\nline two")
    assert received(receiver) == "STATUS=line one line two"


def test_abstract_namespace_address(monkeypatch: pytest.MonkeyPatch, use_ext: bool) -> None:
    name = f"grite-test-{uuid.uuid4().hex}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind("\0" + name)
        sock.settimeout(5)
        monkeypatch.setenv("NOTIFY_SOCKET", "@" + name)
        assert Notifier(use_systemd_python=use_ext).send({"READY": "1"})
        assert received(sock) == "READY=1"


def test_explicit_address_overrides_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NOTIFY_SOCKET", str(tmp_path / "elsewhere.sock"))
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(str(tmp_path / "mine.sock"))
        sock.settimeout(5)
        Notifier(str(tmp_path / "mine.sock")).stopping("bye")
        assert received(sock) == "STOPPING=1\nSTATUS=bye"


def test_no_notify_socket_is_a_no_op(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    notifier = Notifier()
    assert not notifier.enabled
    assert notifier.send({"READY": "1"}) is False
    notifier.ready()  # no-op, no error


def test_vanished_receiver_is_reported_not_raised(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, use_ext: bool
) -> None:
    path = tmp_path / "gone.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(str(path))
    path.unlink()
    monkeypatch.setenv("NOTIFY_SOCKET", str(path))
    assert Notifier(use_systemd_python=use_ext).send({"READY": "1"}) is False


def test_full_receiver_queue_drops_instead_of_blocking(receiver: socket.socket) -> None:
    notifier = Notifier(use_systemd_python=False)
    results = [notifier.send({"STATUS": f"tick {i}"}) for i in range(5000)]
    assert results[0] is True
    assert False in results  # the queue filled up and the sender did not block


def test_unsupported_address_disables_with_warning(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("NOTIFY_SOCKET", "vsock:2:1234")
    with caplog.at_level(logging.WARNING):
        notifier = Notifier(use_systemd_python=False)
    assert not notifier.enabled
    assert notifier.send({"READY": "1"}) is False
    assert "neither a socket path nor an @abstract name" in caplog.text


def test_requiring_missing_systemd_python_raises(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sd_notify, "_sd_daemon", None)
    with pytest.raises(ModuleNotFoundError, match="systemd-python"):
        Notifier(use_systemd_python=True)
