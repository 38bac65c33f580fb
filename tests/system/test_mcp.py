"""`grite mcp` driven by the MCP SDK's own client over stdio: initialize, list the tools, call
every tool, and check what they wrote with the real git CLI and the real grite CLI. Run through
a real daemon (and the test fails if the server fell back) and in-process."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp import ClientSession, StdioServerParameters
from mcp.client.stdio import stdio_client

from tests.conftest import Grite, git, wal_commit_count

TOOLS = {
    "prime",
    "ready",
    "claim",
    "show",
    "list",
    "create",
    "comment",
    "close",
    "label",
    "dep_add",
    "lock_acquire",
    "lock_release",
    "watch",
}


def _structured(result: Any) -> Any:
    assert not result.is_error, result.content
    if result.structured_content is not None:
        return result.structured_content
    return json.loads(result.content[0].text)


async def _session_run(repo: Path, env: dict[str, str], errlog: Any) -> dict[str, Any]:
    params = StdioServerParameters(
        command=sys.executable, args=["-m", "grite", "mcp"], cwd=str(repo), env=env
    )
    seen: dict[str, Any] = {}
    async with stdio_client(params, errlog=errlog) as (read, write):
        async with ClientSession(read, write) as session:
            init = await session.initialize()
            seen["server"] = init.server_info.name
            tools = await session.list_tools()
            seen["tools"] = {t.name: t.description for t in tools.tools}

            async def call(name: str, **args: Any) -> Any:
                return _structured(await session.call_tool(name, args))

            a = await call("create", title="first", body="b", labels=["x"])
            b = await call("create", title="second")
            seen["ids"] = (a["issue_id"], b["issue_id"])
            await call("dep_add", issue=b["issue_id"], target=a["issue_id"])
            seen["ready"] = await call("ready")
            seen["claim"] = await call("claim", ttl="10m")
            await call("comment", issue=a["issue_id"], body="from mcp")
            await call("label", issue=a["issue_id"], add=["mcp"], remove=["x"])
            seen["lock"] = await call("lock_acquire", resource="path:src/", ttl="5m")
            seen["release"] = await call("lock_release", resource="path:src/")
            seen["list"] = await call("list", search="first")
            seen["show"] = await call("show", issue=a["issue_id"][:8])
            await call("close", issue=a["issue_id"])
            prime = await session.call_tool("prime", {})
            assert not prime.is_error
            seen["prime"] = prime.content[0].text
            resource = await session.read_resource("grite://prime")
            seen["prime_resource"] = resource.contents[0].text
            bad = await session.call_tool("show", {"issue": "ffff"})
            seen["bad"] = (bad.is_error, bad.content[0].text)
    return seen


def _run(repo: Path, env: dict[str, str], tmp: Path) -> tuple[dict[str, Any], str]:
    log = tmp / "mcp-stderr.log"
    with log.open("w") as errlog:
        seen = anyio.run(_session_run, repo, env, errlog)
    return seen, log.read_text()


@pytest.mark.parametrize("mode", ["daemon", "local"])
def test_mcp_server_serves_every_tool_through_one_client(
    isolated_env: dict[str, str], git_repo: Path, tmp_path: Path, mode: str
) -> None:
    env = dict(isolated_env, GRITE_DEBUG="1")
    if mode == "local":
        env["GRITE_NO_DAEMON"] = "1"
    seen, stderr = _run(git_repo, env, tmp_path)
    how = "through the daemon" if mode == "daemon" else "in-process"
    assert f"grite mcp: serving {git_repo} {how}" in stderr, stderr
    assert "daemon not used" not in stderr
    assert seen["server"] == "grite"
    assert set(seen["tools"]) == TOOLS
    assert all(0 < len(d) <= 80 for d in seen["tools"].values()), seen["tools"]
    a, b = seen["ids"]
    assert [i["issue_id"] for i in seen["ready"]["issues"]] == [a]
    assert seen["claim"]["issue"]["issue_id"] == a
    # "acquired", not "refreshed": each call ran once (a daemon answer the client could not
    # decode used to make every call run a second time, in-process).
    assert seen["lock"]["action"] == "acquired" and seen["release"]["released"]
    assert [i["issue_id"] for i in seen["list"]["issues"]] == [a]
    assert seen["show"]["labels"] == ["mcp"] and seen["show"]["comments"][0]["body"] == "from mcp"
    assert "## Ready" in seen["prime"] and "## Ready" in seen["prime_resource"]
    assert seen["bad"][0] and "not_found" in seen["bad"][1]
    # What the tools wrote is in the WAL, as git and the grite CLI see it.
    assert wal_commit_count(git_repo) == 7  # 2 creates, dep, claim, comment, label, close
    assert git(git_repo, "fsck", "--strict").returncode == 0
    shown = Grite(isolated_env, "local").json(git_repo, "issue", "show", a)
    assert shown["state"] == "closed" and shown["labels"] == ["mcp"]
    assert shown["assignees"] == [seen["claim"]["assignee"]]


def test_mcp_watch_returns_the_next_change(
    isolated_env: dict[str, str], git_repo: Path, tmp_path: Path
) -> None:
    env = dict(isolated_env, GRITE_DEBUG="1")
    grite = Grite(isolated_env, "daemon")
    head = grite.json(git_repo, "issue", "create", "--title", "before")["wal_head"]

    async def scenario() -> dict[str, Any]:
        params = StdioServerParameters(
            command=sys.executable, args=["-m", "grite", "mcp"], cwd=str(git_repo), env=env
        )
        with (tmp_path / "err.log").open("w") as errlog:
            async with stdio_client(params, errlog=errlog) as (read, write):
                async with ClientSession(read, write) as session:
                    await session.initialize()
                    # Written after `head`: watch replays it, then answers.
                    await anyio.to_thread.run_sync(
                        lambda: grite.json(git_repo, "issue", "create", "--title", "after")
                    )
                    result = await session.call_tool(
                        "watch", {"since": head, "timeout_seconds": 20}
                    )
                    return _structured(result)  # type: ignore[no-any-return]

    data = anyio.run(scenario)
    kinds = [c["type"] for c in data["changes"]]
    assert "wal_advanced" in kinds, data
    assert (
        data["wal_head"]
        == subprocess.run(
            ["git", "rev-parse", "refs/grite/wal"], cwd=git_repo, capture_output=True, text=True
        ).stdout.strip()
    )


def test_mcp_help_says_how_to_register_it(grite_local: Grite, git_repo: Path) -> None:
    out = grite_local.run(git_repo, "mcp", "--help", check=True).stdout
    for agent in ("claude mcp add", "codex mcp add", ".cursor/mcp.json", "gemini", "opencode"):
        assert agent in out, agent
