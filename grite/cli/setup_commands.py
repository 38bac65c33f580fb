"""Command area: agent setup and shell integration — `grite setup`, `grite install-skill`,
`grite completion` and the help entry of `grite mcp`.

`setup`, `install-skill` and `completion` run in the client process (the `grite` entry never
forwards them): setup writes the user's own files, and completion needs nothing but the command
tree. Each returns a LocalCommand whose `run` the CLI calls with the invocation and the parser.
`grite mcp` is a long-running stdio server that the entry starts before any routing
(grite.cli.mcp_server); it appears here so that `grite --help` and `grite mcp --help` describe
it and say how to register it with each agent.
"""

from __future__ import annotations

import argparse
import textwrap
from collections.abc import Callable
from typing import Any

import argh

from grite.cli.commands import LocalCommand, leaves
from grite.model.errors import InvalidArgs

__all__ = ["RENDERERS", "register"]

_AGENTS = ("claude", "codex", "cursor", "gemini", "opencode", "agents-md")
_SHELLS = ("bash", "zsh", "fish")

MCP_EPILOG = textwrap.dedent(
    """\
    Register it with your agent (or let 'grite setup AGENT --mcp' do it):
      Claude Code   claude mcp add grite -- grite mcp        (project: .mcp.json)
      Codex         codex mcp add grite -- grite mcp         (~/.codex/config.toml)
      Cursor        .cursor/mcp.json: {"mcpServers": {"grite": {"command": "grite", "args": ["mcp"]}}}
      Gemini CLI    gemini mcp add grite grite mcp           (.gemini/settings.json)
      OpenCode      opencode.json: {"mcp": {"grite": {"type": "local", "command": ["grite", "mcp"]}}}
    The server runs in the repository it is started in (its working directory), keeps one
    daemon connection for its life and runs in-process when no daemon can be reached.
    Needs the optional MCP SDK: pip install 'grite[mcp]'."""
)


@argh.named("setup")
@argh.arg("agent", choices=_AGENTS, help="which agent: " + ", ".join(_AGENTS))
@argh.arg("--dry-run", help="print the changes as a unified diff; write nothing")
@argh.arg("--remove", help="take out exactly what setup added")
@argh.arg("--global", dest="global_scope", help="the agent's user-wide files, not this repo's")
@argh.arg("--mcp", help="also register 'grite mcp' as the agent's MCP server")
@argh.arg("--force", help="replace a file of grite's name that grite did not write")
def setup(
    agent: str,
    *,
    dry_run: bool = False,
    remove: bool = False,
    global_scope: bool = False,
    mcp: bool = False,
    force: bool = False,
) -> LocalCommand:
    """Write an agent's instructions, session-start hook and sandbox entry for grite."""
    from grite.cli.setup_run import run_setup

    kwargs = {
        "agent": agent,
        "dry_run": dry_run,
        "remove": remove,
        "global_scope": global_scope,
        "mcp": mcp,
        "force": force,
    }
    return LocalCommand("setup", kwargs, run=run_setup)


@argh.named("install-skill")
@argh.arg("--global", dest="global_scope", help="install for every project (~/.claude)")
@argh.arg("--force", help="replace a skill file grite did not write")
def install_skill(*, global_scope: bool = False, force: bool = False) -> LocalCommand:
    """grite 0.5.3's name for 'grite setup claude' (the Claude Code skill and hook)."""
    from grite.cli.setup_run import run_install_skill

    kwargs = {"global_scope": global_scope, "force": force}
    return LocalCommand("install-skill", kwargs, run=run_install_skill)


@argh.named("completion")
@argh.arg("shell", choices=_SHELLS, help="bash, zsh or fish")
def completion(shell: str) -> LocalCommand:
    """Print a shell completion script (commands, flags, issue ids, labels)."""
    from grite.cli.completion import run_completion

    return LocalCommand("completion", {"shell": shell}, run=run_completion)


@argh.named("mcp")
def mcp() -> None:
    """Serve grite to agents over the Model Context Protocol on stdio."""
    raise InvalidArgs(
        "'grite mcp' is a stdio server run by the grite command itself; start it as "
        "'grite mcp' (an agent does that once it is registered, see 'grite mcp --help')"
    )


RENDERERS: dict[type, Callable[[Any, Any], str]] = {}


def register(
    top: argparse._SubParsersAction,  # type: ignore[type-arg]
    issue: argparse._SubParsersAction,  # type: ignore[type-arg]
    parents: list[argparse.ArgumentParser],
) -> None:
    """Add `setup`, `install-skill`, `completion` and `mcp`."""
    leaves(top, [setup, install_skill, completion], parents)
    doc = (mcp.__doc__ or "").strip()
    parser = top.add_parser(
        "mcp",
        help=doc,
        description=doc,
        epilog=MCP_EPILOG,
        parents=parents,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    argh.set_default_command(parser, mcp)
