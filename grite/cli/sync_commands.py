"""Command area: `grite sync` and `grite export` (see grite/cli/app.py for how areas plug in).

An area module provides `register(top, issue, parents)`, which adds its argh commands to the
top-level and `issue` subparsers; and `RENDERERS`, mapping result Structs to human text.

Output of `export`: without `-o`, the document itself goes to standard output (pipe it); with
`-o FILE` it is written to FILE and one summary line is printed. `--json` always prints the
envelope: its data is the ExportResult (format, output_path, event_count, issue_count, wal_head,
and `content` holding the document when no `-o` was given), so a script gets one JSON value.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

import argh

from grite.cli.commands import leaves
from grite.model.display import printable
from grite.model.requests_sync import ExportArgs, ExportResult, SyncArgs, SyncResult

__all__ = ["RENDERERS", "register"]


@argh.named("sync")
@argh.arg("--remote", help="git remote to sync with (default: [sync] remote, else origin)")
@argh.arg("--pull", help="only fetch and merge the remote's events")
@argh.arg("--push", help="only push local events (pulling first if the remote moved)")
def sync(*, remote: str | None = None, pull: bool = False, push: bool = False) -> SyncArgs:
    """Exchange issues with a git remote: pull and merge, then push (refs/grite/*)."""
    return SyncArgs(remote=remote, pull=pull, push=push)


@argh.named("export")
@argh.arg("--format", dest="fmt", required=True, choices=("json", "md"), help="json or md")
@argh.arg(
    "--since",
    help="only events after this time (2026-12-01, 2026-12-01T10:00 UTC, 1h, 2d, ms) or event id",
)
@argh.arg("-o", "--output", help="write to FILE instead of standard output")
def export(*, fmt: str, since: str | None = None, output: str | None = None) -> ExportArgs:
    """Export issues and events as JSON or Markdown."""
    return ExportArgs(format=fmt, since=since, output=output)  # type: ignore[arg-type]


def _render_sync(_renderer: Any, result: SyncResult) -> str:
    return printable(result.message, multiline=True) + "\n"


def _render_export(_renderer: Any, result: ExportResult) -> str:
    if result.content is not None:
        return result.content
    noun = "event" if result.event_count == 1 else "events"
    return (
        f"Exported {result.issue_count} issues and {result.event_count} {noun} "
        f"to {result.output_path}\n"
    )


RENDERERS: dict[type, Callable[[Any, Any], str]] = {
    SyncResult: _render_sync,
    ExportResult: _render_export,
}


def register(
    top: argparse._SubParsersAction,  # type: ignore[type-arg]
    issue: argparse._SubParsersAction,  # type: ignore[type-arg]
    parents: list[argparse.ArgumentParser],
) -> None:
    """Add `sync` and `export` to the top-level commands."""
    leaves(top, [sync, export], parents)
