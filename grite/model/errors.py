"""The one error hierarchy of grite, with stable codes that cross process boundaries.

    GriteError (code "internal")
    ├── InvalidArgs   "invalid_args"  bad ids, flags, values: the user must change the command
    ├── NotFound      "not_found"     no such issue, actor, repository or remote
    ├── Conflict      "conflict"      a lock is held, a write would make a cycle, a push was rejected
    ├── Environment   "environment"   the machine or repository state stops us (permissions, disk, busy)
    ├── CorruptData   "corrupt"       shared data failed its hash or decode; never used silently
    └── Cancelled     "cancelled"     the user interrupted the command before its write was durable

Subclasses that carry more facts live next to the code that raises them. This module imports
nothing of grite and does no I/O.
"""

from __future__ import annotations

__all__ = [
    "EXIT_CODES",
    "Cancelled",
    "Conflict",
    "CorruptData",
    "Environment",
    "GriteError",
    "InvalidArgs",
    "NotFound",
    "exit_code_for",
]

# One table for every side: the CLI in-process and the daemon both map codes through it.
EXIT_CODES: dict[str, int] = {
    "invalid_args": 2,
    "not_found": 3,
    "conflict": 4,
    "environment": 5,
    "corrupt": 5,
    "busy": 5,
    "internal": 1,
    # As a shell reports a command ended by SIGINT (128 + 2).
    "cancelled": 130,
}


def exit_code_for(code: str) -> int:
    """Return the process exit status for an error code (1 for codes this build does not know)."""
    return EXIT_CODES.get(code, 1)


class GriteError(Exception):
    """Base of every error grite reports to a user.

    Args:
        message: what went wrong and what to do next.
        details: extra facts for JSON output (suggestions, ids, paths).
    """

    code = "internal"

    def __init__(self, message: str, details: dict[str, object] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.details: dict[str, object] = details or {}

    @property
    def exit_code(self) -> int:
        return exit_code_for(self.code)


class InvalidArgs(GriteError):
    code = "invalid_args"


class NotFound(GriteError):
    code = "not_found"


class Conflict(GriteError):
    code = "conflict"


class Environment(GriteError):
    code = "environment"


class CorruptData(GriteError):
    code = "corrupt"


class Cancelled(GriteError):
    code = "cancelled"
