"""One CLI command as it crosses from the `grite` client to whichever side executes it.

The client sends argv, cwd and terminal facts; the executor (daemon or in-process) parses and
renders with the same code and answers with an Outcome. `request_id` and `now_ms` come from the
client so that a retried write produces byte-identical events, which makes it idempotent in the
WAL itself, whichever process runs the retry.
"""

from __future__ import annotations

import msgspec

__all__ = ["Invocation", "Outcome", "command_word"]

# Global options that take a value: their value is never the command word.
_GLOBAL_WITH_VALUE = frozenset({"--actor", "--data-dir", "--color"})


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


def command_word(argv: list[str]) -> str:
    """The first word of `argv` that is neither an option nor a global option's value
    (`issue` in `--actor X issue list`); "" when there is none."""
    skip = False
    for word in argv:
        if skip:
            skip = False
        elif word in _GLOBAL_WITH_VALUE:
            skip = True
        elif not word.startswith("-"):
            return word
    return ""
