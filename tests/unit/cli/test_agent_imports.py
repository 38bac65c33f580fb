"""The MCP SDK and shtab load only for `grite mcp` and `grite completion`, never on the normal
CLI path (in-process or through the daemon)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.conftest import make_repo

_PROBE = (
    "import sys, runpy\n"
    "sys.argv = ['grite'] + sys.argv[1:]\n"
    "try:\n"
    "    runpy.run_module('grite', run_name='__main__')\n"
    "except SystemExit:\n"
    "    pass\n"
    "loaded = {'mcp', 'shtab', 'pydantic', 'anyio', 'starlette'} & set(sys.modules)\n"
    "sys.stderr.write('LOADED=' + ','.join(sorted(loaded)) + '\\n')\n"
)


def _loaded(repo: Path, env: dict[str, str], *argv: str) -> list[str]:
    proc = subprocess.run(
        [sys.executable, "-c", _PROBE, *argv],
        cwd=repo,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    line = [x for x in proc.stderr.splitlines() if x.startswith("LOADED=")][-1]
    return [m for m in line[len("LOADED=") :].split(",") if m]


def test_normal_commands_never_load_the_mcp_sdk_or_shtab(
    tmp_path: Path, isolated_env: dict[str, str]
) -> None:
    repo = make_repo(tmp_path / "r")
    local = dict(isolated_env, GRITE_NO_DAEMON="1")
    assert _loaded(repo, local, "issue", "create", "--title", "x") == []
    assert _loaded(repo, local, "prime") == []
    assert _loaded(repo, local, "setup", "claude", "--dry-run") == []
    assert _loaded(repo, isolated_env, "issue", "list") == []  # through the daemon
    assert _loaded(repo, local, "completion", "bash") == ["shtab"]
