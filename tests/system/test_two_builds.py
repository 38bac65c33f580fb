"""Two installed builds used alternately keep a daemon each instead of retiring each other.

Two copies of the grite package in two directories (two installations, as two virtualenvs or
pipx and a project venv are), one with a changed file (another build), each run as the real
`grite` command through PYTHONPATH. The first build's daemon keeps the main socket; the other
build starts its own on daemon-<build id>.sock once, and after that twenty alternating
commands start no daemon and every one is served by its own build's daemon (strict mode).
A newer build of the same installation retiring the old daemon is
tests/system/test_daemon_lifecycle.py::test_old_build_daemon_is_retired.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import grite
from tests.conftest import daemon_pids, make_repo
from tests.system.conftest import DaemonEnv


def _install(base: Path, name: str, marker: str | None) -> dict[str, str]:
    target = base / name
    shutil.copytree(
        Path(grite.__file__).parent, target / "grite", ignore=shutil.ignore_patterns("__pycache__")
    )
    if marker:
        with open(target / "grite" / "cli" / "render.py", "a") as f:
            f.write(f"# {marker}\n")
    return {"PYTHONPATH": str(target)}


def _run(env: dict[str, str], repo: Path, *argv: str) -> str:
    proc = subprocess.run(
        [sys.executable, "-m", "grite", *argv],
        cwd=repo, env=env, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout


def test_two_builds_alternating_start_one_daemon_each_and_never_restart(
    daemon_env: DaemonEnv, tmp_path: Path
) -> None:
    repo = make_repo(tmp_path / "repo")
    a = dict(daemon_env.env, **_install(tmp_path, "a", None))
    b = dict(daemon_env.env, **_install(tmp_path, "b", "another build"))
    code = "from grite.ipc.build import build_id; print(build_id())"
    builds = {
        subprocess.run([sys.executable, "-c", code], env=env, cwd=repo, capture_output=True,
                       text=True, check=True).stdout.strip()
        for env in (a, b)
    }  # fmt: skip
    assert len(builds) == 2, "the two copies must be two builds"
    _run(a, repo, "--no-daemon", "init", "--no-agents-md")
    _run(a, repo, "issue", "create", "--title", "shared")
    _run(b, repo, "issue", "list")  # B starts its own daemon, next to A's
    log = Path(daemon_env.paths.log_file)
    starts = len(re.findall(r"grite daemon \d+ (?:\(build \w+\) )?serving", log.read_text()))
    assert starts == 2
    pids = set(daemon_pids(daemon_env.paths.runtime_dir))  # both sockets' daemons
    listings = set()
    for i in range(20):
        listings.add(_run(a if i % 2 == 0 else b, repo, "issue", "list"))
    assert len(listings) == 1 and "shared" in listings.pop()
    assert (
        len(re.findall(r"grite daemon \d+ (?:\(build \w+\) )?serving", log.read_text())) == starts
    )
    assert set(daemon_pids(daemon_env.paths.runtime_dir)) == pids and len(pids) == 2
    assert "retire" not in log.read_text()
    # Each build's status names the daemon that serves it.
    status_a = json.loads(_run(a, repo, "daemon", "status", "--json"))["data"]
    status_b = json.loads(_run(b, repo, "daemon", "status", "--json"))["data"]
    assert status_a["this_build"] and status_b["this_build"]
    assert status_a["pid"] != status_b["pid"]
    assert status_b["socket"].endswith(f"daemon-{status_b['build_id']}.sock")
