"""One CLI command as it crosses from the `grite` client to whichever side executes it.

The client sends argv, cwd and terminal facts; the executor (daemon or in-process) parses and
renders with the same code and answers with an Outcome. `request_id` and `now_ms` come from the
client so that a retried write produces byte-identical events, which makes it idempotent in the
WAL itself, whichever process runs the retry.
"""

from __future__ import annotations

import msgspec

__all__ = ["Invocation", "Outcome"]


class Invocation(msgspec.Struct, frozen=True, kw_only=True):
    argv: list[str]
    cwd: str
    env: dict[str, str]
    request_id: bytes
    now_ms: int
    stdin: bytes | None = None
    stdout_isatty: bool = False
    columns: int = 80


class Outcome(msgspec.Struct, frozen=True, kw_only=True):
    exit_code: int
    stdout: str
    stderr: str
