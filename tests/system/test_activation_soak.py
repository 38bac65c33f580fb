"""The activation soak test: idle exits under a service manager never lose a connection.

The test plays the service manager (systemd with `Accept=no`, or launchd) in Python: it creates
and holds the listening Unix socket at the runtime path (0600 in a 0700 directory) and, whenever
the socket is readable and no daemon child is alive, starts `python -m grite.daemon
--idle-timeout 1` with the socket as fd 3 and `LISTEN_FDS=1`, `LISTEN_FDNAMES=grite`, and
`LISTEN_PID` set to the child's own pid by a tiny exec wrapper (systemd sets it after fork). It
reaps each child when it exits. Meanwhile real `grite` CLI processes (GRITE_DAEMON=require, so any
fallback to in-process fails the command) send over 200 requests in bursts; between bursts the test
either waits until the daemon has idled out (a condition with a deadline: at least 10 idle
exits are guaranteed) or pauses for 0.95-2.05 s so that the next burst lands while the daemon
is deciding to exit or exiting. Those pauses shape the load, they do not synchronise anything.
Every request must succeed with the right output, through the daemon, with zero fallbacks; every
daemon exit must be an idle exit with status 0, and the socket path must never be unlinked.
"""

from __future__ import annotations

import json
import os
import select
import socket
import stat
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

DaemonEnv = Any  # the daemon_env fixture's type (tests/system/conftest.py)

_STRICT_MARK = "GRITE_DAEMON=require"
# Sets LISTEN_PID to its own pid, moves the inherited listener to fd 3, then becomes the daemon:
# what systemd does between fork and exec.
_WRAPPER = (
    "import os, sys\n"
    "fd = int(sys.argv[1])\n"
    "if fd != 3:\n"
    "    os.dup2(fd, 3)\n"
    "    os.close(fd)\n"
    "os.environ['LISTEN_PID'] = str(os.getpid())\n"
    "os.execv(sys.executable, [sys.executable, '-m', 'grite.daemon', *sys.argv[2:]])\n"
)
_ROUNDS = 14
_PER_ROUND = 15
_PARALLEL = 6


class Manager:
    """Holds the listening socket and starts one daemon at a time when it becomes readable."""

    def __init__(self, socket_path: str, env: dict[str, str], log_path: str) -> None:
        directory = os.path.dirname(socket_path)
        os.makedirs(directory, mode=0o700, exist_ok=True)
        os.chmod(directory, 0o700)
        self.socket_path = socket_path
        self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.listener.bind(socket_path)
        os.chmod(socket_path, 0o600)
        self.listener.listen(128)
        self._ident = os.stat(socket_path).st_ino
        self._env = {**env, "LISTEN_FDS": "1", "LISTEN_FDNAMES": "grite"}
        self._log = open(log_path, "ab")  # noqa: SIM115 - closed in stop()
        self._stop_r, self._stop_w = os.pipe()
        self._stopping = False
        self._lock = threading.Lock()
        self._exited = threading.Condition(self._lock)
        self.child: subprocess.Popen[bytes] | None = None
        self.starts = 0
        self.exit_codes: list[int] = []
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="service-manager", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            while not self._stopping:
                child = self.child
                if child is not None:
                    code = child.wait()
                    with self._lock:
                        self.child = None
                        if not self._stopping:
                            self.exit_codes.append(code)
                        self._exited.notify_all()
                    continue
                readable, _, _ = select.select([self.listener, self._stop_r], [], [])
                if self._stop_r in readable:
                    return
                self._start()
        except BaseException as exc:  # reported by the test, never swallowed
            self.error = exc

    def _start(self) -> None:
        fd = self.listener.fileno()
        child = subprocess.Popen(
            [
                sys.executable,
                "-c",
                _WRAPPER,
                str(fd),
                "--idle-timeout",
                "1",
                "--socket-path",  # only so that the fixture's pgrep finds strays at teardown
                self.socket_path,
            ],
            env=self._env,
            pass_fds=(fd,),
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=self._log,
            cwd="/",
        )
        with self._lock:
            self.child = child
            self.starts += 1

    def wait_for_exits(self, count: int, timeout: float = 10.0) -> None:
        """Wait until `count` daemons have exited on their own (a deadline, not a sleep)."""
        with self._lock:
            # No child alive and none exited: nothing can idle out (e.g. it was retired).
            self._exited.wait_for(
                lambda: len(self.exit_codes) >= count or self.child is None, timeout
            )
            ok = len(self.exit_codes) >= count
        assert ok, f"no daemon idled out within {timeout:g}s; log:\n{self.log_text()}"

    def socket_is_ours(self) -> bool:
        try:
            st = os.stat(self.socket_path)
        except FileNotFoundError:
            return False
        return stat.S_ISSOCK(st.st_mode) and st.st_ino == self._ident

    def log_text(self) -> str:
        self._log.flush()
        return Path(self._log.name).read_text(errors="replace")[-6000:]

    def stop(self) -> None:
        self._stopping = True
        os.write(self._stop_w, b"x")
        with self._lock:
            child = self.child
        if child is not None and child.poll() is None:
            child.terminate()
        self._thread.join(timeout=15)
        if child is not None:
            child.wait(timeout=15)
        self.listener.close()
        os.close(self._stop_r)
        os.close(self._stop_w)
        self._log.close()


