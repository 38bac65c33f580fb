"""`grite setup <agent>` and `grite install-skill` on real files: idempotent, dry-run diffs,
user content kept, and setup-then-remove gives back the original bytes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import Grite

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

AGENTS = ["claude", "codex", "cursor", "gemini", "opencode", "agents-md"]

# Files a user already had: hand-formatted JSON with comments, their own rules, their TOML.
USER_FILES = {
    "AGENTS.md": "# Rules\n\nRun `make test` before committing.\n",
    ".claude/settings.json": '{\n    "model": "opus",\n    "hooks": {\n        "Stop": []\n    }\n}\n',
    ".gemini/settings.json": '{\n  // my theme\n  "theme": "Dracula"\n}',
    ".codex/config.toml": 'model = "o4"\n\n[mcp_servers.other]\ncommand = "x"\n',
    "opencode.json": '{"$schema": "https://opencode.ai/config.json", "theme": "tokyonight"}\n',
    "GEMINI.md": "Be brief.",
}


def _snapshot(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file() and ".git" not in p.relative_to(root).parts
    }


def _write_user_files(root: Path) -> None:
    for rel, text in USER_FILES.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


def _check_formats(root: Path) -> None:
    for path in root.rglob("*.json"):
        if ".git" in path.parts:
            continue
        text = path.read_text()
        if "//" not in text:
            json.loads(text)
    for path in root.rglob("*.toml"):
        tomllib.loads(path.read_text())


@pytest.mark.parametrize("agent", AGENTS)
def test_setup_is_idempotent_and_remove_restores_the_original_bytes(
    grite_local: Grite, git_repo: Path, agent: str
) -> None:
    _write_user_files(git_repo)
    before = _snapshot(git_repo)
    first = grite_local.json(git_repo, "setup", agent, "--mcp")
    assert any(f["action"] != "unchanged" for f in first["files"])
    _check_formats(git_repo)
    after = _snapshot(git_repo)
    for rel, text in USER_FILES.items():  # the user's own content is all still there
        if rel.endswith(".md"):
            assert after[rel].decode().startswith(text), rel
    again = grite_local.json(git_repo, "setup", agent, "--mcp")
    assert {f["action"] for f in again["files"]} == {"unchanged"}
    assert _snapshot(git_repo) == after
    dry = grite_local.run(git_repo, "setup", agent, "--mcp", "--remove", "--dry-run", check=True)
    assert "--- a/" in dry.stdout and "dry run: nothing was written" in dry.stdout
    assert _snapshot(git_repo) == after
    grite_local.json(git_repo, "setup", agent, "--mcp", "--remove")
    assert _snapshot(git_repo) == before
    assert not (git_repo / ".claude" / "skills").exists()


def test_setup_claude_writes_a_working_session_start_hook(
    grite_local: Grite, git_repo: Path
) -> None:
    grite_local.json(git_repo, "issue", "create", "--title", "hook me")
    data = grite_local.json(git_repo, "setup", "claude")
    assert [f["path"] for f in data["files"]] == [
        ".claude/skills/grite/SKILL.md",
        ".claude/settings.json",
        ".claude/settings.local.json",
    ]
    settings = json.loads((git_repo / ".claude" / "settings.json").read_text())
    command = settings["hooks"]["SessionStart"][0]["hooks"][0]["command"]
    local = json.loads((git_repo / ".claude" / "settings.local.json").read_text())
    socket = local["sandbox"]["network"]["allowUnixSockets"][0]
    assert socket.startswith(grite_local.env["XDG_RUNTIME_DIR"]) and socket.endswith(".sock")
    # Run the hook the way the agent does: through a shell, in the project, with this build's
    # `grite` first on PATH.
    env = dict(grite_local.env, PATH=f"{Path(sys.executable).parent}:{os.environ['PATH']}")
    out = subprocess.run(
        ["sh", "-c", command],
        cwd=git_repo,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    context = json.loads(out.stdout)["hookSpecificOutput"]["additionalContext"]
    assert "hook me" in context
    skill = (git_repo / ".claude" / "skills" / "grite" / "SKILL.md").read_text()
    assert skill.startswith("---\nname: grite\ndescription: ")


def test_setup_dry_run_writes_nothing(grite_local: Grite, git_repo: Path) -> None:
    before = _snapshot(git_repo)
    out = grite_local.run(git_repo, "setup", "gemini", "--mcp", "--dry-run", check=True)
    assert "+++ b/.gemini/settings.json" in out.stdout and "+++ b/GEMINI.md" in out.stdout
    assert _snapshot(git_repo) == before


def test_setup_never_replaces_a_users_file_without_force(
    grite_local: Grite, git_repo: Path
) -> None:
    skill = git_repo / ".claude" / "skills" / "grite" / "SKILL.md"
    skill.parent.mkdir(parents=True)
    skill.write_text("my own skill\n")
    code, err = grite_local.error(git_repo, "setup", "claude")
    assert code == 4 and err["code"] == "conflict" and "--force" in err["message"]
    assert skill.read_text() == "my own skill\n"
    assert not (git_repo / ".claude" / "settings.json").exists()  # nothing half done
    grite_local.json(git_repo, "setup", "claude", "--force")
    assert "managed by 'grite setup'" in skill.read_text()


def test_setup_leaves_an_unmarked_grite_section_and_a_users_mcp_server(
    grite_local: Grite, git_repo: Path
) -> None:
    legacy = "# Agents\n\n## Grite\n\nmy own grite rules\n"
    (git_repo / "AGENTS.md").write_text(legacy)
    (git_repo / ".codex").mkdir()
    mine = '[mcp_servers.grite]\ncommand = "/opt/grite/bin/grite"\nargs = ["mcp"]\n'
    (git_repo / ".codex" / "config.toml").write_text(mine)
    grite_local.json(git_repo, "setup", "codex", "--mcp")
    assert (git_repo / "AGENTS.md").read_text() == legacy
    assert (git_repo / ".codex" / "config.toml").read_text() == mine


def test_install_skill_keeps_0_5_3_flags(grite_local: Grite, git_repo: Path) -> None:
    data = grite_local.json(git_repo, "install-skill")
    path = Path(data["path"])
    assert path == git_repo / ".claude" / "skills" / "grite" / "SKILL.md" and path.is_file()
    assert data["action"] == "created"
    assert grite_local.json(git_repo, "install-skill", "--force")["action"] == "updated"
    home = Path(grite_local.env["HOME"])
    glob = grite_local.json(git_repo, "install-skill", "--global")
    assert Path(glob["path"]) == home / ".claude" / "skills" / "grite" / "SKILL.md"
    assert "allowUnixSockets" in (home / ".claude" / "settings.json").read_text()


def test_setup_refuses_bad_agents_and_scopes(grite_local: Grite, git_repo: Path) -> None:
    code, _ = grite_local.error(git_repo, "setup", "vim")
    assert code == 2
    code, err = grite_local.error(git_repo, "setup", "agents-md", "--global")
    assert code == 2 and "--global" in err["message"]
    code, err = grite_local.error(git_repo, "setup", "cursor", "--global")
    assert code == 2 and "Cursor" in err["message"]
