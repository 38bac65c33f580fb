"""A warm `grite` command imports almost nothing: Python start-up is the whole budget.

A real daemon serves a real command (strict mode, so it cannot have run in-process) in a
fresh interpreter started with `-X importtime`, exactly as the console script starts it; the
modules it loaded beyond a bare `python -c pass` must be grite's lean client modules and two
C modules, nothing else. Any heavy import on the warm path (msgspec, typing, argh, dulwich,
diskcache, cbor2, asyncio, socket, enum, re, json, subprocess, hashlib, ...) fails this test.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.conftest import make_repo
from tests.system.conftest import DaemonEnv

# What the warm path may load on top of a bare interpreter: the lean client, and the C
# modules for the socket and the build id's hash.
ALLOWED = {
    "_blake2",
    "_socket",
    "grite",
    "grite.cli",
    "grite.cli.entry",
    "grite.ipc",
    "grite.ipc.build",
    "grite.ipc.client",
    "grite.ipc.paths",
    "grite.ipc.transport",
    "grite.ipc.wire",
    "grite.model",
    "grite.model.errors",
    "grite.model.settings",
}
HEAVY = {"msgspec", "typing", "argh", "dulwich", "diskcache", "cbor2", "asyncio", "json"}
# The `grite` script as pip installs it (scripts/grite), then the command.
SCRIPT = str(Path(__file__).resolve().parents[2] / "scripts" / "grite")


def _imported(argv: list[str], env: dict[str, str], cwd: Path) -> tuple[set[str], str]:
    proc = subprocess.run(
        [sys.executable, "-X", "importtime", *argv],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    names = {
        line.split("|")[-1].strip()
        for line in proc.stderr.splitlines()
        if line.startswith("import time:") and "imported package" not in line
    }
    names.discard("imported package")
    return names, proc.stdout


def test_a_warm_command_imports_only_the_lean_client(daemon_env: DaemonEnv, tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo")
    env = dict(daemon_env.env, GRITE_DAEMON="require")
    assert daemon_env.run("init", "--no-agents-md", cwd=str(repo)).returncode == 0
    first = subprocess.run(
        [sys.executable, SCRIPT, "issue", "create", "--title", "warm"],
        env=env, cwd=repo, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert first.returncode == 0, first.stderr
    floor, _ = _imported(["-c", "pass"], env, repo)
    loaded, out = _imported([SCRIPT, "issue", "list"], env, repo)
    assert "warm" in out
    extra = loaded - floor
    assert extra <= ALLOWED, f"the warm path imported {sorted(extra - ALLOWED)}"
    assert not extra & HEAVY


def test_a_warm_command_is_answered_from_memory_and_never_stale(
    daemon_env: DaemonEnv, tmp_path: Path
) -> None:
    repo = make_repo(tmp_path / "repo")
    strict = dict(daemon_env.env, GRITE_DAEMON="require")
    local = dict(daemon_env.env, GRITE_NO_DAEMON="1")

    def grite(env: dict[str, str], *argv: str) -> str:
        proc = subprocess.run(
            [sys.executable, SCRIPT, *argv],
            env=env, cwd=repo, capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
        assert proc.returncode == 0, proc.stdout + proc.stderr
        return proc.stdout

    grite(local, "init", "--no-agents-md")
    grite(local, "issue", "create", "--title", "first")
    listed = [grite(strict, "issue", "list") for _ in range(3)]
    assert listed[0] == listed[1] == listed[2] and "first" in listed[0]
    status = json.loads(grite(strict, "daemon", "status", "--json"))["data"]
    assert status["kept_replies_served"] >= 2
    # Another process writes without the daemon: the next listing shows it at once.
    grite(local, "issue", "create", "--title", "second")
    assert "second" in grite(strict, "issue", "list")
    assert grite(strict, "issue", "list") == grite(local, "issue", "list")