def _cli(env: dict[str, str], cwd: str, *argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "grite.cli.entry", *argv],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def _repo(env: dict[str, str], path: str) -> None:
    os.mkdir(path)
    subprocess.run(["git", "init", "-q", path], check=True)
    r = _cli({**env, "GRITE_NO_DAEMON": "1"}, path, "init", "--no-agents-md")
    assert r.returncode == 0, r.stderr


@pytest.fixture
def manager(daemon_env: DaemonEnv) -> Any:
    mgr = Manager(daemon_env.paths.socket, daemon_env.env, os.path.join(daemon_env.base, "d.log"))
    try:
        yield mgr
    finally:
        mgr.stop()


def test_idle_exits_under_activation_lose_no_request(daemon_env: DaemonEnv, manager: Any) -> None:
    local = {**daemon_env.env, "GRITE_NO_DAEMON": "1"}
    reads, writes = os.path.join(daemon_env.base, "r"), os.path.join(daemon_env.base, "w")
    _repo(daemon_env.env, reads)
    _repo(daemon_env.env, writes)
    for title in ("alpha", "beta", "gamma"):
        assert _cli(local, reads, "issue", "create", "--title", title).returncode == 0
    listed = _cli(local, reads, "issue", "list", "--json")
    issue_id = json.loads(listed.stdout)["data"]["issues"][0]["issue_id"]
    shown = _cli(local, reads, "issue", "show", issue_id, "--json")
    created = _cli(local, writes, "issue", "create", "--title", "log", "--json")
    log_id = json.loads(created.stdout)["data"]["issue_id"]
    expected = {"list": listed.stdout, "show": shown.stdout}
    env = {**daemon_env.env, "GRITE_DAEMON": "require"}

    def one(n: int) -> tuple[str, subprocess.CompletedProcess[str]]:
        if n % 5 == 4:
            return "write", _cli(env, writes, "issue", "comment", log_id, "--body", f"c{n}")
        if n % 2:
            return "show", _cli(env, reads, "issue", "show", issue_id, "--json")
        return "list", _cli(env, reads, "issue", "list", "--json")

    failures: list[str] = []
    comments = 0
    waited_exits = 0
    with ThreadPoolExecutor(_PARALLEL) as pool:
        for rnd in range(_ROUNDS):
            first = rnd * _PER_ROUND
            for kind, proc in pool.map(one, range(first, first + _PER_ROUND)):
                comments += kind == "write"
                if (
                    proc.returncode != 0
                    or _STRICT_MARK in proc.stdout + proc.stderr
                    or (kind in expected and proc.stdout != expected[kind])
                ):
                    failures.append(f"{kind}: exit {proc.returncode}\n{proc.stderr}{proc.stdout}")
            if rnd % 4 == 3:
                # Land the next burst around the idle deadline (1 s, checked every 1 s): while
                # the daemon decides to exit, closes down, or has just exited.
                time.sleep(0.95 + 0.37 * (rnd % 3))
            else:
                waited_exits += 1
                manager.wait_for_exits(len(manager.exit_codes) + 1)
    manager.wait_for_exits(manager.starts)
    assert manager.error is None, repr(manager.error)
    assert not failures, f"{len(failures)} failed:\n" + "\n".join(failures[:5]) + manager.log_text()
    assert _ROUNDS * _PER_ROUND >= 200
    assert manager.starts >= 11 and waited_exits >= 10
    assert manager.exit_codes == [0] * manager.starts, manager.log_text()
    assert manager.socket_is_ours(), "the daemon unlinked or replaced the manager's socket"
    log = _cli(local, writes, "issue", "show", log_id, "--json")
    bodies = [c["body"] for c in json.loads(log.stdout)["data"]["comments"]]
    assert sorted(bodies) == sorted(f"c{n}" for n in range(_ROUNDS * _PER_ROUND) if n % 5 == 4)
    assert len(bodies) == comments
    assert "Traceback" not in manager.log_text()
