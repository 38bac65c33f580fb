"""Small files parsed once and kept until they change (config.toml files, read on every write).

A warm daemon writes many times a second, and each write used to read and parse the
repository's and the actor's config.toml several times over. `FileCache.load` parses a file
again only when its stat (inode, mtime, size) changed: files are replaced by rename
(storage.config.write_atomic) or edited in place, and either changes the stat. The values are
shared between callers: treat them as read-only. Thread-safe.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from typing import Any, TypeVar

__all__ = ["FileCache"]

T = TypeVar("T")
_Stamp = tuple[int, int, int] | None


class FileCache:
    """Parsed files by path, each with the stat it was parsed at."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._entries: dict[str, tuple[_Stamp, Any]] = {}

    def load(self, path: str, parse: Callable[[], T]) -> T:
        """`parse()`'s value for `path`, parsed again only if the file changed (or appeared,
        or went away: a missing file is a state too). Errors of `parse` are not kept."""
        try:
            st = os.stat(path)
            stamp: _Stamp = (st.st_ino, st.st_mtime_ns, st.st_size)
        except FileNotFoundError:
            stamp = None
        except OSError:
            return parse()  # let the parser report what is wrong with it
        with self._lock:
            kept = self._entries.get(path)
        if kept is not None and kept[0] == stamp:
            return kept[1]  # type: ignore[no-any-return]
        value = parse()
        with self._lock:
            self._entries[path] = (stamp, value)
        return value
