"""The record of fallbacks: requests a client ran in-process although a daemon should have.

Falling back is right for the user (the command still works) and is how faults hide, so every
fallback is appended here as one line, and `grite daemon status` reads the newest ones back.
The file is `$XDG_STATE_HOME/grite/fallbacks.log` (next to daemon.log, not in the runtime
directory: an unusable runtime directory is itself a cause worth recording). One line per
fallback, tab-separated and append-only (O_APPEND writes of one line do not interleave):

    <unix ms>\\t<pid>\\t<client: cli|client|batch>\\t<cause>\\t<message>

When the file passes MAX_BYTES it is renamed to `fallbacks.log.1` (one generation kept).
Recording is best effort: a client that cannot write the file still runs the command.
Standard library only.
"""

from __future__ import annotations

import os
import time

__all__ = ["MAX_BYTES", "Fallback", "read", "record"]

MAX_BYTES = 64 * 1024


class Fallback:
    """One recorded fallback."""

    __slots__ = ("cause", "client", "message", "pid", "ts_ms")

    def __init__(self, ts_ms: int, pid: int, client: str, cause: str, message: str) -> None:
        self.ts_ms = ts_ms
        self.pid = pid
        self.client = client
        self.cause = cause
        self.message = message


def _clean(text: str) -> str:
    return " ".join(text.replace("\t", " ").split())


def record(path: str, client: str, cause: str, message: str) -> None:
    """Append one fallback to the record at `path` (best effort, never raises OSError)."""
    line = (
        f"{time.time_ns() // 1_000_000}\t{os.getpid()}\t{_clean(client)}\t{_clean(cause)}\t"
        f"{_clean(message)[:500]}\n"
    )
    try:
        os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
        try:
            if os.stat(path).st_size > MAX_BYTES:
                os.replace(path, path + ".1")
        except FileNotFoundError:
            pass
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            os.write(fd, line.encode("utf-8", "replace"))
        finally:
            os.close(fd)
    except OSError:
        pass  # the record is a diagnostic; the command itself must still run


def read(path: str, since_ms: int = 0) -> list[Fallback]:
    """The recorded fallbacks at or after `since_ms`, oldest first (both generations).

    Lines that do not parse (a torn write, a hand edit) are skipped.
    """
    found: list[Fallback] = []
    for name in (path + ".1", path):
        try:
            with open(name, encoding="utf-8", errors="replace") as f:
                lines = f.read().splitlines()
        except OSError:
            continue
        for line in lines:
            parts = line.split("\t", 4)
            if len(parts) != 5 or not parts[0].isdigit() or not parts[1].isdigit():
                continue
            item = Fallback(int(parts[0]), int(parts[1]), parts[2], parts[3], parts[4])
            if item.ts_ms >= since_ms:
                found.append(item)
    found.sort(key=lambda f: f.ts_ms)
    return found
