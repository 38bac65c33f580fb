"""The user's GRITE_* settings, each parsed in one place, from the environment mapping given.

Callers pass the mapping they hold (the `grite` command's environment, an Invocation's `env`,
grite.Client's `environ`); nothing here reads the process environment. A flag is on for `1`,
`true` or `yes` (any case). Standard library only: the `grite` command's lean path imports it.
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping

__all__ = ["actor", "data_dir", "debug", "flag", "no_daemon"]


def flag(environ: Mapping[str, str], name: str) -> bool:
    """Whether the variable `name` is set to 1, true or yes."""
    return (environ.get(name) or "").strip().lower() in ("1", "true", "yes")


def debug(environ: Mapping[str, str]) -> bool:
    """GRITE_DEBUG: tracebacks for internal errors, and which path served each command."""
    return flag(environ, "GRITE_DEBUG")


def no_daemon(environ: Mapping[str, str]) -> bool:
    """GRITE_NO_DAEMON: run every command in-process (like --no-daemon)."""
    return flag(environ, "GRITE_NO_DAEMON")


def data_dir(environ: Mapping[str, str], given: str | None = None) -> str | None:
    """The actor data directory: `--data-dir` when given, else GRITE_HOME, else None."""
    return given or environ.get("GRITE_HOME") or None


def actor(environ: Mapping[str, str], given: str | None = None) -> str | None:
    """The acting actor id: `--actor` when given, else GRITE_ACTOR, else None."""
    return given or environ.get("GRITE_ACTOR") or None
