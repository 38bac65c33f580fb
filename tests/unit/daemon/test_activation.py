"""Activation detection with real fds: a child interpreter receives sockets at fd 3.. as a
service manager would pass them, sets LISTEN_PID to its own pid and reports what
`inherited_listener` found. Both the pure-Python path and systemd-python are exercised; a
missing systemd-python fails in CI (CI=true) and is skipped with a reason elsewhere.
"""

from __future__ import annotations

import ctypes
import errno
import json
import logging
import os
import socket
import subprocess
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

from grite.daemon import activation
from grite.daemon.activation import ActivationMode, inherited_listener

LISTEN_VARS = ("LISTEN_PID", "LISTEN_PIDFDID", "LISTEN_FDS", "LISTEN_FDNAMES")

# Runs in the child. argv: JSON {"fds": [...], "env": {...}, "expected": str, "backend": str,
# "accept": bool}. "{pid}" / "{pidfdid}" in an env value become the child's pid / pidfd inode.
CHILD = r"""
import fcntl, json, logging, os, socket, sys
logging.basicConfig(level=logging.WARNING, stream=sys.stderr, format="%(levelname)s %(message)s")
spec = json.loads(sys.argv[1])
high = [fcntl.fcntl(fd, fcntl.F_DUPFD, 100) for fd in spec["fds"]]
for fd in spec["fds"]:
    os.close(fd)
for i, fd in enumerate(high):
    os.dup2(fd, 3 + i)  # inheritable, as systemd-socket-activate passes them
    os.close(fd)
def pidfd_id():
    fd = os.pidfd_open(os.getpid())
    try:
        return str(os.fstat(fd).st_ino)
    finally:
        os.close(fd)
for key, value in spec["env"].items():
    value = value.replace("{pid}", str(os.getpid()))
    if "{pidfdid}" in value:
        value = value.replace("{pidfdid}", pidfd_id())
    os.environ[key] = value
from grite.daemon.activation import inherited_listener
use = {"auto": None, "pure": False, "systemd-python": True}[spec["backend"]]
found = inherited_listener(spec["expected"], use_systemd_python=use)
out = {"mode": None}
if found is not None:
    sock, mode = found
    out = {
        "mode": mode.value,
        "fd": sock.fileno(),
        "name": sock.getsockname(),
        "inheritable": os.get_inheritable(sock.fileno()),
    }
    if spec["accept"]:
        sock.settimeout(5)
        conn, _ = sock.accept()
        out["received"] = conn.recv(16).decode()
        conn.close()
out["cloexec"] = {}
for i in range(len(high)):
    try:
        out["cloexec"][str(3 + i)] = not os.get_inheritable(3 + i)
    except OSError:
        pass
out["env_left"] = [k for k in ("LISTEN_PID", "LISTEN_PIDFDID", "LISTEN_FDS", "LISTEN_FDNAMES")
                   if k in os.environ]
out["ctypes_loaded"] = "ctypes" in sys.modules
print(json.dumps(out))
"""


def _backend_or_skip(backend: str) -> str:
    if backend == "systemd-python" and not activation.systemd_python_available():
        if os.environ.get("CI") == "true":
            pytest.fail("CI installs systemd-python (extra 'systemd'); it failed to import")
        pytest.skip("systemd-python is not installed (pip install -e '.[systemd]')")
    return backend


@pytest.fixture(params=["pure", "systemd-python"])
def backend(request: pytest.FixtureRequest) -> str:
    return _backend_or_skip(str(request.param))


def run_child(
    fds: Sequence[int],
    env: dict[str, str],
    *,
    backend: str = "pure",
    expected: str = "grite",
    accept: bool = False,
) -> tuple[dict[str, object], str]:
    """Start the child with `fds` passed (they land on 3, 4, ...); return (report, stderr)."""
    child_env = {k: v for k, v in os.environ.items() if k not in LISTEN_VARS}
    spec = {"fds": list(fds), "env": env, "expected": expected, "backend": backend}
    spec["accept"] = accept
    proc = subprocess.run(
        [sys.executable, "-c", CHILD, json.dumps(spec)],
        pass_fds=tuple(fds),
        env=child_env,
        capture_output=True,
        text=True,
        timeout=20,
    )
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout), proc.stderr


def systemd_env(count: int, names: str | None = "grite", pid: str = "{pid}") -> dict[str, str]:
    env = {"LISTEN_PID": pid, "LISTEN_FDS": str(count)}
    if names is not None:
        env["LISTEN_FDNAMES"] = names
    return env


