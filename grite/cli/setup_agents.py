"""What `grite setup <agent>` writes for each coding agent, and where (checked December 2026).

Every edit is one of four kinds, each undone exactly by `--remove`:
- a marked section in a Markdown file (grite.model.agent_docs): the user's text around it stays;
- a whole file grite owns (a skill, a rule), recognised by its `managed by 'grite setup'` line;
  a file of that name without the line is the user's and is replaced only with `--force`;
- an element or member in a JSON settings file (grite.cli.jsonedit, formatting kept);
- a marked block in a TOML file, appended and validated with tomllib.

Sources for each agent's files:
- Claude Code: skills `.claude/skills/<name>/SKILL.md` (https://code.claude.com/docs/en/skills);
  hooks in `.claude/settings.json` / `~/.claude/settings.json`, SessionStart hooks add their
  output to the context (https://code.claude.com/docs/en/hooks); the sandbox's
  `sandbox.network.allowUnixSockets` (https://code.claude.com/docs/en/settings,
  https://code.claude.com/docs/en/sandboxing; macOS only, the Linux sandbox cannot filter
  sockets by path), written to the personal `.claude/settings.local.json` because the socket
  path is per user; project MCP servers in `.mcp.json` (https://code.claude.com/docs/en/mcp).
- Codex: `AGENTS.md` and `~/.codex/AGENTS.md` (https://developers.openai.com/codex/guides/agents-md);
  hooks in `.codex/hooks.json`, Claude-compatible, on by default
  (https://developers.openai.com/codex/hooks); MCP servers as `[mcp_servers.<name>]` in
  `~/.codex/config.toml` or a trusted project's `.codex/config.toml`
  (https://developers.openai.com/codex/mcp). Its Linux sandbox blocks Unix-socket connects and
  has no per-path allow-list that works from config yet
  (https://github.com/openai/codex/issues/25416); grite then runs in-process.
- Cursor: project rules `.cursor/rules/*.mdc` with `alwaysApply`
  (https://cursor.com/docs/context/rules); MCP in `.cursor/mcp.json` or `~/.cursor/mcp.json`
  (https://cursor.com/docs/context/mcp). User rules live in Cursor's settings, not in a file.
- Gemini CLI: `GEMINI.md` and `~/.gemini/GEMINI.md` (https://geminicli.com/docs/cli/gemini-md/);
  `.gemini/settings.json` for `mcpServers` and `hooks` (SessionStart; timeouts in ms)
  (https://geminicli.com/docs/get-started/configuration/, https://geminicli.com/docs/hooks/).
- OpenCode: `AGENTS.md` and `~/.config/opencode/AGENTS.md` (https://opencode.ai/docs/rules/);
  MCP under `mcp` in `opencode.json(c)` (https://opencode.ai/docs/mcp-servers/). Its hooks are
  JavaScript plugins, so the AGENTS.md section asks the agent to run `grite prime`.

Pure planning: functions here take the current file contents and return the new ones; the
caller reads and writes the files.
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from grite.cli import jsonedit
from grite.model import agent_docs
from grite.model.errors import Conflict, InvalidArgs

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on 3.10 only
    import tomli as tomllib

__all__ = ["AGENTS", "Edit", "SetupTarget", "plan"]

AGENTS = ("claude", "codex", "cursor", "gemini", "opencode", "agents-md")

OWNED_MARK = "managed by 'grite setup'"
HOOK_COMMAND = "grite prime --hook"
MCP_COMMAND = ["grite", "mcp"]


@dataclass
class Edit:
    """One file's change: `apply(old text or None) -> new text or None (delete)`."""

    path: str
    what: str
    apply: Callable[[str | None], str | None]


@dataclass
class SetupTarget:
    """Where setup writes: a repository root (project scope) or the home directory."""

    root: str  # the repository root, or the home directory with --global
    home: str
    config_home: str  # $XDG_CONFIG_HOME or ~/.config
    socket: str  # the daemon socket this user's grite uses
    global_scope: bool
    remove: bool
    force: bool
    mcp: bool
    edits: list[Edit] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


SKILL = f"""---
name: grite
description: Track and take work with grite, the issue tracker in this git repository. Use it to find the next task (ready queue), claim it, record progress and close it.
---
<!-- {OWNED_MARK}; 'grite setup claude --remove' deletes this file -->

# grite

Issues live in git (`refs/grite/wal`). `grite prime` prints the current state: ready queue,
claims, locks and what changed since your last look. Add `--json` when you parse output.

- Take the next task: `grite issue ready --claim --json` (atomic: a lease plus the assignment).
- Read: `grite issue show <id> --json`; search: `grite issue list --search TEXT --json`.
- Plan and progress: `grite issue comment <id> --body "..."`; done: `grite issue close <id>`.
- New work you find: `grite issue create --title "..." --body "..." --label <l>`;
  ordering: `grite issue dep add <id> --target <other> --type depends_on`.
- Shared files: `grite lock acquire path:<dir>/ --ttl 15m`, then `grite lock release path:<dir>/`.
- Share with other clones: `grite sync`.
- Ids take any unique prefix of 4+ hex characters. Never edit `.git/grite/` by hand.
"""

