"""The Supervisor over real Unix sockets, with a small executor standing in for the CLI app."""

from __future__ import annotations

import os
import socket
import struct
import threading
import time
from collections.abc import Callable
from typing import Any

import msgspec
import pytest

from grite.daemon.registry import RequestHandles
from grite.ipc import protocol, transport, wire
from grite.model.invocation import Invocation, Outcome
from tests.conftest import TypedConnection


def _inv(*argv: str) -> Invocation:
    return Invocation(
        argv=list(argv), cwd="/", env={}, request_id=os.urandom(16), now_ms=time.time_ns() // 10**6
    )


def echo(inv: Invocation, handles: RequestHandles) -> Outcome:
    return Outcome(exit_code=len(inv.argv), stdout=" ".join(inv.argv) + "\n", stderr="")


def test_persistent_connection_serves_many_requests(
    start_supervisor: Callable[..., Any],
) -> None:
    run = start_supervisor(echo)
    with TypedConnection.open(run.paths.socket) as conn:
        assert "run_argv" in conn.server.capabilities
        for i in range(20):
            final = conn.request(protocol.RunArgv(invocation=_inv("issue", str(i))))
            assert isinstance(final, protocol.Result)
            assert isinstance(final.data, protocol.RunArgvResult)
            assert final.data.outcome == Outcome(exit_code=2, stdout=f"issue {i}\n", stderr="")
        status = conn.request(protocol.DaemonStatus())
    assert isinstance(status, protocol.Result) and isinstance(status.data, protocol.StatusResult)
    assert status.data.requests_served == 20
    assert status.data.mode == "self-bind"


def test_over_the_in_flight_limit_answers_busy_at_once(
    start_supervisor: Callable[..., Any],
) -> None:
    release = threading.Event()
    entered = threading.Event()

    def slow(inv: Invocation, handles: RequestHandles) -> Outcome:
        entered.set()
        release.wait(10)
        return Outcome(exit_code=0, stdout="done\n", stderr="")

    run = start_supervisor(slow, max_in_flight=1)
    results: list[protocol.Result | protocol.Error] = []
    first = TypedConnection.open(run.paths.socket)
    worker = threading.Thread(
        target=lambda: results.append(first.request(protocol.RunArgv(invocation=_inv("a"))))
    )
    worker.start()
    assert entered.wait(5)
    with TypedConnection.open(run.paths.socket) as second:
        refused = second.request(protocol.RunArgv(invocation=_inv("b")))
    release.set()
    worker.join(5)
    first.close()
    assert isinstance(refused, protocol.Error) and refused.code == "busy"
    assert isinstance(results[0], protocol.Result)


def _raw(path: str) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(5)
    sock.connect(path)
    return sock


def _hello() -> bytes:
    return protocol.encode(
        protocol.Hello(
            protocol_version=protocol.PROTOCOL_VERSION, build_id=protocol.build_id(), pid=1
        )
    )


def test_malformed_clients_get_an_error_or_close_and_others_are_served(
    start_supervisor: Callable[..., Any],
) -> None:
    run = start_supervisor(echo, hello_timeout=0.5)
    path = run.paths.socket
    garbage, oversize, half, silent = _raw(path), _raw(path), _raw(path), _raw(path)
    garbage.sendall(wire.encode_frame(b"\xc1\xff not msgpack"))
    oversize.sendall(struct.pack(">I", wire.MAX_FRAME + 1))
    half.sendall(wire.encode_frame(_hello()))
    half.sendall(b"\x00\x00\x01\x00abc")
    with TypedConnection.open(path) as good:
        for _ in range(5):
            final = good.request(protocol.RunArgv(invocation=_inv("ok")))
            assert isinstance(final, protocol.Result)
    for sock in (garbage, oversize):
        error = protocol.decode_response(wire.recv_frame(sock))
        assert isinstance(error, protocol.Error) and error.code == "bad_request"
        with pytest.raises(wire.ConnectionClosed):
            wire.recv_frame(sock)
    protocol.decode_hello(wire.recv_frame(half))
    half.close()
    # The never-sending client is closed by the hello deadline.
    with pytest.raises(wire.ConnectionClosed):
        wire.recv_frame(silent)
    for sock in (garbage, oversize, silent):
        sock.close()


