"""Fixtures shared by every test: real git repositories and a `grite` runner that executes the
real command in a child process, with HOME and the runtime directory pointed into tmp so that
nothing touches the user's own files or daemon.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from grite.ipc import protocol
from grite.ipc.build import build_id, install_dir
from grite.ipc.client import REQUEST_TIMEOUT, Connection, ServerHello
from grite.ipc.transport import Call

# The real entry point, as the `grite` console script runs it.
GRITE = [sys.executable, "-m", "grite"]


def git(cwd: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["git", *args], cwd=cwd, capture_output=True, text=True, check=check, timeout=60
    )


def make_repo(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    git(path, "init", "-q", "-b", "main")
    git(path, "config", "user.email", "test@example.com")
    git(path, "config", "user.name", "Test")
    return path


@pytest.fixture
def git_repo(tmp_path: Path) -> Path:
    return make_repo(tmp_path / "repo")


@pytest.fixture
def isolated_env(tmp_path: Path) -> Iterator[dict[str, str]]:
    """An environment whose HOME, XDG dirs and daemon socket are private to this test.

    The runtime dir is a short path under /tmp because Unix socket paths are limited to about
    107 bytes; any daemon started in it is killed at teardown.
    """
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    runtime = Path(tempfile.mkdtemp(prefix="g", dir="/tmp"))
    runtime.chmod(0o700)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GRITE_", "XDG_"))}
    env.update(
        HOME=str(home),
        XDG_RUNTIME_DIR=str(runtime),
        XDG_CONFIG_HOME=str(home / ".config"),
        # The machine's /etc/xdg/grite/config.toml must not reach the tests' daemons.
        XDG_CONFIG_DIRS=str(home / "etc-xdg"),
        XDG_STATE_HOME=str(home / ".local" / "state"),
        GIT_CONFIG_NOSYSTEM="1",
        TZ="UTC",
    )
    try:
        yield env
    finally:
        kill_daemons(runtime)
        shutil.rmtree(runtime, ignore_errors=True)


def daemon_pids(under: str | Path) -> list[int]:
    """Live grite-daemon processes whose command line names `under` (a socket or runtime dir)."""
    out = subprocess.run(
        ["pgrep", "-f", f"grite.daemon.*{under}"], capture_output=True, text=True, check=False
    )
    return [int(p) for p in out.stdout.split()]


def kill_daemons(under: str | Path) -> None:
    """SIGKILL the test's own daemons (only those naming `under`), for teardown."""
    for pid in daemon_pids(under):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


class Grite:
    """Runs the real `grite` command; `mode` is "local" (--no-daemon) or "daemon"."""

    def __init__(self, env: dict[str, str], mode: str) -> None:
        self.env = dict(env)
        self.mode = mode
        if mode == "local":
            self.env["GRITE_NO_DAEMON"] = "1"
        else:
            # Strict: a command the daemon did not serve fails, naming the cause, instead of
            # quietly running in-process.
            self.env["GRITE_DAEMON"] = "require"

    def run(
        self, cwd: Path, *args: str, input: str | None = None, check: bool = False
    ) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(
            [*GRITE, *args],
            cwd=cwd,
            env=self.env,
            input=input,
            capture_output=True,
            text=True,
            timeout=60,
        )
        if self.mode == "daemon":
            assert "GRITE_DAEMON=require" not in proc.stdout + proc.stderr, (
                f"daemon was not used: {proc.stdout}{proc.stderr}"
            )
        if check and proc.returncode != 0:
            raise AssertionError(
                f"grite {' '.join(args)} exited {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
            )
        return proc

    def json(self, cwd: Path, *args: str, input: str | None = None) -> dict[str, Any]:
        """Run with --json, assert success, return `data`."""
        proc = self.run(cwd, *args, "--json", input=input)
        assert proc.returncode == 0, f"grite {args} failed: {proc.stdout}{proc.stderr}"
        doc = json.loads(proc.stdout)
        assert doc["schema_version"] == 1 and doc["ok"] is True
        return doc["data"]  # type: ignore[no-any-return]

    def error(self, cwd: Path, *args: str, input: str | None = None) -> tuple[int, dict[str, Any]]:
        """Run with --json, assert failure, return (exit code, error object)."""
        proc = self.run(cwd, *args, "--json", input=input)
        assert proc.returncode != 0, f"grite {args} unexpectedly succeeded: {proc.stdout}"
        doc = json.loads(proc.stdout)
        assert doc["schema_version"] == 1 and doc["ok"] is False
        return proc.returncode, doc["error"]  # type: ignore[no-any-return]


@pytest.fixture
def grite_local(isolated_env: dict[str, str]) -> Grite:
    return Grite(isolated_env, "local")


