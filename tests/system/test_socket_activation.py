"""The real daemon started by `systemd-socket-activate`, as systemd's grite.socket starts it.

`systemd-socket-activate -l PATH --fdname=grite -- python -m grite.daemon` binds PATH, waits for
the first connection and then execs the daemon with the listener as fd 3 and LISTEN_PID,
LISTEN_FDS, LISTEN_FDNAMES set: exactly the hand-over of a socket unit with Accept=no. These
tests need grite/daemon/main.py to adopt the socket through activation.inherited_listener()
and the `grite` CLI (cli/entry.py) to route commands to the daemon.
A missing systemd-socket-activate is a failure: CI installs the `systemd` package.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from grite.ipc import protocol
from grite.model.invocation import Invocation
from tests.conftest import TypedConnection

GRITE = [sys.executable, "-m", "grite"]


class Activator:
    """A running systemd-socket-activate holding the socket until the daemon takes over."""

    def __init__(self, tmp_path: Path, idle_timeout: int) -> None:
        tool = shutil.which("systemd-socket-activate")
        if tool is None:
            pytest.fail("systemd-socket-activate is missing; CI installs the systemd package")
        self.home = tmp_path / "home"
        self.runtime = tmp_path / "run"
        self.home.mkdir()
        (self.runtime / "grite").mkdir(parents=True, mode=0o700)
        self.runtime.chmod(0o700)
        self.socket = self.runtime / "grite" / "daemon.sock"
        self.env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": str(self.home),
            "XDG_RUNTIME_DIR": str(self.runtime),
            "XDG_CONFIG_HOME": str(self.home / ".config"),
            "XDG_STATE_HOME": str(self.home / ".local" / "state"),
            "GIT_CONFIG_NOSYSTEM": "1",
            "TZ": "UTC",
        }
        passed = [f"-E{key}={value}" for key, value in self.env.items() if key != "PATH"]
        self.proc = subprocess.Popen(
            [
                tool,
                "-l",
                str(self.socket),
                "--fdname=grite",
                *passed,
                "--",
                sys.executable,
                "-m",
                "grite.daemon",
                "--idle-timeout",
                str(idle_timeout),
            ],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert self.proc.stderr is not None
        # The first line appears once the socket is bound and listening.
        first = self.proc.stderr.readline()
        assert first.startswith("Listening on"), first
        self.log: list[str] = [first]
        self._drain = threading.Thread(target=self._read_rest, daemon=True)
        self._drain.start()

    def _read_rest(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.log.append(line)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
        self.proc.wait(timeout=10)
        self._drain.join(timeout=5)


@pytest.fixture
def activator(tmp_path: Path) -> Iterator[Activator]:
    act = Activator(tmp_path, idle_timeout=2)
    try:
        yield act
    finally:
        act.stop()


def invocation(act: Activator, cwd: Path, *argv: str) -> Invocation:
    return Invocation(
        argv=list(argv),
        cwd=str(cwd),
        env={k: v for k, v in act.env.items() if k in ("HOME", "XDG_CONFIG_HOME", "TZ")},
        request_id=os.urandom(16),
        now_ms=int(time.time() * 1000),
    )


def make_repo(path: Path) -> Path:
    subprocess.run(["git", "init", "-q", str(path)], check=True, timeout=30)
    return path


def run_argv(
    conn: TypedConnection, act: Activator, cwd: Path, *argv: str
) -> protocol.RunArgvResult:
    final = conn.request(protocol.RunArgv(invocation=invocation(act, cwd, *argv)))
    assert isinstance(final, protocol.Result), final
    assert isinstance(final.data, protocol.RunArgvResult)
    assert final.data.outcome.exit_code == 0, final.data.outcome
    return final.data


def test_daemon_adopts_socket_and_idles_out_without_unlinking(activator: Activator) -> None:
    with TypedConnection.open(str(activator.socket)) as conn:
        assert conn.server.mode == "systemd"
        final = conn.request(protocol.DaemonStatus())
    assert isinstance(final, protocol.Result)
    status = final.data
    assert isinstance(status, protocol.StatusResult)
    assert status.mode == "systemd"
    # systemd-socket-activate execs the daemon in its own place: same pid.
    assert status.pid == activator.proc.pid
    # Idle exit under activation: status 0 and the socket path left for the manager.
    assert activator.proc.wait(timeout=10) == 0
    assert activator.socket.is_socket()
    assert not any("Traceback" in line for line in activator.log), "".join(activator.log)


def test_commands_run_through_activated_daemon(activator: Activator, tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo")
    with TypedConnection.open(str(activator.socket)) as conn:
        run_argv(conn, activator, repo, "init", "--no-agents-md")
        run_argv(conn, activator, repo, "issue", "create", "--title", "via fd 3")
        listed = run_argv(conn, activator, repo, "issue", "list", "--json")
    assert "via fd 3" in listed.outcome.stdout


def test_grite_cli_reaches_activated_daemon(activator: Activator, tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo")
    for argv in (["init", "--no-agents-md"], ["issue", "list", "--json"]):
        proc = subprocess.run(
            [*GRITE, *argv],
            cwd=repo,
            env={**activator.env, "GRITE_DAEMON": "require"},
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert proc.returncode == 0, proc.stderr
        assert "GRITE_DAEMON=require" not in proc.stderr  # no in-process fallback
    # Nothing but the CLI connects here, and systemd-socket-activate logs "Execing ..." only
    # when a client connected: the commands went to the socket-activated daemon.
    assert activator.proc.wait(timeout=10) == 0
    assert any(line.startswith("Execing") for line in activator.log), "".join(activator.log)


def test_daemon_status_reports_systemd_mode(activator: Activator) -> None:
    env = {**activator.env, "GRITE_DAEMON": "require"}
    human = subprocess.run(
        [*GRITE, "daemon", "status"], env=env, capture_output=True, text=True, timeout=60
    )
    assert human.returncode == 0, human.stderr
    assert "grite daemon is running" in human.stdout
    assert "  mode:         systemd\n" in human.stdout
    as_json = subprocess.run(
        [*GRITE, "daemon", "status", "--json"], env=env, capture_output=True, text=True, timeout=60
    )
    assert as_json.returncode == 0, as_json.stderr
    data = json.loads(as_json.stdout)["data"]
    assert data["running"] is True and data["mode"] == "systemd"
    assert data["pid"] == activator.proc.pid  # the process systemd-socket-activate exec'd