@pytest.fixture
def listener(tmp_path: Path) -> Iterator[socket.socket]:
    with listening_unix(tmp_path / "a.sock") as sock:
        yield sock


def listening_unix(path: Path) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.bind(str(path))
    sock.listen(8)
    return sock


def test_adopts_listening_unix_socket_at_fd_3(
    listener: socket.socket, tmp_path: Path, backend: str
) -> None:
    # A client queued before the daemon starts must be served by the adopted socket.
    client = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    client.connect(str(tmp_path / "a.sock"))
    client.sendall(b"hello")
    report, stderr = run_child([listener.fileno()], systemd_env(1), backend=backend, accept=True)
    client.close()
    assert report["mode"] == ActivationMode.SYSTEMD.value
    assert report["fd"] == 3
    assert report["name"] == str(tmp_path / "a.sock")
    assert report["received"] == "hello"
    assert report["inheritable"] is False
    assert report["env_left"] == []
    assert "WARNING" not in stderr


def test_picks_fd_named_like_expected_name(tmp_path: Path, backend: str) -> None:
    with (
        listening_unix(tmp_path / "other.sock") as other,
        listening_unix(tmp_path / "grite.sock") as ours,
    ):
        report, _ = run_child(
            [other.fileno(), ours.fileno()], systemd_env(2, "other:grite"), backend=backend
        )
    assert report["fd"] == 4
    assert report["name"] == str(tmp_path / "grite.sock")
    # Every passed fd is close-on-exec afterwards, chosen or not.
    assert report["cloexec"] == {"3": True, "4": True}
    assert report["env_left"] == []


def test_takes_first_fd_when_no_name_matches(tmp_path: Path, backend: str) -> None:
    with listening_unix(tmp_path / "one.sock") as one, listening_unix(tmp_path / "two.sock") as two:
        report, _ = run_child(
            [one.fileno(), two.fileno()], systemd_env(2, "one:two"), backend=backend
        )
    assert report["fd"] == 3
    assert report["name"] == str(tmp_path / "one.sock")


def test_mismatched_fdnames_ignored_with_warning(listener: socket.socket, backend: str) -> None:
    report, stderr = run_child([listener.fileno()], systemd_env(1, "a:b"), backend=backend)
    assert report["mode"] == "systemd"
    assert report["fd"] == 3
    assert "ignoring the names" in stderr


def test_listen_pid_of_another_process_is_ignored(listener: socket.socket, backend: str) -> None:
    report, stderr = run_child(
        [listener.fileno()], systemd_env(1, pid=str(os.getpid())), backend=backend
    )
    assert report["mode"] is None
    assert "names another process" in stderr
    assert report["env_left"] == []


@pytest.mark.skipif(not hasattr(os, "pidfd_open"), reason="pidfds exist only on Linux")
def test_listen_pidfdid_must_name_this_process(listener: socket.socket) -> None:
    ours, _ = run_child([listener.fileno()], {**systemd_env(1), "LISTEN_PIDFDID": "{pidfdid}"})
    other, stderr = run_child([listener.fileno()], {**systemd_env(1), "LISTEN_PIDFDID": "1"})
    assert ours["mode"] == "systemd"
    assert other["mode"] is None
    assert "LISTEN_PIDFDID names another process" in stderr
    assert other["env_left"] == []


def test_non_listening_unix_socket_is_refused(backend: str) -> None:
    left, right = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    with left, right:
        report, stderr = run_child([left.fileno()], systemd_env(1), backend=backend)
    assert report["mode"] is None
    assert "not listening" in stderr
    assert "binding the socket ourselves" in stderr
    assert report["env_left"] == []


def test_pipe_is_refused(backend: str) -> None:
    read_end, write_end = os.pipe()
    try:
        report, stderr = run_child([read_end], systemd_env(1), backend=backend)
    finally:
        os.close(read_end)
        os.close(write_end)
    assert report["mode"] is None
    assert "fd 3, but it is a pipe" in stderr
    assert report["env_left"] == []


def test_datagram_and_inet_sockets_are_refused(tmp_path: Path) -> None:
    dgram = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    dgram.bind(str(tmp_path / "d.sock"))
    inet = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    inet.bind(("127.0.0.1", 0))
    inet.listen(1)
    with dgram, inet:
        dgram_report, dgram_err = run_child([dgram.fileno()], systemd_env(1))
        inet_report, inet_err = run_child([inet.fileno()], systemd_env(1))
    assert dgram_report["mode"] is None
    assert "SOCK_DGRAM socket" in dgram_err
    assert inet_report["mode"] is None
    assert "AF_INET socket" in inet_err


