"""Arguments and result of `grite prime`: an agent's context at the start of a session.

Same conventions as grite.model.requests: frozen, kw_only, args tagged with a fixed snake_case
name, ids as lowercase hex in results, new fields get defaults. Pure: imports only msgspec.
"""

from __future__ import annotations

from typing import Literal

import msgspec

__all__ = [
    "DEFAULT_MAX_TOKENS",
    "PrimeArgs",
    "PrimeClaim",
    "PrimeIssue",
    "PrimeLock",
    "PrimeResult",
    "estimate_tokens",
]

# The default budget of the Markdown document, in estimated tokens (see estimate_tokens).
DEFAULT_MAX_TOKENS = 1500


def estimate_tokens(text: str) -> int:
    """A tokenizer-free estimate: one token per 4 characters, rounded up.

    Byte-pair tokenizers average about 4 characters of English per token; ids and paths cost
    more per character, prose less, so the estimate is a budget, not a count.
    """
    return (len(text) + 3) // 4


class PrimeArgs(msgspec.Struct, frozen=True, kw_only=True, tag="prime"):
    """Build the session-start document; `record` moves the actor's last-prime mark."""

    max_tokens: int = DEFAULT_MAX_TOKENS
    record: bool = True
    # "hook": print the document as a session-start hook's JSON answer (Claude Code, Codex and
    # Gemini CLI read hookSpecificOutput.additionalContext); "markdown": the document itself.
    format: Literal["markdown", "hook"] = "markdown"


class PrimeIssue(msgspec.Struct, frozen=True, kw_only=True):
    issue_id: str
    title: str
    state: str
    labels: list[str] = []
    updated_ts: int = 0


class PrimeClaim(msgspec.Struct, frozen=True, kw_only=True):
    """An open issue somebody works on: assigned, or under an unexpired `issue:` lease."""

    issue_id: str
    title: str
    assignees: list[str]
    lease_owner: str | None = None
    lease_expires_unix_ms: int | None = None
    mine: bool = False


class PrimeLock(msgspec.Struct, frozen=True, kw_only=True):
    resource: str
    owner: str
    expires_unix_ms: int
    mine: bool


class PrimeResult(msgspec.Struct, frozen=True, kw_only=True):
    """The document (`markdown`) and the data it was made from, each list cut to fit."""

    actor: str
    wal_head: str | None
    ready: list[PrimeIssue]
    ready_total: int
    claimed: list[PrimeClaim]
    claimed_total: int
    locks: list[PrimeLock]
    locks_total: int
    changed: list[PrimeIssue]
    changed_total: int
    # What "changed" is relative to: the WAL head and time of this actor's previous prime
    # (both None at an actor's first prime, when nothing is listed as changed).
    since_wal_head: str | None
    since_ms: int | None
    rules: str  # the project's own rules from AGENTS.md (grite's section left out)
    rules_path: str | None
    markdown: str
    token_estimate: int
    handle: str | None = None  # the actor's handle (grite.model.names), what --claim assigns
    max_tokens: int
    format: Literal["markdown", "hook"] = "markdown"
