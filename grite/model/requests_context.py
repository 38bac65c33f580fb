"""Arguments and results of the context store commands (`grite context index|query|show|
project|set`).

Same conventions as grite.model.requests: frozen, kw_only Structs; args are tagged with names
that never change. Every key grite 0.5.3 prints for these commands is here with its meaning
and type (https://github.com/neul-labs/grite, crates/grite/src/commands/context.rs); the
other fields are ours.
"""

from __future__ import annotations

from typing import Literal

import msgspec

__all__ = [
    "ContextIndexArgs",
    "ContextIndexResult",
    "ContextMatch",
    "ContextProjectArgs",
    "ContextProjectList",
    "ContextProjectValue",
    "ContextQueryArgs",
    "ContextQueryResult",
    "ContextSetArgs",
    "ContextSetResult",
    "ContextShowArgs",
    "ContextShowResult",
    "ContextSymbol",
]


class ContextIndexArgs(msgspec.Struct, frozen=True, kw_only=True, tag="context_index"):
    """`paths` are git pathspecs relative to `cwd` (the client's working directory)."""

    paths: list[str] = []
    force: bool = False
    pattern: str | None = None
    cwd: str | None = None


class ContextQueryArgs(msgspec.Struct, frozen=True, kw_only=True, tag="context_query"):
    query: str


class ContextShowArgs(msgspec.Struct, frozen=True, kw_only=True, tag="context_show"):
    path: str
    cwd: str | None = None


class ContextProjectArgs(msgspec.Struct, frozen=True, kw_only=True, tag="context_project"):
    key: str | None = None


class ContextSetArgs(msgspec.Struct, frozen=True, kw_only=True, tag="context_set"):
    key: str
    value: str


class ContextIndexResult(msgspec.Struct, frozen=True, kw_only=True):
    """`skipped` = unchanged + unsupported + unreadable, as 0.5.3 counts it."""

    indexed: int
    skipped: int
    total_files: int
    unchanged: int
    unsupported: int
    unreadable: int
    symbol_count: int
    wal_head: str | None
    event_ids: list[str]
    # Languages indexed with the pattern fallback because no grammar was usable here.
    fallback_languages: list[str] = []


class ContextMatch(msgspec.Struct, frozen=True, kw_only=True):
    symbol: str
    path: str


class ContextQueryResult(msgspec.Struct, frozen=True, kw_only=True):
    query: str
    matches: list[ContextMatch]
    count: int


class ContextSymbol(msgspec.Struct, frozen=True, kw_only=True):
    name: str
    kind: str
    line_start: int
    line_end: int


class ContextShowResult(msgspec.Struct, frozen=True, kw_only=True):
    path: str
    language: str
    summary: str
    content_hash: str
    symbols: list[ContextSymbol]
    symbol_count: int
    updated_ts: int
    actor: str
    event_id: str


class ContextProjectValue(msgspec.Struct, frozen=True, kw_only=True):
    key: str
    value: str
    updated_ts: int | None = None
    actor: str | None = None


class ContextProjectList(msgspec.Struct, frozen=True, kw_only=True):
    entries: list[ContextProjectValue]
    count: int


class ContextSetResult(msgspec.Struct, frozen=True, kw_only=True):
    key: str
    value: str
    action: Literal["set"] = "set"
    event_id: str
    wal_head: str | None
