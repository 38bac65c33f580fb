"""Small per-actor and per-repository files the agent features read and write.

- `<actor dir>/prime.json`: the WAL head and time of the actor's last `grite prime`, so the
  next one can say what changed since (one mark per actor: each agent identity has its own).
- `<repo root>/AGENTS.md`: read, never written here.
"""

from __future__ import annotations

import os

import msgspec

from grite.storage.config import write_atomic

__all__ = ["PrimeMark", "load_prime_mark", "read_agents_md", "save_prime_mark"]

_PRIME_FILE = "prime.json"
# Bigger instruction files are cut: prime only ever shows a part of them.
_AGENTS_MD_LIMIT = 64 * 1024


class PrimeMark(msgspec.Struct, frozen=True, kw_only=True):
    """Where the actor's last prime left off. `request_id` and the `prev_*` fields let a retried
    request (same id) answer from the mark it replaced instead of from its own."""

    wal_head: str | None
    ts_ms: int
    request_id: str = ""
    prev_wal_head: str | None = None
    prev_ts_ms: int | None = None


def load_prime_mark(actor_dir: str) -> PrimeMark | None:
    """The actor's mark, or None when it has none or it cannot be read (then it starts over)."""
    try:
        with open(os.path.join(actor_dir, _PRIME_FILE), "rb") as f:
            return msgspec.json.decode(f.read(), type=PrimeMark)
    except (OSError, msgspec.DecodeError):
        return None


def save_prime_mark(actor_dir: str, mark: PrimeMark) -> None:
    write_atomic(os.path.join(actor_dir, _PRIME_FILE), msgspec.json.encode(mark) + b"\n")


def read_agents_md(repo_root: str) -> tuple[str, str] | None:
    """(path, text) of the repository's AGENTS.md, or None without one or when unreadable."""
    path = os.path.join(repo_root, "AGENTS.md")
    try:
        with open(path, "rb") as f:
            raw = f.read(_AGENTS_MD_LIMIT)
    except OSError:
        return None
    return path, raw.decode("utf-8", errors="replace")
