"""The context store operations: `grite context index|query|show|project|set`.

Indexing writes one ContextUpdated event per new or changed file and `context set` one
ProjectContextUpdated, exactly as grite 0.5.3 builds them (same pseudo-issue ids, symbol
tuples, summary wording and SHA-256 content hash; https://github.com/neul-labs/grite,
crates/grite/src/commands/context.rs), so either implementation reads the other's. Queries
answer from the view's context index, kept current from the WAL like the issue index.

Differences from 0.5.3, on purpose:
- Paths are recorded relative to the top of the work tree (`git ls-files --full-name`),
  whichever directory the command runs in; 0.5.3 records them relative to its working
  directory, which gives the same paths when run from the top.
- Index events go into the WAL in batches (one commit per batch, not one per file).
- Symbolic links and files outside the work tree are not read: a cloned repository cannot make
  grite index (and push the hash and symbols of) a file elsewhere on the machine.
"""

from __future__ import annotations

import fnmatch
import hashlib
import os
import posixpath
import subprocess
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

from grite.model.context import (
    PROJECT_CONTEXT_ID,
    context_issue_id,
    detect_language,
    file_summary,
)
from grite.model.errors import Environment, InvalidArgs, NotFound
from grite.model.events import ContextUpdated, Event, ProjectContextUpdated, Symbol
from grite.model.hashing import make_event
from grite.model.requests_context import (
    ContextIndexArgs,
    ContextIndexResult,
    ContextMatch,
    ContextProjectArgs,
    ContextProjectList,
    ContextProjectValue,
    ContextQueryArgs,
    ContextQueryResult,
    ContextSetArgs,
    ContextSetResult,
    ContextShowArgs,
    ContextShowResult,
    ContextSymbol,
)
from grite.ops.actors import actor_bytes, event_signer
from grite.ops.context import OpContext
from grite.ops.maint import maybe_snapshot
from grite.ops.symbols import Extractor, grammar_available

__all__ = ["context_index", "context_project", "context_query", "context_set", "context_show"]

# Events per WAL commit while indexing, and the symbols they may carry: keeps each chunk well
# under the size a reader accepts while a large first index still needs few commits.
_BATCH_EVENTS = 500
_BATCH_SYMBOLS = 20_000
# git modes of index entries that are not regular files (symlink, submodule).
_NOT_FILES = ("120000", "160000")
# tree-sitter releases the GIL while it parses: files are parsed on this many threads, in
# slices so that only a slice's contents are in memory at once.
_PARSE_THREADS = max(1, min(4, os.cpu_count() or 1))
_SLICE = 256


def _worktree_top(cwd: str) -> str:
    """The top of the work tree that contains `cwd` (a linked worktree's own top).

    Raises:
        InvalidArgs: `cwd` is not inside a work tree (a bare repository, or inside .git).
    """
    directory = os.path.realpath(cwd)
    while True:
        if os.path.basename(directory) == ".git":
            break
        if os.path.lexists(os.path.join(directory, ".git")):
            return directory
        parent = os.path.dirname(directory)
        if parent == directory:
            break
        directory = parent
    raise InvalidArgs(
        f"{cwd} is not inside a work tree; run 'grite context' in a checked-out repository",
        {"cwd": cwd},
    )


