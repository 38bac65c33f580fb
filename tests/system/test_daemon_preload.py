"""A running daemon survives its files being replaced or deleted (an upgrade, a removal).

Two copies of the grite package with the same content and mtimes have the same build id
(grite.ipc.protocol.compute_build_id), so a daemon started from copy A serves a client run
from copy B. Once the daemon says it has preloaded its modules, copy A is deleted; commands
that need modules a fresh daemon has not used yet (the CLI, ops, locks, snapshots, export)
must still be served by it, not in-process.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from tests.system.conftest import DaemonEnv

PACKAGE = Path(__file__).resolve().parents[2] / "grite"


def copy_package(dest: Path) -> Path:
    shutil.copytree(PACKAGE, dest / "grite", ignore=shutil.ignore_patterns("__pycache__"))
    return dest


def test_daemon_keeps_serving_after_its_files_are_deleted(daemon_env: DaemonEnv) -> None:
    base = Path(daemon_env.base)
    old, new = copy_package(base / "old"), copy_package(base / "new")
    socket = daemon_env.paths.socket
    log = base / "daemon.log"
    env = {**daemon_env.env, "GRITE_DAEMON_SOCKET": socket, "GRITE_DEBUG": "1"}
    daemon = subprocess.Popen(
        [sys.executable, "-m", "grite.daemon", "--socket-path", socket, "--log-file", str(log),
         "--log-level", "debug", "--idle-timeout", "120"],
        env={**env, "PYTHONPATH": str(old)}, cwd=base, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while "preloaded" not in (log.read_text() if log.exists() else ""):
            assert daemon.poll() is None, log.read_text() if log.exists() else "no log"
            assert time.monotonic() < deadline, "the daemon never reported its preload"
            time.sleep(0.05)
        shutil.rmtree(old / "grite")
        repo = base / "repo"
        subprocess.run(["git", "init", "-q", str(repo)], check=True, timeout=30)
        for argv in (
            ["init", "--no-agents-md"],
            ["issue", "create", "--title", "after the files went", "--label", "x"],
            ["issue", "list", "--json"],
            ["lock", "acquire", "repo:global", "--ttl", "5m"],
            ["snapshot", "create"],
            ["export", "--format", "md"],
            ["doctor"],
        ):
            proc = subprocess.run(
                [sys.executable, "-m", "grite", *argv],
                env={**env, "PYTHONPATH": str(new)}, cwd=repo,
                capture_output=True, text=True, timeout=120,
            )  # fmt: skip
            assert proc.returncode == 0, f"grite {argv}: {proc.stdout}{proc.stderr}"
            assert "daemon not used" not in proc.stderr, f"grite {argv}: {proc.stderr}"
        assert daemon.poll() is None
        assert "Traceback" not in log.read_text()
    finally:
        daemon.terminate()
        daemon.wait(timeout=30)
    assert daemon.returncode == 0
    assert not os.path.exists(old / "grite")
