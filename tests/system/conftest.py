"""Fixtures for system tests: a private environment per test in which real `grite` and
`grite-daemon` processes run. XDG_RUNTIME_DIR, HOME, XDG_STATE_HOME and XDG_CONFIG_HOME all
point into a short directory under /tmp, and GRITE_DAEMON=require makes every command that
falls back to in-process fail (socket paths are limited to ~107 bytes), so nothing
touches the real user's daemon. At teardown the test's own daemons are stopped: only processes
whose command line names this test's socket path.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from grite.ipc.paths import RuntimePaths, runtime_paths
from tests.conftest import daemon_pids, kill_daemons


@dataclass
class DaemonEnv:
    env: dict[str, str]
    paths: RuntimePaths
    base: str

    def daemon_pids(self) -> list[int]:
        """Live grite-daemon processes serving this test's socket (via pgrep -f)."""
        return daemon_pids(self.paths.socket)

    def run(
        self, *argv: str, cwd: str | None = None, timeout: float = 30
    ) -> subprocess.CompletedProcess[str]:
        """Run the real CLI entry (`python -m grite.cli.entry`, as the console script does)."""
        return subprocess.run(
            [sys.executable, "-m", "grite.cli.entry", *argv],
            env=self.env,
            cwd=cwd or self.env["HOME"],  # not base: base/grite would shadow the package
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )


@pytest.fixture
def daemon_env() -> Iterator[DaemonEnv]:
    base = tempfile.mkdtemp(prefix="g", dir="/tmp")
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("GRITE_", "XDG_", "LISTEN_", "NOTIFY_SOCKET"))
    }
    env.update(
        XDG_RUNTIME_DIR=base,
        HOME=os.path.join(base, "home"),
        XDG_STATE_HOME=os.path.join(base, "state"),
        XDG_CONFIG_HOME=os.path.join(base, "config"),
        # The machine's /etc/xdg/grite/config.toml must not reach the tests' daemons.
        XDG_CONFIG_DIRS=os.path.join(base, "etc-xdg"),
        GIT_AUTHOR_NAME="t",
        GIT_AUTHOR_EMAIL="t@example.com",
        GIT_COMMITTER_NAME="t",
        GIT_COMMITTER_EMAIL="t@example.com",
        # Daemon-path tests run strict: a command the daemon did not serve fails, naming the
        # cause. Tests of the fallback itself set GRITE_DAEMON=auto.
        GRITE_DAEMON="require",
    )
    os.makedirs(env["HOME"])
    denv = DaemonEnv(env=env, paths=runtime_paths(env), base=base)
    try:
        yield denv
    finally:
        kill_daemons(denv.paths.runtime_dir)  # a build's own daemon too
        shutil.rmtree(base, ignore_errors=True)