def test_unknown_schema_version_and_body_are_refused_clearly(
    start_supervisor: Callable[..., Any],
) -> None:
    run = start_supervisor(echo)
    sock = _raw(run.paths.socket)
    with sock:
        wire.send_frame(sock, _hello())
        protocol.decode_hello(wire.recv_frame(sock))
        wire.send_frame(
            sock,
            msgspec.msgpack.encode(
                {"request_id": b"x", "schema_version": 7, "body": {"type": "teleport"}}
            ),
        )
        error = protocol.decode_response(wire.recv_frame(sock))
    assert isinstance(error, protocol.Error)
    assert (error.code, error.request_id) == ("version_mismatch", b"x")


def test_other_build_client_cannot_run_commands(
    start_supervisor: Callable[..., Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    run = start_supervisor(echo)
    monkeypatch.setattr(protocol, "build_id", lambda: "0" * protocol.BUILD_ID_LEN)
    sock = _raw(run.paths.socket)
    with sock:
        wire.send_frame(sock, _hello())
        protocol.decode_hello(wire.recv_frame(sock))
        wire.send_frame(
            sock,
            protocol.encode(
                protocol.Request(request_id=b"r", body=protocol.RunArgv(invocation=_inv("x")))
            ),
        )
        refused = protocol.decode_response(wire.recv_frame(sock))
    assert isinstance(refused, protocol.Error) and refused.code == "version_mismatch"
    assert run.thread.is_alive()


def _other_build(monkeypatch: pytest.MonkeyPatch, install: str | None) -> None:
    """Make this process's client a different build (of this or another installation)."""
    monkeypatch.setattr(transport, "build_id", lambda: "0" * protocol.BUILD_ID_LEN)
    monkeypatch.setattr(transport, "compute_build_id", lambda: "0" * protocol.BUILD_ID_LEN)
    if install is not None:
        monkeypatch.setattr(transport, "install_dir", lambda: install)


def test_a_newer_build_of_the_same_installation_retires_the_daemon(
    start_supervisor: Callable[..., Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    run = start_supervisor(echo)
    _other_build(monkeypatch, None)
    daemon = transport.DaemonTransport(run.paths, start="never")
    with pytest.raises(transport.Unserved) as info:
        daemon.handle_request(transport.Call(protocol.encode(protocol.Ping())))
    assert info.value.cause == "upgrade"
    run.thread.join(10)
    assert not run.thread.is_alive()
    assert not os.path.exists(run.paths.socket)
    assert not os.path.exists(run.paths.pid_file)


def test_another_installation_leaves_the_daemon_alone_and_uses_its_own_socket(
    start_supervisor: Callable[..., Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    run = start_supervisor(echo)
    _other_build(monkeypatch, "/somewhere/else/site-packages")
    daemon = transport.DaemonTransport(run.paths, start="never")
    with pytest.raises(transport.Unserved) as info:
        daemon.handle_request(transport.Call(protocol.encode(protocol.Ping())))
    # It would start a daemon of its own build on its own socket, next to the main one.
    assert info.value.cause == "no_daemon"
    assert "daemon-" + "0" * protocol.BUILD_ID_LEN + ".sock" in info.value.message
    assert run.thread.is_alive()
    with TypedConnection.open(run.paths.socket) as conn:
        assert isinstance(conn.request(protocol.Ping()), protocol.Result)


def test_idle_timeout_stops_and_cleans_up(
    start_supervisor: Callable[..., Any],
) -> None:
    run = start_supervisor(echo, idle_timeout=0.2, tick=0.05)
    run.thread.join(10)
    assert not run.thread.is_alive()
    assert not os.path.exists(run.paths.socket)


def test_executor_crash_is_an_internal_error_and_daemon_keeps_serving(
    start_supervisor: Callable[..., Any],
) -> None:
    def crash(inv: Invocation, handles: RequestHandles) -> Outcome:
        if inv.argv == ["boom"]:
            raise RuntimeError("bug")
        return echo(inv, handles)

    run = start_supervisor(crash)
    with TypedConnection.open(run.paths.socket) as conn:
        bad = conn.request(protocol.RunArgv(invocation=_inv("boom")))
        good = conn.request(protocol.RunArgv(invocation=_inv("fine")))
    assert isinstance(bad, protocol.Error) and bad.code == "internal"
    assert isinstance(good, protocol.Result)
