"""The context store as pure rules: file and project context ids, language detection, file
summaries, and the last-writer-wins state that ContextUpdated (13) and ProjectContextUpdated
(14) events add up to.

grite 0.5.3 stores each file's symbol index as a ContextUpdated event on a pseudo-issue whose
id is BLAKE2b-128 of `"grite:context:file:" + path`, and project key/values as
ProjectContextUpdated events on the issue id `ff` x 16
(https://github.com/neul-labs/grite, crates/libgrite-core/src/context/mod.rs). A path's
context and a project key are last-writer-wins registers, ordered by the event version
(ts, actor, event_id) like every other register (grite.model.projection).

Pure: imports only grite.model; no I/O.
"""

from __future__ import annotations

import hashlib
import posixpath
from collections.abc import Callable

import msgspec

from grite.model.events import ContextUpdated, Event, ProjectContextUpdated, Symbol

__all__ = [
    "LANGUAGES",
    "PROJECT_CONTEXT_ID",
    "ContextChanges",
    "FileContext",
    "ProjectEntry",
    "Version",
    "context_issue_id",
    "context_of",
    "detect_language",
    "file_summary",
    "is_context_event",
    "merge_context_event",
]

Version = tuple[int, bytes, bytes]

PROJECT_CONTEXT_ID = b"\xff" * 16
"""The issue id of every ProjectContextUpdated event."""

_FILE_ID_PREFIX = b"grite:context:file:"

# Extension -> language, as crates/libgrite-core/src/context/extractor/mod.rs (detect_language).
_EXTENSIONS = {
    "rs": "rust",
    "py": "python",
    "ts": "typescript",
    "tsx": "typescriptreact",
    "js": "javascript",
    "jsx": "javascript",
    "go": "go",
    "java": "java",
    "c": "c",
    "h": "c",
    "cpp": "cpp",
    "hpp": "cpp",
    "cc": "cpp",
    "cxx": "cpp",
    "rb": "ruby",
    "ex": "elixir",
    "exs": "elixir",
}
LANGUAGES = tuple(sorted(set(_EXTENSIONS.values())))
_STRUCT_KINDS = ("struct", "class", "interface")
_FUNCTION_KINDS = ("function", "method")


def context_issue_id(path: str) -> bytes:
    """The pseudo-issue id of a file's context: BLAKE2b with a 16-byte digest."""
    return hashlib.blake2b(_FILE_ID_PREFIX + path.encode("utf-8"), digest_size=16).digest()


def detect_language(path: str) -> str:
    """The language of `path` by its extension, or "unknown" (which is not indexed).

    Like Rust's `Path::extension`, a name that starts with its only dot (`.rs`) has none.
    """
    name = posixpath.basename(path)
    stem, dot, ext = name.rpartition(".")
    if not dot or not stem:
        return "unknown"
    return _EXTENSIONS.get(ext, "unknown")


def file_summary(path: str, symbols: list[Symbol], language: str) -> str:
    """One line about a file, worded exactly as grite 0.5.3's `generate_summary`.

    `symbols` in extraction (line) order: the first three struct/class/interface names are
    named.
    """
    shown_language = "typescript" if language == "typescriptreact" else language
    if not symbols:
        return f"{shown_language} file"
    types = [s.name for s in symbols if s.kind in _STRUCT_KINDS]
    functions = [s for s in symbols if s.kind in _FUNCTION_KINDS]
    parts = []
    if types:
        names = ", ".join(types[:3])
        more = f" (+{len(types) - 3} more)" if len(types) > 3 else ""
        parts.append(f"defines {names}{more}")
    if functions:
        parts.append(f"{len(functions)} functions")
    if not parts:
        return f"{posixpath.basename(path)} ({shown_language})"
    return "; ".join(parts)


class FileContext(msgspec.Struct, frozen=True, kw_only=True):
    """The current context of one path: the newest ContextUpdated for it."""

    path: str
    language: str
    symbols: list[Symbol]
    summary: str
    content_hash: bytes
    version: Version


class ProjectEntry(msgspec.Struct, frozen=True, kw_only=True):
    """The current value of one project key."""

    key: str
    value: str
    version: Version


class ContextChanges:
    """File contexts and project entries that a batch of events made newer than what was
    loaded; `files`/`project` hold only winners."""

    __slots__ = ("files", "project")

    def __init__(self) -> None:
        self.files: dict[str, FileContext] = {}
        self.project: dict[str, ProjectEntry] = {}

    def __bool__(self) -> bool:
        return bool(self.files or self.project)


def is_context_event(event: Event) -> bool:
    return isinstance(event.kind, (ContextUpdated, ProjectContextUpdated))


def merge_context_event(
    changes: ContextChanges,
    event: Event,
    load_file: Callable[[str], FileContext | None],
    load_project: Callable[[str], ProjectEntry | None],
) -> bool:
    """Merge one context event into `changes` if it is newer than the current value.

    Args:
        load_file: path -> the FileContext stored so far, or None.
        load_project: key -> the ProjectEntry stored so far, or None.

    Returns:
        True if the event won (it is now the value of its path or key).
    """
    kind = event.kind
    version: Version = (event.ts_unix_ms, event.actor, event.event_id)
    if isinstance(kind, ContextUpdated):
        current_file = changes.files.get(kind.path) or load_file(kind.path)
        if current_file is not None and version <= current_file.version:
            return False
        changes.files[kind.path] = FileContext(
            path=kind.path,
            language=kind.language,
            symbols=list(kind.symbols),
            summary=kind.summary,
            content_hash=kind.content_hash,
            version=version,
        )
        return True
    if isinstance(kind, ProjectContextUpdated):
        current = changes.project.get(kind.key) or load_project(kind.key)
        if current is not None and version <= current.version:
            return False
        changes.project[kind.key] = ProjectEntry(key=kind.key, value=kind.value, version=version)
        return True
    return False


def context_of(events: list[Event]) -> ContextChanges:
    """The context store that `events` alone add up to (e.g. a snapshot's)."""
    changes = ContextChanges()
    for event in events:
        merge_context_event(changes, event, _nothing, _nothing)
    return changes


def _nothing(_key: str) -> None:
    return None
