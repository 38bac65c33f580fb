"""Fixtures for the fault suite: a private runtime directory and HOME per test (short paths
under /tmp, Unix sockets allow ~107 bytes), real `grite` and `grite-daemon` processes, and the
checks every fault test ends with: which event ids the WAL holds, whether git agrees the ref
is sound, and whether the view equals a rebuild from nothing. At teardown only this test's
daemons are killed (matched by the socket path in their command line).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from grite.daemon.binding import read_pid_record
from grite.ipc.paths import RuntimePaths, runtime_paths
from grite.model.invocation import Invocation
from grite.storage.wal import Wal
from tests.conftest import daemon_pids, kill_daemons

# The real entry point, as the console script runs it.
GRITE = [sys.executable, "-m", "grite"]
FALLBACK_MARK = "grite: daemon not used"
# The environment of a run that must go through the daemon: a fallback fails the command.
STRICT = {"GRITE_DAEMON": "require"}
STRICT_MARK = "GRITE_DAEMON=require"


def assert_served(proc: subprocess.CompletedProcess[str]) -> None:
    """The command ran in the daemon (strict mode reports any fallback as this error)."""
    out = proc.stdout + proc.stderr
    assert STRICT_MARK not in out and FALLBACK_MARK not in out, out


def wait_for(cond: Callable[[], object], timeout: float = 10.0, what: str = "condition") -> None:
    """Wait on a condition with a deadline (polling, never a synchronising sleep)."""
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, f"{what} not met within {timeout} s"
        time.sleep(0.01)


def pid_alive(pid: int) -> bool:
    """True for a running process; a zombie (killed, not yet reaped) counts as dead."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rpartition(")")[2].split()[0] != "Z"
    except (FileNotFoundError, ProcessLookupError):
        return False


def rss_kb(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError(f"no VmRSS for pid {pid}")


@dataclass
class FaultEnv:
    """One test's private world: environment, runtime paths and a base directory."""

    env: dict[str, str]
    paths: RuntimePaths
    base: Path

    def run(
        self,
        cwd: Path | str,
        *args: str,
        env: dict[str, str] | None = None,
        timeout: float = 60,
        input: str | None = None,
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*GRITE, *args],
            cwd=cwd,
            env=env or self.env,
            input=input,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    def local(self, cwd: Path | str, *args: str, timeout: float = 60) -> Any:
        """Run in-process (--no-daemon) with --json; assert success and return `data`."""
        proc = self.run(cwd, "--no-daemon", *args, "--json", timeout=timeout)
        assert proc.returncode == 0, f"grite {args}: {proc.returncode} {proc.stdout}{proc.stderr}"
        return json.loads(proc.stdout)["data"]

    def daemon_pids(self) -> list[int]:
        return daemon_pids(self.paths.socket)

    def daemon_pid(self) -> int | None:
        record = read_pid_record(self.paths.pid_file)
        if record is not None and pid_alive(record.pid):
            return record.pid
        return None

    def start_daemon(self, *extra: str) -> subprocess.Popen[bytes]:
        """Start `grite-daemon` in the foreground on this test's socket; wait until it serves."""
        log = open(self.base / "daemon.log", "ab")  # noqa: SIM115 - owned by the process
        proc = subprocess.Popen(
            [sys.executable, "-m", "grite.daemon", "--socket-path", self.paths.socket, *extra],
            env=self.env,
            cwd="/",
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
            start_new_session=True,
        )
        log.close()
        wait_for(
            lambda: self.daemon_pid() == proc.pid or proc.poll() is not None,
            what="daemon ready",
        )
        assert proc.poll() is None, (self.base / "daemon.log").read_text()
        return proc

    def daemon_log(self) -> str:
        parts = []
        for path in (self.base / "daemon.log", Path(self.paths.log_file)):
            if path.exists():
                parts.append(path.read_text(errors="replace"))
        return "".join(parts)


@pytest.fixture
def fault_env() -> Iterator[FaultEnv]:
    base = Path(tempfile.mkdtemp(prefix="gf", dir="/tmp"))
    base.chmod(0o700)
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("GRITE_", "XDG_", "LISTEN_", "NOTIFY_SOCKET"))
    }
    env.update(
        HOME=str(base / "home"),
        XDG_RUNTIME_DIR=str(base),
        XDG_CONFIG_HOME=str(base / "config"),
        XDG_STATE_HOME=str(base / "state"),
        GIT_CONFIG_NOSYSTEM="1",
        GIT_AUTHOR_NAME="t",
        GIT_AUTHOR_EMAIL="t@example.com",
        GIT_COMMITTER_NAME="t",
        GIT_COMMITTER_EMAIL="t@example.com",
        TZ="UTC",
    )
    (base / "home").mkdir()
    fenv = FaultEnv(env=env, paths=runtime_paths(env), base=base)
    try:
        yield fenv
    finally:
        kill_daemons(fenv.paths.runtime_dir)  # a build's own daemon too
        shutil.rmtree(base, ignore_errors=True)