CURSOR_RULE = f"""---
description: grite, the issue tracker in this repository
alwaysApply: true
---
<!-- {OWNED_MARK}; 'grite setup cursor --remove' deletes this file -->

{agent_docs.PRIME_HINT}

{agent_docs.AGENTS_MD_SECTION}"""


def _removed(old: str | None, undo: Callable[[str], str]) -> str | None:
    """What removal leaves: None (delete the file) when only grite's part was in it."""
    if old is None:
        return None
    new = undo(old)
    return None if new != old and not new.strip() else new


def _section(body: str, remove: bool) -> Callable[[str | None], str | None]:
    def apply(old: str | None) -> str | None:
        if remove:
            return _removed(old, agent_docs.remove_section)
        text = old or ""
        if agent_docs.find_section(text) is None and agent_docs.has_legacy_section(text):
            return old  # an unmarked "## Grite" section: the user's own, left alone
        return agent_docs.upsert_section(text, body)

    return apply


def _owned(content: str, t: SetupTarget, path: str) -> Callable[[str | None], str | None]:
    def apply(old: str | None) -> str | None:
        mine = old is not None and OWNED_MARK in old
        if t.remove:
            return None if mine else old
        if old is not None and not mine and old != content and not t.force:
            raise Conflict(
                f"{path} exists and was not written by grite; nothing was changed. Move it "
                "away, or run again with --force to replace it",
                {"path": path},
            )
        return content

    return apply


def _json(
    t: SetupTarget, add: Callable[[str], str], undo: Callable[[str], str]
) -> Callable[[str | None], str | None]:
    def apply(old: str | None) -> str | None:
        if t.remove:
            if old is None:
                return None
            new = undo(old)
            return None if jsonedit.is_empty_document(new) and new != old else new
        return add(old or "")

    return apply


def _json_element(t: SetupTarget, path: list[str], element: Any) -> Callable[..., str | None]:
    return _json(
        t,
        lambda s: jsonedit.add_element(s, path, element),
        lambda s: jsonedit.remove_element(s, path, element),
    )


def _json_member(
    t: SetupTarget, path: list[str], key: str, value: Any
) -> Callable[..., str | None]:
    return _json(
        t,
        lambda s: jsonedit.add_member(s, path, key, value),
        lambda s: jsonedit.remove_member(s, path, key, value),
    )


def _toml_block(t: SetupTarget, body: str, table: list[str]) -> Callable[..., str | None]:
    begin, end = agent_docs.TOML_BEGIN, agent_docs.TOML_END

    def apply(old: str | None) -> str | None:
        if t.remove:
            return _removed(old, lambda s: agent_docs.remove_section(s, begin, end))
        text = old or ""
        if agent_docs.find_section(text, begin, end) is None:
            node: Any = tomllib.loads(text)
            for name in table:
                node = node.get(name, {}) if isinstance(node, dict) else {}
            if node:
                return old  # the user configured this server already
        new = agent_docs.upsert_section(text, body, begin, end)
        try:
            tomllib.loads(new)
        except tomllib.TOMLDecodeError as exc:
            raise InvalidArgs(
                f"adding [{'.'.join(table)}] would make the TOML file invalid ({exc}); "
                "nothing was changed. Add it by hand or fix the file first"
            ) from exc
        return new

    return apply


def _add(t: SetupTarget, rel: str, what: str, apply: Callable[[str | None], str | None]) -> None:
    t.edits.append(Edit(os.path.join(t.root, rel), what, apply))


_SOCKETS = ["sandbox", "network", "allowUnixSockets"]
# Any grite daemon socket (grite.ipc.paths): removal finds what an earlier setup added even when
# XDG_RUNTIME_DIR or TMPDIR differ now.
_GRITE_SOCKET = re.compile(r"/grite(-\d+)?/daemon\.sock$")


def _is_grite_socket(value: Any) -> bool:
    return isinstance(value, str) and _GRITE_SOCKET.search(value) is not None


def _claude(t: SetupTarget) -> None:
    skill = os.path.join(".claude", "skills", "grite", "SKILL.md")
    _add(t, skill, "Claude Code skill", _owned(SKILL, t, skill))
    hook = {"matcher": "startup|resume|clear|compact", "hooks": [_hook_command()]}
    _add(
        t,
        os.path.join(".claude", "settings.json"),
        f"SessionStart hook: {HOOK_COMMAND}",
        _json_element(t, ["hooks", "SessionStart"], hook),
    )
    local = "settings.json" if t.global_scope else "settings.local.json"
    _add(
        t,
        os.path.join(".claude", local),
        f"sandbox: allow the grite socket {t.socket}",
        _json(
            t,
            lambda s: jsonedit.add_element(s, _SOCKETS, t.socket),
            lambda s: jsonedit.remove_element(s, _SOCKETS, _is_grite_socket),
        ),
    )
    if sys.platform.startswith("linux") and not t.remove:
        t.notes.append(
            "Claude Code's Linux sandbox cannot allow one socket by path (allowUnixSockets is "
            "for macOS); inside it grite runs in-process, with the same results"
        )
    if t.mcp and not t.global_scope:
        _add(
            t,
            ".mcp.json",
            "MCP server: grite mcp",
            _json_member(t, ["mcpServers"], "grite", _mcp_stdio()),
        )
    elif t.mcp:
        t.notes.append("for every project: claude mcp add --scope user grite -- grite mcp")