def _tracked_files(cwd: str, pathspecs: list[str]) -> list[tuple[str, str]]:
    """(mode, path relative to the work tree's top) of every tracked file matching
    `pathspecs` (relative to `cwd`), as `git ls-files` lists them."""
    try:
        proc = subprocess.run(
            ["git", "ls-files", "-z", "--stage", "--full-name", "--", *pathspecs],
            cwd=cwd,
            capture_output=True,
            timeout=300,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise Environment(
            f"cannot run 'git ls-files' to list the files to index: {exc}; "
            "install git or check that it is on PATH"
        ) from exc
    if proc.returncode != 0:
        message = proc.stderr.decode("utf-8", "replace").strip()
        raise InvalidArgs(
            f"'git ls-files' failed: {message}; check the --path arguments",
            {"paths": ", ".join(pathspecs)},
        )
    files: dict[str, str] = {}
    for record in proc.stdout.split(b"\0"):
        if not record:
            continue
        info, _tab, name = record.partition(b"\t")
        path = name.decode("utf-8", "surrogateescape")
        # One row per path (a conflicted file has several stages).
        files.setdefault(path, info.split(b" ", 1)[0].decode("ascii", "replace"))
    return [(mode, path) for path, mode in files.items()]


def _read_regular(top: str, path: str) -> bytes | None:
    """The content of a regular file inside `top`, or None (missing, a symlink, a directory,
    outside the work tree, unreadable)."""
    full = os.path.join(top, path)
    if not os.path.realpath(full).startswith(top + os.sep):
        return None
    try:
        fd = os.open(full, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    except OSError:
        return None
    try:
        with os.fdopen(fd, "rb") as f:
            return f.read()
    except OSError:  # a directory (EISDIR) or an I/O error
        return None


def _is_utf8(content: bytes) -> bool:
    try:
        content.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def _batches(events: list[Event]) -> list[list[Event]]:
    batches: list[list[Event]] = []
    current: list[Event] = []
    symbols = 0
    for event in events:
        n = len(event.kind.symbols) if isinstance(event.kind, ContextUpdated) else 0
        if current and (len(current) >= _BATCH_EVENTS or symbols + n > _BATCH_SYMBOLS):
            batches.append(current)
            current, symbols = [], 0
        current.append(event)
        symbols += n
    if current:
        batches.append(current)
    return batches


_Todo = tuple[str, bytes, str, bytes]  # (path, content, language, SHA-256)


class _Parsers:
    """One Extractor per thread (tree-sitter parsers must not be shared between threads)."""

    def __init__(self) -> None:
        self._local = threading.local()

    def extract(self, item: _Todo) -> list[Symbol]:
        extractor = getattr(self._local, "extractor", None)
        if extractor is None:
            extractor = self._local.extractor = Extractor()
        _path, content, language, _digest = item
        return extractor.extract(content, language)


def _extracted(items: list[_Todo]) -> Iterator[tuple[_Todo, list[Symbol]]]:
    """(item, symbols) in the order of `items`, parsed on _PARSE_THREADS threads."""
    parsers = _Parsers()
    if _PARSE_THREADS == 1 or len(items) < 2:
        for item in items:
            yield item, parsers.extract(item)
        return
    with ThreadPoolExecutor(_PARSE_THREADS, thread_name_prefix="grite-parse") as pool:
        for start in range(0, len(items), _SLICE):
            chunk = items[start : start + _SLICE]
            yield from zip(chunk, pool.map(parsers.extract, chunk), strict=True)


def context_index(ctx: OpContext, args: ContextIndexArgs) -> ContextIndexResult:
    """Index tracked files: one ContextUpdated per file whose content changed (all with
    `force`). Unchanged files (same SHA-256), unsupported languages and files that are not
    UTF-8 text are skipped."""
    cwd = args.cwd or ctx.paths.repo_root
    top = os.path.realpath(_worktree_top(cwd))
    listed = _tracked_files(cwd, args.paths)
    if args.pattern is not None:
        listed = [(m, p) for m, p in listed if fnmatch.fnmatchcase(p, args.pattern)]
    actor = actor_bytes(ctx)
    sign = event_signer(ctx)
    todo: list[_Todo] = []
    unchanged = unsupported = unreadable = symbol_count = 0
    fallback: set[str] = set()
    for mode, path in listed:
        content = None if mode in _NOT_FILES else _read_regular(top, path)
        if content is None or not _is_utf8(content):
            unreadable += 1
            continue
        digest = hashlib.sha256(content).digest()
        if not args.force:
            existing = ctx.handle.file_context(path)
            if existing is not None and existing.content_hash == digest:
                unchanged += 1
                continue
        language = detect_language(path)
        if language == "unknown":
            unsupported += 1
            continue
        if not grammar_available(language):
            fallback.add(language)
        todo.append((path, content, language, digest))
    events: list[Event] = []
    for (path, _content, language, digest), symbols in _extracted(todo):
        symbol_count += len(symbols)
        kind = ContextUpdated(
            path=path,
            language=language,
            symbols=symbols,
            summary=file_summary(path, symbols, language),
            content_hash=digest,
        )
        event = make_event(
            issue_id=context_issue_id(path), actor=actor, ts_unix_ms=ctx.now_ms, kind=kind
        )
        events.append(sign(event))
    wal_head = None
    for batch in _batches(events):
        wal_head = ctx.handle.append(actor, batch).wal_head
    if events:
        maybe_snapshot(ctx)
    return ContextIndexResult(
        indexed=len(events),
        skipped=unchanged + unsupported + unreadable,
        total_files=len(listed),
        unchanged=unchanged,
        unsupported=unsupported,
        unreadable=unreadable,
        symbol_count=symbol_count,
        wal_head=wal_head,
        event_ids=[e.event_id.hex() for e in events],
        fallback_languages=sorted(fallback),
    )


def context_query(ctx: OpContext, args: ContextQueryArgs) -> ContextQueryResult:
    """Indexed symbols whose name starts with the query (case-sensitive, as in 0.5.3)."""
    matches = [
        ContextMatch(symbol=name, path=path) for name, path in ctx.handle.symbol_matches(args.query)
    ]
    return ContextQueryResult(query=args.query, matches=matches, count=len(matches))


def _candidates(ctx: OpContext, path: str, cwd: str | None) -> list[str]:
    """The path as typed (0.5.3 looks it up so), then as a path relative to the work tree's
    top when it was typed relative to a subdirectory or with `./`."""
    found = [path, posixpath.normpath(path)]
    if cwd is not None and not os.path.isabs(path):
        try:
            top = os.path.realpath(_worktree_top(cwd))
        except InvalidArgs:
            return found
        here = os.path.relpath(os.path.realpath(cwd), top)
        found.append(posixpath.normpath(posixpath.join(here.replace(os.sep, "/"), path)))
    elif os.path.isabs(path) and cwd is not None:
        try:
            top = os.path.realpath(_worktree_top(cwd))
        except InvalidArgs:
            return found
        found.append(os.path.relpath(os.path.realpath(path), top).replace(os.sep, "/"))
    return list(dict.fromkeys(found))


def context_show(ctx: OpContext, args: ContextShowArgs) -> ContextShowResult:
    """The indexed context of one file.

    Raises:
        NotFound: the path was never indexed.
    """
    for candidate in _candidates(ctx, args.path, args.cwd):
        fc = ctx.handle.file_context(candidate)
        if fc is not None:
            break
    else:
        raise NotFound(
            f"no context found for {args.path!r}; run 'grite context index' first "
            "(paths are relative to the top of the work tree)",
            {"path": args.path},
        )
    symbols = sorted(fc.symbols, key=lambda s: (s.line_start, s.line_end, s.name, s.kind))
    ts, actor, event_id = fc.version
    return ContextShowResult(
        path=fc.path,
        language=fc.language,
        summary=fc.summary,
        content_hash=fc.content_hash.hex(),
        symbols=[
            ContextSymbol(name=s.name, kind=s.kind, line_start=s.line_start, line_end=s.line_end)
            for s in symbols
        ],
        symbol_count=len(symbols),
        updated_ts=ts,
        actor=actor.hex(),
        event_id=event_id.hex(),
    )


def context_project(
    ctx: OpContext, args: ContextProjectArgs
) -> ContextProjectValue | ContextProjectList:
    """One project key's value, or every key (sorted).

    Raises:
        NotFound: the key was never set.
    """
    entries = ctx.handle.project_entries()
    views = {
        key: ContextProjectValue(
            key=key, value=e.value, updated_ts=e.version[0], actor=e.version[1].hex()
        )
        for key, e in entries.items()
    }
    if args.key is None:
        rows = [views[key] for key in sorted(views, key=lambda k: k.encode())]
        return ContextProjectList(entries=rows, count=len(rows))
    found = views.get(args.key)
    if found is None:
        raise NotFound(
            f"project context key {args.key!r} not found; set it with "
            f"'grite context set {args.key} VALUE' or list keys with 'grite context project'",
            {"key": args.key},
        )
    return found


def context_set(ctx: OpContext, args: ContextSetArgs) -> ContextSetResult:
    """Set a project key (last writer wins)."""
    if not args.key.strip():
        raise InvalidArgs("the key must not be empty; e.g. 'grite context set build \"make\"'")
    actor = actor_bytes(ctx)
    kind = ProjectContextUpdated(key=args.key, value=args.value)
    event = event_signer(ctx)(
        make_event(issue_id=PROJECT_CONTEXT_ID, actor=actor, ts_unix_ms=ctx.now_ms, kind=kind)
    )
    result = ctx.handle.append(actor, [event])
    maybe_snapshot(ctx)
    return ContextSetResult(
        key=args.key, value=args.value, event_id=event.event_id.hex(), wal_head=result.wal_head
    )