def init_repo(fenv: FaultEnv, name: str = "repo", parent: Path | None = None) -> Path:
    """A git repository with grite initialised in-process (one actor, no AGENTS.md)."""
    repo = (parent or fenv.base) / name
    repo.mkdir(parents=True)
    subprocess.run(["git", "init", "-q", "-b", "main", str(repo)], check=True)
    proc = fenv.run(repo, "--no-daemon", "init", "--no-agents-md")
    assert proc.returncode == 0, proc.stderr
    return repo


def git(cwd: Path | str, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["git", *args], cwd=cwd, capture_output=True, text=True, check=check, timeout=60
    )


def assert_fsck_clean(repo: Path) -> None:
    proc = git(repo, "fsck", "--strict", "--no-dangling", check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "error" not in proc.stderr.lower(), proc.stderr


def wal_event_counts(repo: Path) -> Counter[str]:
    """How many times each event id occurs in the WAL (read and verified by grite's reader)."""
    wal = Wal(str(repo / ".git"))
    try:
        return Counter(e.event_id.hex() for entry in wal.read_entries() for e in entry.events)
    finally:
        wal.close()


def run_in_process(repo: Path, *argv: str, env: dict[str, str] | None = None) -> tuple[int, str]:
    """One CLI command through grite.cli.app.run_invocation in this process (same code as the
    `grite` command, without an interpreter start per call). Returns (exit code, stdout)."""
    from grite.cli import app

    inv = Invocation(
        argv=list(argv),
        cwd=str(repo),
        env=env or {"TZ": "UTC"},
        request_id=os.urandom(16),
        now_ms=time.time_ns() // 1_000_000,
    )
    outcome = app.run_invocation(inv)
    return outcome.exit_code, outcome.stdout


def observable_state(repo: Path) -> dict[str, str]:
    """`issue list --state all --json` and `issue show ID --json` of every issue, as text."""
    code, listing = run_in_process(repo, "issue", "list", "--state", "all", "--json")
    assert code == 0, listing
    state = {"list": listing}
    for item in json.loads(listing)["data"]["issues"]:
        code, shown = run_in_process(repo, "issue", "show", item["issue_id"], "--json")
        assert code == 0, shown
        state[item["issue_id"]] = shown
    return state


def rebuilt_state(repo: Path, scratch: Path) -> dict[str, str]:
    """The observable state of a copy of `repo` whose view was deleted (a full rebuild)."""
    copy = scratch / f"rebuild-{os.urandom(4).hex()}"
    shutil.copytree(repo, copy, symlinks=True)
    shutil.rmtree(copy / ".git" / "grite" / "view", ignore_errors=True)
    for leftover in ("pydaemon.json", "view.lock"):
        try:
            (copy / ".git" / "grite" / leftover).unlink()
        except FileNotFoundError:
            pass
    return observable_state(copy)
