"""Command area: agent — `issue ready [--claim]`, and the help entries of `watch` and `batch`.

An area module provides `register(top, issue, parents)`, which adds its argh commands to the
top-level and `issue` subparsers; and `RENDERERS`, mapping result Structs to human text.

`watch` and `batch` stream over their own daemon connection, so the `grite` entry hands them to
grite.cli.watch and grite.cli.batch before any routing; they appear here so that `grite --help`
and `grite watch --help` describe them.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

import argh

from grite.cli.commands import leaves
from grite.model import batch_commands
from grite.model.display import printable
from grite.model.errors import InvalidArgs
from grite.model.requests import IssueRow
from grite.model.requests_agents import (
    IssueClaimArgs,
    IssueClaimResult,
    IssueReadyArgs,
    IssueReadyResult,
)

__all__ = ["RENDERERS", "register"]


def _rows(renderer: Any, rows: list[IssueRow]) -> str:
    lines = []
    for r in rows:
        labels = f"  [{','.join(printable(x) for x in r.labels)}]" if r.labels else ""
        title = printable(r.title)
        lines.append(f"{r.issue_id[:12]}  {renderer.when(r.created_ts)}  {title}{labels}")
    return "".join(f"{line}\n" for line in lines)


def _render_ready(renderer: Any, result: IssueReadyResult) -> str:
    if not result.issues:
        return "No ready issues\n"
    return _rows(renderer, result.issues) + f"\n{result.total} ready (oldest first)\n"


def _render_claim(renderer: Any, result: IssueClaimResult) -> str:
    where = f"on {result.remote}" if result.remote else "in this clone only"
    return (
        f"Claimed issue {result.issue.issue_id}: {printable(result.issue.title)}\n"
        f"Assigned to {printable(result.assignee)}; lease {printable(result.lease_resource)} "
        f"{where} until {renderer.when(result.lease_expires_unix_ms)}\n"
    )


RENDERERS: dict[type, Callable[[Any, Any], str]] = {
    IssueReadyResult: _render_ready,
    IssueClaimResult: _render_claim,
}


@argh.named("ready")
@argh.arg("--label", action="append", help="only issues with this label (repeatable: all)")
@argh.arg("--claim", help="take the first unclaimed ready issue: lease and assign it to me")
@argh.arg("--ttl", help="with --claim: lease length, e.g. 300, 15m, 2h (default 300 s)")
@argh.arg(
    "--local",
    help="with --claim: lease in this clone only, without asking the grite remote "
    "(other clones learn of it at 'grite sync')",
)
def issue_ready(
    *,
    label: list[str] | None = None,
    claim: bool = False,
    ttl: str | None = None,
    local: bool = False,
) -> IssueReadyArgs | IssueClaimArgs:
    """Open issues nothing open holds back, oldest first; --claim takes one atomically."""
    if claim:
        return IssueClaimArgs(labels=label or [], ttl=ttl, local=local)
    if ttl is not None:
        raise InvalidArgs("--ttl only applies with --claim")
    if local:
        raise InvalidArgs("--local only applies with --claim")
    return IssueReadyArgs(labels=label or [])


def _entry_only(name: str) -> InvalidArgs:
    return InvalidArgs(
        f"'grite {name}' streams over its own connection and is run by the grite command "
        f"itself; run it as 'grite {name}' from a shell"
    )


@argh.named("watch")
@argh.arg("--since", metavar="WAL_HEAD", help="first replay every change after this WAL head")
def watch(*, since: str | None = None) -> None:
    """Print one line per change in this repository until interrupted (needs the daemon)."""
    raise _entry_only("watch")


@argh.named("batch")
@argh.arg("--stop-on-error", help="stop at the first command that fails")
def batch(*, stop_on_error: bool = False) -> None:
    """Run JSON-lines commands from stdin over one connection; one JSON result per line."""
    raise _entry_only("batch")


def register(
    top: argparse._SubParsersAction,  # type: ignore[type-arg]
    issue: argparse._SubParsersAction,  # type: ignore[type-arg]
    parents: list[argparse.ArgumentParser],
) -> None:
    """Add `issue ready`, `watch` and `batch`."""
    leaves(issue, [issue_ready], parents)
    leaves(top, [watch], parents)
    doc = (batch.__doc__ or "").strip()
    parser = top.add_parser(
        "batch", help=doc, description=doc, parents=parents, epilog=_BATCH_EPILOG
    )
    argh.set_default_command(parser, batch)


_BATCH_EPILOG = (
    'Each line is one JSON object: "type" names the command, the other keys are its\n'
    'arguments, e.g. {"type": "issue_create", "title": "T", "labels": ["bug"]}.\n'
    "An unknown type or key, or a value of the wrong type, is an error for that line.\n\n"
    "Command types and their keys:\n" + batch_commands.describe()
)
