"""`grite mcp`: a Model Context Protocol server on stdio, for agents that only speak MCP.

Built on the official MCP Python SDK (`mcp`, an optional extra: `pip install 'grite[mcp]'`),
whose `MCPServer` turns each typed function below into a tool with a JSON schema
(https://github.com/modelcontextprotocol/python-sdk). Every tool is one grite operation run
through ONE `grite.Client` for the server's life: one daemon connection, and the in-process
fallback when no daemon can be reached (a sandbox that forbids the socket), with the same
results either way. Calls are serialized on that client (it is not thread-safe) and run in a
worker thread so the event loop keeps serving the protocol.

Tools: prime, ready, claim, show, list, create, comment, close, label, dep_add, lock_acquire,
lock_release, and watch, which waits (long-polls) for the next changes after a WAL head, since
MCP clients differ in how they take server notifications. The prime document is also the
resource `grite://prime`. Descriptions are kept to one line: every connected agent pays for
them in its context.

Run by the `grite` entry before any routing (it owns stdin/stdout for the protocol); imports
the SDK only here, so the normal CLI path never loads it. stdout carries only protocol
frames; `GRITE_DEBUG=1` says on stderr whether the daemon serves it.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

import msgspec

from grite.client import Client
from grite.model import settings
from grite.model.errors import Environment, GriteError
from grite.model.requests import (
    IssueCloseArgs,
    IssueCommentArgs,
    IssueCreateArgs,
    IssueDepArgs,
    IssueLabelArgs,
    IssueListArgs,
    IssueShowArgs,
)
from grite.model.requests_agents import IssueClaimArgs, IssueReadyArgs
from grite.model.requests_locks import LockAcquireArgs, LockReleaseArgs
from grite.model.requests_prime import DEFAULT_MAX_TOKENS, PrimeArgs

__all__ = ["build_server", "main"]

T = TypeVar("T")
_WATCH_MAX_SECONDS = 300.0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="grite mcp", add_help=False)
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--quiet", "-q", action="store_true")
    parser.add_argument("--actor")
    parser.add_argument("--data-dir")
    parser.add_argument("--no-daemon", action="store_true")
    parser.add_argument("command", choices=["mcp"])
    return parser


def _data(value: Any) -> Any:
    return msgspec.to_builtins(value)


def build_server(client: Client) -> Any:
    """The MCPServer with grite's tools, each calling `client`.

    Raises:
        ImportError: the MCP SDK is not installed.
    """
    import anyio
    from mcp.server.mcpserver import MCPServer
    from mcp.server.mcpserver.exceptions import ToolError

    import grite

    lock = anyio.Lock()

    async def run(fn: Callable[[], T]) -> T:
        async with lock:
            try:
                return await anyio.to_thread.run_sync(fn)
            except GriteError as err:
                raise ToolError(f"{err.code}: {err.message}") from err

    def call(args: Any) -> Callable[[], Any]:
        return lambda: _data(client.call(args))

    server: Any = MCPServer(
        name="grite",
        version=grite.__version__,
        instructions="grite: the issue tracker in this git repository. Start with `prime`.",
    )

    @server.tool(description="Session-start summary: ready queue, claims, locks, changes.")
    async def prime(max_tokens: int = DEFAULT_MAX_TOKENS) -> str:
        args = PrimeArgs(max_tokens=max_tokens)
        return await run(lambda: client.call(args).markdown)  # type: ignore[no-any-return]

    @server.tool(description="Open issues nothing open blocks, oldest first.")
    async def ready(labels: list[str] | None = None) -> dict[str, Any]:
        return await run(call(IssueReadyArgs(labels=labels or [])))  # type: ignore[no-any-return]

    @server.tool(description="Atomically take the next unclaimed ready issue (lease + assign).")
    async def claim(labels: list[str] | None = None, ttl: str | None = None) -> dict[str, Any]:
        return await run(call(IssueClaimArgs(labels=labels or [], ttl=ttl)))  # type: ignore[no-any-return]

    @server.tool(description="One issue with comments, links and dependencies.")
    async def show(issue: str) -> dict[str, Any]:
        return await run(call(IssueShowArgs(issue=issue)))  # type: ignore[no-any-return]

    @server.tool(name="list", description="List/search issues (state open|closed|all).")
    async def list_issues(
        state: str = "open",
        labels: list[str] | None = None,
        search: str | None = None,
        limit: int = 50,
    ) -> dict[str, Any]:
        args = IssueListArgs(
            state=state,  # type: ignore[arg-type]
            labels=labels or [],
            search=search,
            limit=limit,
        )
        return await run(call(args))  # type: ignore[no-any-return]

    @server.tool(description="Create an issue.")
    async def create(title: str, body: str = "", labels: list[str] | None = None) -> dict[str, Any]:
        args = IssueCreateArgs(title=title, body=body, labels=labels or [])
        return await run(call(args))  # type: ignore[no-any-return]

    @server.tool(description="Comment on an issue.")
    async def comment(issue: str, body: str) -> dict[str, Any]:
        return await run(call(IssueCommentArgs(issue=issue, body=body)))  # type: ignore[no-any-return]

    @server.tool(description="Close an issue.")
    async def close(issue: str) -> dict[str, Any]:
        return await run(call(IssueCloseArgs(issue=issue)))  # type: ignore[no-any-return]

    @server.tool(description="Add and/or remove labels of an issue.")
    async def label(
        issue: str, add: list[str] | None = None, remove: list[str] | None = None
    ) -> dict[str, Any]:
        args = IssueLabelArgs(issue=issue, add=add or [], remove=remove or [])
        return await run(call(args))  # type: ignore[no-any-return]

    @server.tool(
        description="Add a dependency: issue <type> target (depends_on|blocks|related_to)."
    )
    async def dep_add(issue: str, target: str, type: str = "depends_on") -> dict[str, Any]:
        args = IssueDepArgs(issue=issue, target=target, dep_type=type)
        return await run(call(args))  # type: ignore[no-any-return]

    @server.tool(description="Take a lease lock: repo:NAME, path:PATH or issue:ID.")
    async def lock_acquire(resource: str, ttl: str | None = None) -> dict[str, Any]:
        return await run(call(LockAcquireArgs(resource=resource, ttl=ttl)))  # type: ignore[no-any-return]

    @server.tool(description="Release a lease lock you hold.")
    async def lock_release(resource: str) -> dict[str, Any]:
        return await run(call(LockReleaseArgs(resource=resource)))  # type: ignore[no-any-return]

    @server.tool(description="Wait for changes after a WAL head (from a previous watch or prime).")
    async def watch(since: str | None = None, timeout_seconds: float = 30.0) -> dict[str, Any]:
        wait = max(0.1, min(timeout_seconds, _WATCH_MAX_SECONDS))
        return await run(lambda: _watch(client, since, wait))

    @server.resource("grite://prime", description="The session-start summary (grite prime).")
    async def prime_resource() -> str:
        args = PrimeArgs(record=False)
        return await run(lambda: client.call(args).markdown)  # type: ignore[no-any-return]

    return server


def _watch(client: Client, since: str | None, wait: float) -> dict[str, Any]:
    """The notifications after `since` until the stream goes quiet or `wait` runs out."""
    from grite.ipc.wire import FrameTimeout
    from grite.model import notifications

    changes: list[Any] = []
    cursor = since
    deadline = time.monotonic() + wait
    try:
        for note in client.watch(since, timeout=wait, resume=False):
            if isinstance(note, notifications.Subscribed):
                cursor = note.wal_head
                if since is None:
                    since = cursor  # a first call only learns where the stream starts
                continue
            changes.append(_data(note))
            if isinstance(note, notifications.WalAdvanced):
                cursor = note.wal_head
            if time.monotonic() >= deadline or (changes and _quiet(note)):
                break
    except FrameTimeout:
        pass
    except Environment as err:
        raise GriteError(
            f"{err.message} (watch needs the grite daemon; inside a sandbox that blocks its "
            "socket, call prime or list again instead)"
        ) from err
    return {"changes": changes, "wal_head": cursor}


def _quiet(note: Any) -> bool:
    # One write ends with its wal_advanced: answer then rather than wait for the timeout.
    from grite.model import notifications

    return isinstance(note, notifications.WalAdvanced)


def main(argv: list[str], environ: Mapping[str, str]) -> int:
    """Run the MCP server on stdin/stdout until the client closes it; returns the exit status."""
    ns, _rest = _parser().parse_known_args(argv)
    try:
        server_factory = build_server
        import mcp  # noqa: F401  # the SDK is an optional extra: say so before anything else
    except ImportError:
        sys.stderr.write(
            "grite: 'grite mcp' needs the MCP SDK, an optional extra; install it with "
            "pip install 'grite[mcp]' (or pip install mcp)\n"
        )
        return 5
    client = Client(
        os.getcwd(),
        actor=settings.actor(environ, ns.actor),
        data_dir=settings.data_dir(environ, ns.data_dir),
        # The daemon policy (GRITE_DAEMON, GRITE_NO_DAEMON) comes from the environment.
        daemon=False if ns.no_daemon else True,
        environ=environ,
    )
    try:
        if settings.debug(environ):
            how = "through the daemon" if client.via_daemon else "in-process"
            sys.stderr.write(f"grite mcp: serving {client.repo} {how}\n")
        server_factory(client).run("stdio")
    except KeyboardInterrupt:
        pass
    finally:
        client.close()
    return 0
