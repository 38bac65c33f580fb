"""Attack 7: the daemon must never widen what a client can do.

A process in a mount namespace where the user's home is read-only (an agent's sandbox) asked the
daemon, which runs outside the sandbox, to `grite export --format md -o ~/.bashrc`: the daemon
wrote the file the client could not, and the export's issue body ran in the user's next shell.
Now the daemon declines every request from a peer whose mount namespace differs from its own
(SO_PEERCRED pid -> /proc/<pid>/ns/mnt), the client runs the command itself, under its own
restrictions, and records why (`foreign_namespace`, shown by `grite daemon status`).
Same sandbox as tests/system/test_sandbox.py (util-linux `unshare`), but with the socket
reachable: only $HOME is made read-only.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from grite.ipc import fallbacks
from grite.ipc.paths import runtime_paths
from tests.conftest import GRITE, Grite, make_repo
from tests.system.test_sandbox import _unshare

READ_ONLY_HOME = 'mount --bind "$HOME" "$HOME" && mount -o remount,bind,ro "$HOME" && exec "$@"'


def in_sandbox(env: dict[str, str], repo: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [_unshare(), "--mount", "--propagation", "private", "sh", "-c", READ_ONLY_HOME, "sh",
         *GRITE, *args],
        cwd=repo, env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip


def test_a_sandboxed_client_cannot_write_through_the_daemon(
    isolated_env: dict[str, str], tmp_path: Path
) -> None:
    outside = Grite(isolated_env, "daemon")  # the daemon runs, outside the sandbox
    repo = make_repo(tmp_path / "victim")
    outside.json(repo, "issue", "create", "--title", "x", "--body", "$(id > /tmp/owned)")
    bashrc = Path(isolated_env["HOME"]) / ".bashrc"
    bashrc.write_text("# the user's shell start-up\n")
    probe = in_sandbox(isolated_env, repo, "--version")
    assert probe.returncode == 0, f"cannot make a mount namespace here: {probe.stderr}"

    # auto: the daemon is asked first. The fallback record lives in XDG_STATE_HOME, by default
    # under the read-only home, where the sandboxed client cannot write it: moved out here.
    env = dict(isolated_env, XDG_STATE_HOME=str(tmp_path / "state"))
    proc = in_sandbox(env, repo, "export", "--format", "md", "-o", str(bashrc), "--json")
    assert proc.returncode == 5, proc.stdout + proc.stderr
    error = json.loads(proc.stdout)["error"]
    assert error["code"] == "environment" and "read-only file system" in error["message"].lower()
    assert bashrc.read_text() == "# the user's shell start-up\n"
    # The same command in-process inside the sandbox fails the same way.
    local = in_sandbox(dict(env, GRITE_NO_DAEMON="1"), repo, "export", "--format", "md",
                       "-o", str(bashrc), "--json")  # fmt: skip
    assert local.returncode == 5 and json.loads(local.stdout)["error"] == error

    # Reads still work in the sandbox, in-process: not even a reply the daemon keeps in memory
    # for the same command run outside is handed to the sandboxed client.
    warm = subprocess.run([*GRITE, "issue", "list", "--json"], cwd=repo, env=env,
                          capture_output=True, text=True, timeout=60)  # fmt: skip
    assert warm.returncode == 0, warm.stderr
    listed = in_sandbox(env, repo, "issue", "list", "--json")
    assert listed.returncode == 0 and json.loads(listed.stdout)["data"]["issues"]
    # Each recorded with its cause, not silent.
    recorded = fallbacks.read(runtime_paths(env).fallback_log)
    causes = [f.cause for f in recorded]
    assert causes == ["foreign_namespace", "foreign_namespace"], [
        (f.cause, f.message) for f in recorded
    ]
    assert "mount namespace" in recorded[0].message
    # Strict mode says why instead of running in-process.
    strict = in_sandbox(dict(env, GRITE_DAEMON="require"), repo, "issue", "list")
    assert strict.returncode == 5 and "foreign_namespace" in strict.stderr, strict.stderr
    # Outside the sandbox the daemon still serves.
    assert outside.json(repo, "issue", "list")["issues"]