@pytest.fixture(params=["local", "daemon"])
def grite(request: pytest.FixtureRequest, isolated_env: dict[str, str]) -> Grite:
    """The CLI in each mode; every CLI test runs once per mode and must see the same output."""
    return Grite(isolated_env, request.param)


WalHead = Callable[[Path], str | None]


def wal_head(repo: Path) -> str | None:
    proc = git(repo, "rev-parse", "-q", "--verify", "refs/grite/wal", check=False)
    return proc.stdout.strip() or None


def wal_commit_count(repo: Path) -> int:
    if wal_head(repo) is None:
        return 0
    return int(git(repo, "rev-list", "--count", "refs/grite/wal").stdout.strip())


def assert_fsck_clean(repo: Path) -> None:
    proc = git(repo, "fsck", "--strict", check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "error" not in proc.stderr.lower(), proc.stderr


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_listening(port: int, proc: subprocess.Popen[bytes], what: str) -> None:
    """Wait until something accepts connections on 127.0.0.1:`port` (fail if `proc` exits)."""
    deadline = time.monotonic() + 20
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            return
        except OSError:
            assert proc.poll() is None, f"{what} exited with {proc.returncode}"
            assert time.monotonic() < deadline, f"{what} did not start listening"
            time.sleep(0.02)


@contextmanager
def serve_git_daemon(base: Path) -> Iterator[int]:
    """A real `git daemon` serving `base` over git:// on 127.0.0.1 with push enabled; yields
    its port. `git daemon` runs git-daemon as a child, so both get a session of their own and
    are stopped together."""
    port = free_port()
    proc = subprocess.Popen(
        ["git", "daemon", "--export-all", "--enable=receive-pack", f"--base-path={base}",
         "--listen=127.0.0.1", f"--port={port}", "--reuseaddr", str(base)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )  # fmt: skip
    try:
        wait_listening(port, proc, "git daemon")
        yield port
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(10)


class TypedConnection:
    """A greeted daemon connection whose requests and replies are protocol Structs (tests
    speak the protocol directly; clients go through grite.ipc.transport)."""

    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    @classmethod
    def open(cls, path: str, *, timeout: float = REQUEST_TIMEOUT) -> TypedConnection:
        conn = Connection.open(path)
        try:
            conn.greet(build_id(), install_dir(), timeout=timeout)
        except BaseException:
            conn.close()
            raise
        return cls(conn)

    @property
    def server(self) -> ServerHello:
        assert self._conn.server is not None
        return self._conn.server

    def request(
        self, body: protocol.RequestBody, *, request_id: bytes | None = None, actor: str = ""
    ) -> protocol.Result | protocol.Error:
        call = Call(protocol.encode(body), request_id=request_id, actor=actor)
        self._conn.send(call.frame())
        final = protocol.decode_response(self._conn.read_final())
        assert isinstance(final, (protocol.Result, protocol.Error)), final
        return final

    def close(self) -> None:
        self._conn.close()

    def __enter__(self) -> TypedConnection:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """The service suite's counts (tests/service), when $GRITE_SERVICE_COUNTS collects them.

    Here, not in tests/service/conftest.py: under xdist only this conftest is loaded where the
    summary is written.
    """
    path = os.environ.get("GRITE_SERVICE_COUNTS")
    if not path or not os.path.exists(path):
        return
    terminalreporter.section("service suite counts")
    with open(path, encoding="utf-8") as f:
        for line in f:
            terminalreporter.write_line(line.rstrip())


# --- the service suite under xdist ----------------------------------------------------------

_SERVICE_SUITE = "tests/service/"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The service suite first: it is the longest unit of work (see the scheduler below)."""
    items.sort(key=lambda item: not item.nodeid.startswith(_SERVICE_SUITE))


def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    """Under `-n N` (xdist's default `load`), every test of tests/service on one worker, in
    file order, and every other test distributed as `load` does.

    Each service module's tests build on one another and the two install kinds share the
    machine's units. xdist's own `--dist loadgroup` would do this, but it tags node ids in a way
    pytest 9 ignores, so the grouping is done here, on node ids alone.
    """
    if config.getvalue("dist") != "load":
        return None
    # Deliberately lazy: only reached when pytest-xdist runs the session.
    from xdist.scheduler import LoadScopeScheduling

    class ServiceSuiteScheduling(LoadScopeScheduling):  # type: ignore[misc]
        def _split_scope(self, nodeid: str) -> str:
            return _SERVICE_SUITE if nodeid.startswith(_SERVICE_SUITE) else nodeid

    return ServiceSuiteScheduling(config, log)
