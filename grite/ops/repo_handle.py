"""An open repository: its WAL and view, kept consistent with `refs/grite/wal` on every read.

The daemon opens one RepoHandle per repository and keeps it warm; the in-process path opens one
per command. Either way every read first calls `refresh()`, which compares the WAL ref with the
head this handle reflects and applies only the newer commits, so writes by other processes,
`git fetch` or `grite sync` are seen without any manual step.

Writers to the view on disk take `view.lock`; a process that cannot get it within a short wait
still answers, from the view plus an in-memory overlay of the WAL delta, and never fails.
Appends are group-committed per handle (the writes that queue while one commit is written go
into the next commit together; one committer per repository in the daemon) and made safe
across processes by the ref's compare-and-swap. A write whose events are already in the WAL
(a retried request: the client sends the same request id and clock) is not appended again.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterable

from grite.model.context import (
    ContextChanges,
    FileContext,
    ProjectEntry,
    is_context_event,
    merge_context_event,
)
from grite.model.errors import (
    Cancelled,
    CorruptData,
    Environment,
    GriteError,
    InvalidArgs,
    NotFound,
)
from grite.model.events import ContextUpdated, Event, ProjectContextUpdated
from grite.model.ids import ISSUE_ID_LEN, check_prefix
from grite.model.projection import (
    IssueProjection,
    IssueSummary,
    apply_event,
    copy_projection,
    new_projection,
    summarize,
)
from grite.ops import cancellation
from grite.storage.config import FileCache
from grite.storage.file_lock import try_lock
from grite.storage.lease_refs import LockStore
from grite.storage.repo import RepoPaths
from grite.storage.signing import EntryVerifier
from grite.storage.snapshots import SnapshotStore
from grite.storage.view import VIEW_FORMAT, View, ViewDamaged, ViewMeta, symbol_key_order
from grite.storage.wal import Wal, WalEntry, WalHistoryChanged, WalRead, append_with_retry

__all__ = ["AppendResult", "RepoHandle"]

# How long a reader waits for another process that is writing the view before it answers from
# an in-memory overlay instead (never an error).
_VIEW_LOCK_WAIT = 2.0
# Decoded projections kept in memory (cleared wholesale when full: cheap and bounded).
_PROJECTION_CACHE = 4096
# Left-out WAL commits remembered in the view's meta (each is named in a warning; past this
# many, doctor still lists them all).
_MAX_SKIPPED_REMEMBERED = 100
_ABSENT = object()


def _nothing(_key: str) -> None:
    return None


class AppendResult:
    __slots__ = ("appended", "wal_head")

    def __init__(self, wal_head: str | None, appended: bool) -> None:
        self.wal_head = wal_head
        self.appended = appended


class RepoHandle:
    """WAL + view of one repository. Thread-safe."""

    def __init__(self, paths: RepoPaths) -> None:
        self.paths = paths
        self.wal = Wal(paths.git_dir)
        self.view = View(paths.grite_dir)
        # Config files parsed once per change (every write reads them; see OpContext).
        self.files = FileCache()
        # verify_signatures: refuses badly signed events before they reach the view.
        self.verifier = EntryVerifier(paths.grite_dir, files=self.files)
        self._locks: LockStore | None = None
        self._event_count: int | None = None  # of the view at self._head (None: unknown)
        self._lock = threading.RLock()
        self._write_lock = threading.Lock()
        # Group commit: writes waiting for the next commit, and whether a thread commits now.
        self._queue_lock = threading.Lock()
        self._queue: list[_Write] = []
        self._committing = False
        self._head: str | None = None
        self._fresh = False
        # The ref's stamp (Wal.stamp) when _head was read: while it is unchanged the ref has
        # not moved, and a refresh costs one stat instead of reading the ref.
        self._stamp: object = None
        # Overlay of projections newer than the disk view (only when view.lock was busy).
        self._overlay: dict[bytes, IssueProjection] = {}
        # The same for the context store; `_context_full` when the overlay replaces the
        # disk view's context entirely (the view was empty or its history was rewritten).
        self._context_overlay = ContextChanges()
        self._context_full = False
        self._summaries: dict[bytes, IssueSummary] | None = None
        self._summaries_head: str | None = None
        # Decoded projections, all valid at `_projections_head`; a catch-up carries them over
        # to the new head (replacing the changed ones), so a warm handle keeps them all.
        self._projections: dict[bytes, IssueProjection | None] = {}
        self._projections_head: str | None = None
        self._dependents_memo: (
            tuple[tuple[str | None, int], dict[bytes, list[tuple[bytes, str]]]] | None
        ) = None
        # The oldest damaged WAL commit found by the last refresh. Reads then answer from the
        # commits before it (with a warning, see grite.cli.app); writes refuse with it.
        self.wal_error: CorruptData | None = None
        # WAL commits the view leaves out (invalid, or refused by verify_signatures), by id,
        # with the reason: reads and writes carry on without their events (with a warning).
        self.wal_skipped: dict[str, str] = {}
        self.last_used = time.monotonic()

    @classmethod
    def open(cls, paths: RepoPaths) -> RepoHandle:
        return cls(paths)

    def close(self) -> None:
        with self._lock:
            self.view.close()
            self.wal.close()
            if self._locks is not None:
                self._locks.close()

    def locks(self) -> LockStore:
        """The repository's lock refs, opened once for the handle's life (for reading)."""
        with self._lock:
            if self._locks is None:
                self._locks = LockStore(self.paths.git_dir)
            return self._locks

    def event_count(self) -> int:
        """Events in the view, after a refresh (from memory while the WAL is unchanged)."""
        self.refresh()
        with self._lock:
            if self._event_count is not None and not self._overlay:
                return self._event_count
        return self.view.meta().event_count

    # -- consistency -------------------------------------------------------------------------

    def refresh(self) -> str | None:
        """Make reads reflect the current WAL head; returns that head."""
        # The stamp is taken before the head is read: a ref that moves in between leaves a
        # stamp older than the head we keep, so the next refresh reads the ref again.
        stamp = self.wal.stamp()
        with self._lock:
            self.last_used = time.monotonic()
            # While the WAL is damaged every read looks again: a repair (a missing object
            # fetched back) does not move the ref.
            if self._fresh and stamp == self._stamp and self.wal_error is None:
                return self._head
        head = self.wal.head()
        with self._lock:
            if self._fresh and head == self._head and self.wal_error is None:
                self._stamp = stamp
                return head
            if self.wal_error is not None:
                self._projections.clear()  # kept per ref head, which a repair keeps
            for attempt in (1, 2):
                fd = try_lock(self.view.lock_path, _VIEW_LOCK_WAIT)
                try:
                    meta = self.view.meta()
                    # Read the ref again, after the view's meta (and under view.lock when we
                    # hold it): the head read above may be older than what another thread or
                    # process has since put in the view, and catching up "from" a newer view
                    # head to an older ref looks like rewritten history and reset the view,
                    # which lock-free readers elsewhere could see half-way (issue not found).
                    head = self.wal.head()
                    if fd is not None:
                        self._catch_up_disk(meta, head)
                        self._clear_overlay()
                    else:
                        self._build_overlay(meta, head)
                    break
                except ViewDamaged:
                    # Recreated empty under us: forget what we knew and rebuild once.
                    self._forget_view()
                    if attempt == 2:
                        raise
                finally:
                    if fd is not None:
                        os.close(fd)
            self._head = head
            self._fresh = True
            self._stamp = stamp
            return head

    def _catch_up_disk(self, meta: ViewMeta, head: str | None, use_snapshot: bool = True) -> None:
        if meta.format != VIEW_FORMAT:
            self.view.reset()
            meta = ViewMeta()
        if meta.wal_head == head:
            self.wal_error = None
            self.wal_skipped = meta.skipped
            self._event_count = meta.event_count
            if self._summaries_head != head:
                self._summaries = None
            if self._projections_head != head:
                self._projections.clear()
                self._projections_head = head
            return
        context = ContextChanges()
        seeded = (
            self._seed_from_snapshot(head, context)
            if meta.wal_head is None and use_snapshot
            else None
        )
        if seeded is not None:
            base_head, seed, read, base_count = seeded
        else:
            try:
                read = self.wal.read_good_entries(since=meta.wal_head, head=head)
            except WalHistoryChanged:
                self.view.reset()
                meta = ViewMeta()
                read = self.wal.read_good_entries(head=head)
            base_head, seed, base_count = meta.wal_head, {}, meta.event_count
        entries, skipped = self._usable(read, meta.skipped)
        before = meta.wal_head
        # Up to the last good commit: the view never moves past a damaged one (skipped commits
        # are passed, so the newest one read counts when no damage stopped the read).
        head = head if read.error is None else (entries[-1].commit if entries else base_head)
        # An empty view has nothing to load: skip one database read per issue. Projections
        # kept in memory at `before` are copied instead of read and decoded again.
        load = self._loader(before) if before else seed.get
        changed = {**seed, **self._apply(entries, load, context, from_view=before is not None)}
        event_count = base_count + sum(len(e.events) for e in entries)
        new_meta = ViewMeta(
            wal_head=head,
            event_count=event_count,
            rebuilt_ms=meta.rebuilt_ms if before is not None else int(time.time() * 1000),
            skipped=skipped,
            rebuilt_event_count=meta.rebuilt_event_count if before is not None else event_count,
        )
        summaries = {i: summarize(p) if p.created else None for i, p in changed.items()}
        self.view.store(changed.values(), summaries, new_meta, context)
        self._event_count = new_meta.event_count
        if self._projections_head == before and before is not None:
            self._projections.update(changed)
        else:
            self._projections.clear()
        self._projections_head = head
        if self._summaries is not None and self._summaries_head == before:
            for issue_id, summary in summaries.items():
                if summary is None:
                    self._summaries.pop(issue_id, None)
                else:
                    self._summaries[issue_id] = summary
            self._summaries_head = head
        else:
            self._summaries = None

    def _usable(
        self, read: WalRead, known: dict[str, str]
    ) -> tuple[list[WalEntry], dict[str, str]]:
        """The entries of `read` to apply, and every commit left out so far (`known` plus the
        invalid commits of `read` plus those verify_signatures refuses); sets wal_error and
        wal_skipped to match."""
        entries, refused = self.verifier.split(read.entries)
        skipped = dict(known)
        for exc in [*reversed(read.skipped), *refused]:
            if len(skipped) < _MAX_SKIPPED_REMEMBERED:
                skipped[str(exc.details.get("commit", "?"))] = exc.message
        self.wal_error = read.error
        self.wal_skipped = skipped
        return entries, skipped

    def _loader(self, head: str | None) -> Callable[[bytes], IssueProjection | None]:
        """Loads a projection at `head` for changing: a copy of the kept one, else the view's."""
        kept = self._projections if self._projections_head == head else {}

        def load(issue_id: bytes) -> IssueProjection | None:
            p = kept.get(issue_id, _ABSENT)
            if p is _ABSENT:
                return self.view.projection(issue_id)
            return None if p is None else copy_projection(p)  # type: ignore[arg-type]

        return load

    def _seed_from_snapshot(
        self, head: str | None, context: ContextChanges
    ) -> tuple[str, dict[bytes, IssueProjection], WalRead, int] | None:
        """For an empty view: the newest readable snapshot on the WAL's chain, as projections,
        plus the WAL entries after it. Reading one snapshot (chunks of 1,000 events) instead of
        every WAL commit is what makes a fresh clone's first command fast. Only snapshots this
        clone trusts (made, or compared with the WAL by doctor --fix) are used: a snapshot ref
        fetched from elsewhere may hold anything.
        """
        if head is None:
            return None
        with SnapshotStore(self.paths.git_dir) as store:
            for info in store.list(trusted_only=True):
                try:
                    snap, events = store.read(info)
                    if snap.wal_head is None:
                        continue
                    read = self.wal.read_good_entries(since=snap.wal_head, head=head)
                except (CorruptData, WalHistoryChanged):
                    continue  # unreadable, or not on this WAL's chain: try an older one
                snapshot_entry = WalEntry(commit=snap.oid, actor="", chunk_hash="", events=events)
                kept, refused = self.verifier.split([snapshot_entry])
                if refused:
                    continue  # holds an event verify_signatures refuses: replay the WAL instead
                seed = self._apply(kept, lambda _i: None, context)
                return snap.wal_head, seed, read, len(events)
        return None

    def _build_overlay(self, meta: ViewMeta, head: str | None) -> None:
        base = meta.wal_head if meta.format == VIEW_FORMAT else None
        try:
            read = self.wal.read_good_entries(since=base, head=head)
        except WalHistoryChanged:
            base = None
            read = self.wal.read_good_entries(head=head)
        entries, _skipped = self._usable(read, meta.skipped if base is not None else {})
        self._context_overlay = ContextChanges()
        self._context_full = base is None
        if base is None:
            self._overlay = self._apply(entries, lambda _i: None, self._context_overlay)
            self._summaries = {}
        else:
            self._overlay = self._apply(
                entries, self.view.projection, self._context_overlay, from_view=True
            )
            if self._summaries_head != base:
                self._summaries = None
        self._summaries_head = None if base is None else base

    def _apply(
        self,
        entries: list[WalEntry],
        load: object,
        context: ContextChanges | None = None,
        from_view: bool = False,
    ) -> dict[bytes, IssueProjection]:
        """Merge `entries` (already passed by verify_signatures) into projections (returned)
        and context events into `context`, against what `load` (projections) and, with
        `from_view`, the disk view hold."""
        changed: dict[bytes, IssueProjection] = {}
        load_file = self.view.file_context if from_view else _nothing
        load_project = self.view.project_entry if from_view else _nothing
        for entry in entries:
            for event in entry.events:
                if is_context_event(event):
                    # Context events are not issues: they only feed the context store.
                    if context is not None:
                        merge_context_event(context, event, load_file, load_project)
                    continue
                p = changed.get(event.issue_id)
                if p is None:
                    p = load(event.issue_id) or new_projection(event.issue_id)  # type: ignore[operator]
                    changed[event.issue_id] = p
                apply_event(p, event)
        return changed

    def rebuild(
        self,
        base: tuple[list[IssueProjection], ViewMeta] | None = None,
        wait: float = 10.0,
        base_context: ContextChanges | None = None,
    ) -> ViewMeta:
        """Drop the view and build it again from the WAL (or from `base` plus the WAL after
        `base`'s wal_head, e.g. a snapshot's projections). Used by rebuild and doctor --fix.

        Raises:
            Environment: another process kept view.lock for `wait` seconds.
        """
        with self._lock:
            # Reopen: the directory may have been deleted or replaced under this handle.
            self.view.close()
            self.view = View(self.paths.grite_dir)
            fd = try_lock(self.view.lock_path, wait)
            if fd is None:
                raise Environment(
                    f"another grite process is writing the view ({self.view.lock_path}); "
                    "retry when it is done"
                )
            try:
                self.view.reset()
                head = self.wal.head()
                meta = ViewMeta(rebuilt_ms=int(time.time() * 1000))
                if base is not None:
                    projections, meta = base
                    summaries = {p.issue_id: summarize(p) for p in projections if p.created}
                    self.view.store(projections, dict(summaries), meta, base_context)
                self._summaries = None
                self._projections.clear()
                self._clear_overlay()
                # `base` None means a rebuild from the WAL alone, the reference every other
                # path is compared with: no snapshot seeds it.
                self._catch_up_disk(meta, head, use_snapshot=False)
                self._head = head
                self._fresh = True
                self._summaries = None
                return self.view.meta()
            finally:
                os.close(fd)

    def _forget_view(self) -> None:
        with self._lock:
            self._projections.clear()
            self._fresh = False
            self._summaries = None
            self._summaries_head = None
            self._clear_overlay()

    def _clear_overlay(self) -> None:
        self._overlay.clear()
        self._context_overlay = ContextChanges()
        self._context_full = False

    # -- reads -------------------------------------------------------------------------------

    def summaries(self) -> list[IssueSummary]:
        """Every created issue, after a refresh; order unspecified."""
        try:
            return self._summaries_once()
        except ViewDamaged:
            self._forget_view()
            return self._summaries_once()

    def _summaries_once(self) -> list[IssueSummary]:
        self.refresh()
        with self._lock:
            if self._summaries is None or (
                not self._overlay and self._summaries_head != self._head
            ):
                self._summaries = self.view.summaries()
                self._summaries_head = self.view.meta().wal_head
            merged = self._summaries
            if self._overlay:
                merged = dict(merged)
                for issue_id, p in self._overlay.items():
                    if p.created:
                        merged[issue_id] = summarize(p)
            return list(merged.values())

    def dependents(self, issue_id: bytes) -> list[tuple[bytes, str]]:
        """(source, dep_type) of every current edge pointing at `issue_id`, sorted by type
        then source. The reverse index is built once per WAL head, not per call."""
        summaries = self.summaries()
        with self._lock:
            key = (self._head, id(self._summaries))
            memo = self._dependents_memo
            if memo is None or memo[0] != key or self._overlay:
                index: dict[bytes, list[tuple[bytes, str]]] = {}
                for s in summaries:
                    for dep in s.dependencies:
                        index.setdefault(dep.target, []).append((s.issue_id, dep.dep_type))
                for edges in index.values():
                    edges.sort(key=lambda edge: (edge[1], edge[0]))
                memo = (key, index)
                if not self._overlay:
                    self._dependents_memo = memo
        return list(memo[1].get(issue_id, ()))

    def projection(self, issue_id: bytes) -> IssueProjection | None:
        """The projection of a created issue, or None."""
        try:
            return self._projection_once(issue_id)
        except ViewDamaged:
            self._forget_view()
            return self._projection_once(issue_id)

    def _projection_once(self, issue_id: bytes) -> IssueProjection | None:
        head = self.refresh()
        p = self._any_projection(issue_id, head)
        return p if p is not None and p.created else None

    def _any_projection(self, issue_id: bytes, head: str | None) -> IssueProjection | None:
        """The projection at `head` (created or not), from the overlay, memory or the view.

        Decoded projections are kept: a warm daemon answers repeated reads and checks
        retried writes from memory. Callers treat projections as read-only.
        """
        with self._lock:
            p = self._overlay.get(issue_id)
            if p is not None:
                return p
            if self._projections_head == head and issue_id in self._projections:
                return self._projections[issue_id]
        p = self.view.projection(issue_id)
        with self._lock:
            if self._projections_head == head and not self._overlay:
                if len(self._projections) >= _PROJECTION_CACHE:
                    self._projections.clear()
                self._projections[issue_id] = p
        return p

    def resolve_issue(self, text: str) -> bytes:
        """Resolve a full id or a unique prefix (4+ hex characters) to an issue id.

        Raises:
            InvalidArgs: not hex, too short, or ambiguous.
            NotFound: no issue matches.
        """
        prefix = check_prefix(text)
        if len(prefix) == 2 * ISSUE_ID_LEN:
            issue_id = bytes.fromhex(prefix)
            if self.projection(issue_id) is None:
                raise NotFound(
                    f"issue {prefix} not found; run 'grite issue list' to see issues",
                    {"issue_id": prefix},
                )
            return issue_id
        if len(prefix) > 2 * ISSUE_ID_LEN:
            raise InvalidArgs(
                f"issue id {text!r} is too long: ids have {2 * ISSUE_ID_LEN} hex characters",
                {"value": text},
            )
        matches = sorted(
            s.issue_id for s in self.summaries() if s.issue_id.hex().startswith(prefix)
        )
        if not matches:
            raise NotFound(
                f"no issue matches {text!r}; run 'grite issue list' to see issues",
                {"prefix": prefix},
            )
        if len(matches) > 1:
            shown = ", ".join(m.hex()[:12] for m in matches[:5])
            raise InvalidArgs(
                f"issue id prefix {text!r} is ambiguous: it matches {len(matches)} issues "
                f"({shown}); type more characters",
                {"prefix": prefix, "matches": str(len(matches))},
            )
        return matches[0]

    # -- the context store (grite context ...) ------------------------------------------

    def file_context(self, path: str) -> FileContext | None:
        """The newest indexed context of `path` (a repository-relative path), or None."""
        try:
            self.refresh()
            return self._file_context_now(path)
        except ViewDamaged:
            self._forget_view()
            self.refresh()
            return self._file_context_now(path)

    def _file_context_now(self, path: str) -> FileContext | None:
        with self._lock:
            fc = self._context_overlay.files.get(path)
            full = self._context_full
        if fc is not None or full:
            return fc
        return self.view.file_context(path)

    def project_entries(self) -> dict[str, ProjectEntry]:
        """Every project context key's current entry."""
        try:
            self.refresh()
            return self._project_now()
        except ViewDamaged:
            self._forget_view()
            self.refresh()
            return self._project_now()

    def _project_now(self) -> dict[str, ProjectEntry]:
        with self._lock:
            overlay = dict(self._context_overlay.project)
            full = self._context_full
        entries = {} if full else self.view.project_entries()
        entries.update(overlay)
        return entries

    def symbol_matches(self, prefix: str) -> list[tuple[str, str]]:
        """(symbol, path) of every indexed symbol whose name starts with `prefix`, in grite
        0.5.3's order (its `ctx/sym/<name>/<path>` keys in byte order), each pair once."""
        try:
            self.refresh()
            return self._symbols_now(prefix)
        except ViewDamaged:
            self._forget_view()
            self.refresh()
            return self._symbols_now(prefix)

    def _symbols_now(self, prefix: str) -> list[tuple[str, str]]:
        with self._lock:
            files = dict(self._context_overlay.files)
            full = self._context_full
        found = set() if full else set(self.view.symbol_matches(prefix))
        if files:
            found = {(name, path) for name, path in found if path not in files}
            for path, fc in files.items():
                found.update((s.name, path) for s in fc.symbols if s.name.startswith(prefix))
        return sorted(found, key=lambda m: symbol_key_order(*m))

    def _context_known(self, e: Event) -> bool:
        """Whether the view already holds this context event or a newer one for its path or
        key (a retried `context index|set`: appending it again would change nothing)."""
        kind = e.kind
        if isinstance(kind, ContextUpdated):
            current: FileContext | ProjectEntry | None = self._file_context_now(kind.path)
        elif isinstance(kind, ProjectContextUpdated):
            current = self._project_now().get(kind.key)
        else:
            return False
        return current is not None and current.version >= e.version

    def has_events(self, events: Iterable[Event]) -> bool:
        """True when every event is already merged into the view (after a refresh)."""
        head = self._head
        for e in events:
            if is_context_event(e):
                if not self._context_known(e):
                    return False
                continue
            p = self._any_projection(e.issue_id, head)
            if p is None or e.event_id not in p.applied:
                return False
        return True

    # -- writes ------------------------------------------------------------------------------

    def append(self, actor: bytes, events: list[Event]) -> AppendResult:
        """Append `events` as part of one WAL commit unless they are already there.

        Group commit: while one thread commits, the writes that arrive queue up, and the next
        commit carries all of them in one chunk (grite 0.5.3 reads multi-event chunks; the
        commit is attributed to the first writer's actor, every event keeps its own). Each
        write is acknowledged (returned) only after the commit holding it is on the ref. When a
        group's commit fails, each of its writes is committed again on its own, so an error
        reaches exactly the writers it concerns.

        Raises:
            CorruptData: the WAL is damaged (appending would hide the write from readers).
            Environment: the WAL could not be written.
        """
        write = _Write(actor, events)
        with self._queue_lock:
            self._queue.append(write)
            lead = not self._committing
            self._committing = True
        if not lead:
            write.done.wait()
            lead = write.lead  # handed over by the previous committer, with writes queued
        if lead:
            self._commit_queued()
        if write.error is not None:
            raise write.error
        assert write.result is not None
        return write.result

    def _commit_queued(self) -> None:
        """Commit everything queued as one group, then hand over to a waiting writer."""
        with self._queue_lock:
            group, self._queue = self._queue, []
        try:
            with self._write_lock:
                # Taken now: a write whose client went away before this moment is dropped
                # (grite.ops.cancellation); one taken here is committed whatever happens next.
                for write in group:
                    try:
                        cancellation.checkpoint("nothing was written", write.cancel)
                    except Cancelled as exc:
                        write.error = exc
                group_now = [w for w in group if w.error is None]
                if group_now:
                    self._commit_group(group_now)
        except BaseException as exc:  # never leave the group waiting: each sees the failure
            for write in group:
                if write.result is None and write.error is None:
                    write.error = exc
            raise
        finally:
            with self._queue_lock:
                if self._queue:
                    # Someone is waiting already: they commit the next group (and return with
                    # it), so no thread keeps committing for others while its caller waits.
                    heir = self._queue[0]
                    heir.lead = True
                    heir.done.set()
                else:
                    self._committing = False
            for write in group:
                write.done.set()

    def _commit_group(self, group: list[_Write]) -> None:
        try:
            head, pending = self._append_writes(group)
        except GriteError as exc:
            if len(group) == 1:
                group[0].error = exc
                return
            for write in group:  # find out whose write it was
                self._commit_group([write])
            return
        for write in group:
            write.result = AppendResult(head, write in pending)

    def _append_writes(self, group: list[_Write]) -> tuple[str | None, list[_Write]]:
        """Append the events of every write of `group` not yet in the WAL, as one commit.

        Returns:
            The head after the call and the writes this call appended.
        """
        pending: list[_Write] = []

        def before_try(_parent: str | None) -> list[Event]:
            try:
                self.refresh()
                fresh = [w for w in group if not self.has_events(w.events)]
            except ViewDamaged:
                self._forget_view()
                self.refresh()
                fresh = [w for w in group if not self.has_events(w.events)]
            if self.wal_error is not None:
                # Appending on top of damage would hide the write from every reader (views
                # stop at the last good commit): refuse until `grite doctor` has been run.
                raise self.wal_error
            pending[:] = fresh
            return [e for w in fresh for e in w.events]

        all_events = [e for w in group for e in w.events]
        head, _ = append_with_retry(self.wal, group[0].actor, all_events, before_try=before_try)
        self.refresh()
        return head, pending


class _Write:
    """One caller's append, queued for the next group commit."""

    __slots__ = ("actor", "cancel", "done", "error", "events", "lead", "result")

    def __init__(self, actor: bytes, events: list[Event]) -> None:
        self.actor = actor
        self.cancel = cancellation.current()  # the writer's request's Ctrl-C, if any
        self.events = events
        self.done = threading.Event()
        self.lead = False  # set when this writer must commit the next group itself
        self.result: AppendResult | None = None
        self.error: BaseException | None = None
