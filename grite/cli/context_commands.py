"""Command area: context (`grite context index|query|show|project|set`), the per-file symbol
index and project key/values that grite 0.5.3 keeps in the WAL.

An area module provides `register(top, issue, parents)`, which adds its argh commands to the
top-level and `issue` subparsers; and `RENDERERS`, mapping result Structs to human text.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

import argh

from grite.cli.commands import group, leaves
from grite.cli.render import Renderer
from grite.model.requests_context import (
    ContextIndexArgs,
    ContextIndexResult,
    ContextProjectArgs,
    ContextProjectList,
    ContextProjectValue,
    ContextQueryArgs,
    ContextQueryResult,
    ContextSetArgs,
    ContextSetResult,
    ContextShowArgs,
    ContextShowResult,
)

__all__ = ["RENDERERS", "register"]


@argh.named("index")
@argh.arg(
    "--path",
    dest="paths",
    action="append",
    help="index only these files or directories (git pathspecs; repeatable)",
)
@argh.arg("--force", help="re-index files whose content did not change")
@argh.arg("--pattern", help="only paths matching this glob, e.g. '*.rs'")
def context_index(
    *, paths: list[str] | None = None, force: bool = False, pattern: str | None = None
) -> ContextIndexArgs:
    """Extract symbols from tracked files into the context store (changed files only)."""
    return ContextIndexArgs(paths=paths or [], force=force, pattern=pattern)


@argh.named("query")
def context_query(query: str) -> ContextQueryArgs:
    """Find indexed symbols whose name starts with QUERY."""
    return ContextQueryArgs(query=query)


@argh.named("show")
def context_show(path: str) -> ContextShowArgs:
    """Show the indexed summary and symbols of one file."""
    return ContextShowArgs(path=path)


@argh.named("project")
@argh.arg("key", nargs="?", default=None, help="one key (default: list every key)")
def context_project(key: str | None) -> ContextProjectArgs:
    """Show project context: one key's value, or every key."""
    return ContextProjectArgs(key=key)


@argh.named("set")
def context_set(key: str, value: str) -> ContextSetArgs:
    """Set a project context key (last writer wins)."""
    return ContextSetArgs(key=key, value=value)


def _one_line(text: str) -> str:
    # Names, paths and values come from the WAL (anyone's): never let them drive the terminal.
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


def _index(_r: Renderer, x: ContextIndexResult) -> str:
    lines = [
        f"Indexed {x.indexed} of {x.total_files} files ({x.symbol_count} symbols); skipped "
        f"{x.skipped}: {x.unchanged} unchanged, {x.unsupported} unsupported, "
        f"{x.unreadable} not readable as text"
    ]
    if x.fallback_languages:
        lines.append(
            f"No tree-sitter grammar for {', '.join(x.fallback_languages)}: used the "
            "pattern fallback (pip install the tree-sitter-<language> package)"
        )
    return "\n".join(lines) + "\n"


def _query(_r: Renderer, x: ContextQueryResult) -> str:
    if not x.matches:
        return f"No indexed symbol starts with {_one_line(x.query)!r}\n"
    width = max(len(m.symbol) for m in x.matches)
    return "".join(f"{_one_line(m.symbol):<{width}}  {_one_line(m.path)}\n" for m in x.matches)


def _show(r: Renderer, x: ContextShowResult) -> str:
    lines = [
        f"{_one_line(x.path)} ({x.language}): {_one_line(x.summary)}",
        f"sha256 {x.content_hash}, indexed {r.when(x.updated_ts)} by {x.actor[:8]}",
    ]
    for s in x.symbols:
        span = f"{s.line_start}" if s.line_start == s.line_end else f"{s.line_start}-{s.line_end}"
        lines.append(f"  {span:>9}  {_one_line(s.kind):<9}  {_one_line(s.name)}")
    return "\n".join(lines) + "\n"


def _project_value(_r: Renderer, x: ContextProjectValue) -> str:
    return f"{_one_line(x.value)}\n"


def _project_list(_r: Renderer, x: ContextProjectList) -> str:
    if not x.entries:
        return "No project context; set some with 'grite context set KEY VALUE'\n"
    return "".join(f"{_one_line(e.key)} = {_one_line(e.value)}\n" for e in x.entries)


def _set(_r: Renderer, x: ContextSetResult) -> str:
    return f"Set {_one_line(x.key)} = {_one_line(x.value)}\n"


RENDERERS: dict[type, Callable[[Any, Any], str]] = {
    ContextIndexResult: _index,
    ContextQueryResult: _query,
    ContextShowResult: _show,
    ContextProjectValue: _project_value,
    ContextProjectList: _project_list,
    ContextSetResult: _set,
}


def register(
    top: argparse._SubParsersAction,  # type: ignore[type-arg]
    issue: argparse._SubParsersAction,  # type: ignore[type-arg]
    parents: list[argparse.ArgumentParser],
) -> None:
    """Add `grite context ...`."""
    leaves(
        group(top, "context", "symbol index of the tracked files, and project notes", parents),
        [context_index, context_query, context_show, context_project, context_set],
        parents,
    )