def _hook_command() -> dict[str, Any]:
    return {"type": "command", "command": HOOK_COMMAND}


def _mcp_stdio() -> dict[str, Any]:
    return {"command": MCP_COMMAND[0], "args": MCP_COMMAND[1:]}


def _agents_md(t: SetupTarget, rel: str) -> None:
    _add(t, rel, "AGENTS.md section", _section(agent_docs.AGENTS_MD_SECTION, t.remove))


def _codex(t: SetupTarget) -> None:
    base = ".codex"
    _agents_md(t, os.path.join(base, "AGENTS.md") if t.global_scope else "AGENTS.md")
    hook = {"matcher": "startup|resume|clear", "hooks": [_hook_command()]}
    _add(
        t,
        os.path.join(base, "hooks.json"),
        f"SessionStart hook: {HOOK_COMMAND}",
        _json_element(t, ["hooks", "SessionStart"], hook),
    )
    if t.mcp:
        body = '[mcp_servers.grite]\ncommand = "grite"\nargs = ["mcp"]'
        _add(
            t,
            os.path.join(base, "config.toml"),
            "MCP server: grite mcp",
            _toml_block(t, body, ["mcp_servers", "grite"]),
        )
    if not t.remove:
        t.notes.append(
            "Codex's sandbox blocks the grite socket; inside it grite runs in-process, with "
            "the same results"
        )


def _cursor(t: SetupTarget) -> None:
    if t.global_scope and not t.mcp:
        raise InvalidArgs(
            "Cursor keeps user rules in its settings, not in a file; run 'grite setup cursor' "
            "in the repository, or add --mcp to register the MCP server for every project"
        )
    if not t.global_scope:
        rule = os.path.join(".cursor", "rules", "grite.mdc")
        _add(t, rule, "Cursor rule (always applied)", _owned(CURSOR_RULE, t, rule))
    if t.mcp:
        _add(
            t,
            os.path.join(".cursor", "mcp.json"),
            "MCP server: grite mcp",
            _json_member(t, ["mcpServers"], "grite", _mcp_stdio()),
        )


def _gemini(t: SetupTarget) -> None:
    md = os.path.join(".gemini", "GEMINI.md") if t.global_scope else "GEMINI.md"
    _add(t, md, "GEMINI.md section", _section(agent_docs.AGENTS_MD_SECTION, t.remove))
    hook = {"hooks": [{"name": "grite-prime", **_hook_command(), "timeout": 10000}]}
    settings = os.path.join(".gemini", "settings.json")
    _add(
        t,
        settings,
        f"SessionStart hook: {HOOK_COMMAND}",
        _json_element(t, ["hooks", "SessionStart"], hook),
    )
    if t.mcp:
        _add(
            t,
            settings,
            "MCP server: grite mcp",
            _json_member(t, ["mcpServers"], "grite", _mcp_stdio()),
        )


def _opencode(t: SetupTarget) -> None:
    if t.global_scope:
        base = os.path.join(t.config_home, "opencode")
        t.edits.append(
            Edit(
                os.path.join(base, "AGENTS.md"),
                "AGENTS.md section",
                _section(agent_docs.AGENTS_MD_SECTION, t.remove),
            )
        )
    else:
        base = t.root
        _agents_md(t, "AGENTS.md")
    if t.mcp:
        name = "opencode.jsonc" if os.path.exists(os.path.join(base, "opencode.jsonc")) else None
        path = os.path.join(base, name or "opencode.json")
        entry = {"type": "local", "command": MCP_COMMAND, "enabled": True}
        t.edits.append(
            Edit(path, "MCP server: grite mcp", _json_member(t, ["mcp"], "grite", entry))
        )


def _generic(t: SetupTarget) -> None:
    if t.global_scope:
        raise InvalidArgs("AGENTS.md belongs to a repository; run without --global")
    _agents_md(t, "AGENTS.md")


_PLANNERS: dict[str, Callable[[SetupTarget], None]] = {
    "claude": _claude,
    "codex": _codex,
    "cursor": _cursor,
    "gemini": _gemini,
    "opencode": _opencode,
    "agents-md": _generic,
}


def plan(agent: str, target: SetupTarget) -> SetupTarget:
    """Fill `target.edits` and `target.notes` for `agent`.

    Raises:
        InvalidArgs: an unknown agent, or a scope the agent has no file for.
    """
    planner = _PLANNERS.get(agent)
    if planner is None:
        raise InvalidArgs(f"unknown agent {agent!r}; choose one of: {', '.join(AGENTS)}")
    planner(target)
    return target