def test_no_environment_means_no_listener_and_no_ctypes() -> None:
    report, stderr = run_child([], {}, backend="auto")
    assert report["mode"] is None
    assert report["ctypes_loaded"] is False
    assert stderr == ""


def test_zero_fds_means_no_listener(backend: str) -> None:
    report, _ = run_child([], systemd_env(0, names=None), backend=backend)
    assert report["mode"] is None
    assert report["env_left"] == []


def test_in_process_without_variables_returns_none(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in LISTEN_VARS:
        monkeypatch.delenv(name, raising=False)
    assert inherited_listener(use_systemd_python=False, platform="linux") is None


def test_bad_listen_pid_clears_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LISTEN_PID", "not-a-pid")
    monkeypatch.setenv("LISTEN_FDS", "1")
    monkeypatch.setenv("LISTEN_FDNAMES", "grite")
    assert inherited_listener(use_systemd_python=False, platform="linux") is None
    assert not any(name in os.environ for name in LISTEN_VARS)


def test_requiring_missing_systemd_python_raises(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(activation, "_sd_daemon", None)
    with pytest.raises(ModuleNotFoundError, match="pip install systemd-python"):
        inherited_listener(use_systemd_python=True)


# --- launchd: the check-in call is exercised through a C-callable stand-in on Linux --------

_LIBC = ctypes.CDLL(None)
_LIBC.malloc.argtypes = [ctypes.c_size_t]
_LIBC.malloc.restype = ctypes.c_void_p
_LIBC.free.argtypes = [ctypes.c_void_p]
_LIBC.free.restype = None
_ACTIVATE = ctypes.CFUNCTYPE(
    ctypes.c_int,
    ctypes.c_char_p,
    ctypes.POINTER(ctypes.POINTER(ctypes.c_int)),
    ctypes.POINTER(ctypes.c_size_t),
)


def fake_launch_activate_socket(result: int, fds: Sequence[int], calls: list[bytes]) -> object:
    """A C function pointer with launch_activate_socket's contract (malloc'd fd array)."""

    def impl(name: bytes, fds_out: object, count_out: object) -> int:
        calls.append(name)
        if result != 0:
            return result
        array = ctypes.cast(
            _LIBC.malloc(ctypes.sizeof(ctypes.c_int) * max(len(fds), 1)),
            ctypes.POINTER(ctypes.c_int),
        )
        for i, fd in enumerate(fds):
            array[i] = fd
        fds_out[0] = array  # type: ignore[index]
        count_out[0] = len(fds)  # type: ignore[index]
        return 0

    return _ACTIVATE(impl)


def test_launchd_check_in_returns_fds_and_frees_array() -> None:
    calls: list[bytes] = []
    freed: list[int] = []

    def free(ptr: object) -> None:
        freed.append(1)
        _LIBC.free(ctypes.cast(ptr, ctypes.c_void_p))

    activate = fake_launch_activate_socket(0, [7, 9], calls)
    assert activation._launchd_fds("Listeners", activate, free) == [7, 9]  # type: ignore[arg-type]
    assert calls == [b"Listeners"]
    assert freed == [1]


def test_launchd_not_managed_is_silent(caplog: pytest.LogCaptureFixture) -> None:
    activate = fake_launch_activate_socket(errno.ESRCH, [], [])
    with caplog.at_level(logging.WARNING):
        assert activation._launchd_fds("Listeners", activate, _LIBC.free) == []  # type: ignore[arg-type]
    assert caplog.records == []


def test_launchd_missing_socket_key_warns(caplog: pytest.LogCaptureFixture) -> None:
    activate = fake_launch_activate_socket(errno.ENOENT, [], [])
    with caplog.at_level(logging.WARNING):
        assert activation._launchd_fds("Listeners", activate, _LIBC.free) == []  # type: ignore[arg-type]
    assert "launchd check-in for socket 'Listeners' failed" in caplog.text


@pytest.mark.skipif(sys.platform != "darwin", reason="launchd exists only on macOS")
def test_launchd_outside_launchd_returns_none(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in LISTEN_VARS:
        monkeypatch.delenv(name, raising=False)
    # pytest is not a launchd job with a "Listeners" socket: ESRCH or ENOENT, never a socket.
    assert inherited_listener(platform="darwin") is None
