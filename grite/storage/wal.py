"""The write-ahead log: `refs/grite/wal` in git, one commit per append (https://github.com/neul-labs/grite/blob/main/crates/libgrite-git/src/wal.rs).

Each commit's tree holds `meta.json` and one `GRITECNK` chunk at `events/YYYY/MM/DD/<hash>.bin`;
`meta.prev_wal` links to the previous WAL commit (also its git parent, so `git log` and
`git fsck` see an ordinary history). The ref moves only by compare-and-swap: `try_append`
reports whether it won, and `append_with_retry` is the one retry policy.

WAL commits come from other clones, so reading one is a trust boundary. Every commit is
checked: its shape (one git parent at most, which meta.json's `prev_wal` must name: the chain is
followed through git parents only, never through meta.json), meta.json (typed, size-capped),
one chunk whose BLAKE2b name and meta hash match, every event (grite.model.chunk) and every
timestamp (at most FUTURE_SKEW_MS after the commit, and after this machine's clock). What fails
is one of two things:
- damage (`CorruptData`): an object is missing or does not match its git id. It may come back
  (a fetch), so readers stop short of it and writes wait;
- an invalid commit (`InvalidWalCommit`): its own bytes break the format. That verdict is the
  same on every clone and never changes, so readers skip the commit (its events are ignored)
  and carry on with its parent; `grite sync` refuses it before it arrives
  (grite.ops.sync.check_remote_wal), `grite doctor` lists it.

Only this module (with the rest of storage) touches dulwich.
"""

from __future__ import annotations

import hashlib
import json as _json
import os
import random
import re
import threading
import time
import zlib
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone

import msgspec
from dulwich.errors import NotCommitError, ObjectFormatException
from dulwich.file import FileLocked
from dulwich.objects import Blob, Commit, Tree, parse_tree

from grite.model.chunk import chunk_hash, decode_chunk, encode_chunk
from grite.model.errors import CorruptData, Environment, GriteError, InvalidArgs
from grite.model.events import Event
from grite.model.limits import FUTURE_SKEW_MS, MAX_CHUNK_BYTES, MAX_META_BYTES
from grite.storage.config import open_new_temp
from grite.storage.gitrepo import open_git_repo
from grite.storage.ref_lock import STALE_LOCK_SECONDS, break_stale_lock

__all__ = [
    "WAL_REF",
    "InvalidWalCommit",
    "Wal",
    "WalEntry",
    "WalHistoryChanged",
    "WalRead",
    "append_with_retry",
]

WAL_REF = b"refs/grite/wal"
_IDENTITY = b"grite <grit@local>"
_MODE_FILE = 0o100644
_MODE_DIR = 0o040000
_TYPE_NUMS = {b"commit": 1, b"tree": 2, b"blob": 3, b"tag": 4}
_HEX64 = re.compile(r"[0-9a-f]{64}")
_HEX32 = re.compile(r"[0-9a-f]{32}")
_CHUNK_NAME = re.compile(r"[0-9a-f]{64}\.bin")
_OID = re.compile(rb"[0-9a-f]{40}")
# A loose object's header ("blob 16777216\0") is far shorter than this.
_MAX_HEADER = 32
# Commits and trees grite writes are a few hundred bytes; a larger one is not a WAL object.
_MAX_COMMIT_OR_TREE_BYTES = 1024 * 1024
# The events tree is events/YYYY/MM/DD/<chunk>.bin: four levels below the root, one entry each.
_EVENTS_DEPTH = 4


class WalEntry(msgspec.Struct, frozen=True, kw_only=True):
    """One WAL commit and the events of its chunk, in stored order."""

    commit: str
    actor: str
    chunk_hash: str
    events: list[Event]


class WalHistoryChanged(GriteError):
    """The commit a reader stopped at last time is no longer in the WAL's chain."""

    code = "internal"


class InvalidWalCommit(CorruptData):
    """A WAL commit whose own bytes break the format: every reader skips it, `grite sync`
    refuses it. `parent` is its first git parent (where reading carries on)."""

    def __init__(self, message: str, details: dict[str, object], parent: str | None) -> None:
        super().__init__(message, details)
        self.parent = parent


class _WalMeta(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """meta.json exactly as grite and grite 0.5.3 write it. Unknown fields are refused rather
    than skipped: skipping a deeply nested value recurses without bound."""

    schema_version: int
    actor_id: str
    chunk_hash: str
    prev_wal: str | None = None


_meta_decoder = msgspec.json.Decoder(_WalMeta)


class _CommitHeader(msgspec.Struct, frozen=True):
    tree: bytes
    parents: list[str]
    commit_time: int | None


class _TooLarge(Exception):
    def __init__(self, size: int) -> None:
        super().__init__(size)
        self.size = size


class WalRead:
    """What a tolerant read found: the good entries (oldest first), the damage it stopped at,
    and the invalid commits it skipped (newest first)."""

    __slots__ = ("entries", "error", "skipped")

    def __init__(
        self,
        entries: list[WalEntry],
        error: CorruptData | None,
        skipped: list[InvalidWalCommit],
    ) -> None:
        self.entries = entries
        self.error = error
        self.skipped = skipped


class Wal:
    """The WAL of one repository. Safe to share between threads of one process."""

    def __init__(self, git_dir: str) -> None:
        self._repo = open_git_repo(git_dir)
        self._git_dir = git_dir
        self._objects_dir = os.path.join(git_dir, "objects")
        self._ref_paths = (
            os.path.join(git_dir, "refs", "grite", "wal"),
            os.path.join(git_dir, "packed-refs"),
        )
        self._head_memo: tuple[tuple[tuple[int, int, int] | None, ...], str | None] | None = None
        self._write_lock = threading.Lock()
        self._pool: ThreadPoolExecutor | None = None  # fsyncs objects concurrently

    @property
    def git_dir(self) -> str:
        return self._git_dir

    def close(self) -> None:
        self._repo.close()
        if self._pool is not None:
            self._pool.shutdown(wait=True)

    def _fsync_pool(self) -> ThreadPoolExecutor:
        with self._write_lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(max_workers=8, thread_name_prefix="grite-fsync")
            return self._pool

    def head(self) -> str | None:
        """The WAL head commit as hex, or None when nothing was ever appended."""
        # Every read asks this first, so an unchanged ref is answered from a stat of the ref
        # files: git replaces a ref file by rename, so its inode changes on every update.
        stamp = self.stamp()
        memo = self._head_memo
        if memo is not None and memo[0] == stamp:
            return memo[1]
        try:
            value: str | None = self._repo.refs[WAL_REF].decode("ascii")
        except KeyError:
            value = None
        self._head_memo = (stamp, value)
        return value

    def stamp(self) -> tuple[tuple[int, int, int] | None, ...]:
        """(inode, mtime, size) of the files the ref is read from: it changes whenever the ref
        moves, as git replaces a ref file by rename. No read, and one stat while the loose
        ref exists (git reads packed-refs only for a ref that has no loose file)."""
        loose, packed = self._ref_paths
        try:
            st = os.stat(loose)
        except FileNotFoundError:
            pass
        else:
            return ((st.st_ino, st.st_mtime_ns, st.st_size),)
        try:
            st = os.stat(packed)
        except FileNotFoundError:
            return (None, None)
        return (None, (st.st_ino, st.st_mtime_ns, st.st_size))

    def try_append(self, actor: bytes, events: list[Event], parent: str | None) -> str | None:
        """Write one WAL commit on top of `parent` and move the ref if it still points there.

        Args:
            actor: the appending actor (recorded in meta.json and the commit message).
            events: at least one event; they share one chunk.
            parent: the head the caller expects (None: the WAL must not exist yet).

        Returns:
            The new commit id, or None if the ref moved or another process holds its lock.
        """
        commit = self.write_commit(actor, events, parent)
        return commit if self.compare_and_set(parent, commit) else None

    def write_commit(self, actor: bytes, events: list[Event], parent: str | None) -> str:
        """Store one WAL commit (chunk, meta.json, trees) whose parent is `parent`, without
        moving any ref. Sync uses it to stack local events on a remote head.

        Returns:
            The commit id.

        Raises:
            Environment: the objects could not be written (disk full, permissions).
        """
        if not events:
            raise ValueError("cannot append an empty list of events")
        data = encode_chunk(events)
        now = int(time.time())
        _check_outgoing(data, now)
        digest = chunk_hash(data)
        meta = {
            "schema_version": 1,
            "actor_id": actor.hex(),
            "chunk_hash": digest,
            "prev_wal": parent,
        }
        day = datetime.fromtimestamp(events[0].ts_unix_ms / 1000, tz=timezone.utc)
        chunk_blob = Blob.from_string(data)
        meta_blob = Blob.from_string(_json.dumps(meta, indent=2).encode("utf-8"))
        day_tree = Tree()
        day_tree.add(f"{digest}.bin".encode(), _MODE_FILE, chunk_blob.id)
        month_tree = Tree()
        month_tree.add(f"{day.day:02d}".encode(), _MODE_DIR, day_tree.id)
        year_tree = Tree()
        year_tree.add(f"{day.month:02d}".encode(), _MODE_DIR, month_tree.id)
        events_tree = Tree()
        events_tree.add(f"{day.year:04d}".encode(), _MODE_DIR, year_tree.id)
        root = Tree()
        root.add(b"events", _MODE_DIR, events_tree.id)
        root.add(b"meta.json", _MODE_FILE, meta_blob.id)
        commit = Commit()
        commit.tree = root.id
        commit.parents = [parent.encode("ascii")] if parent else []
        commit.author = commit.committer = _IDENTITY
        commit.author_time = commit.commit_time = now
        commit.author_timezone = commit.commit_timezone = 0
        commit.encoding = b"UTF-8"
        # grite 0.5.3 writes "N events" always; nothing parses the message, so say it right.
        noun = "event" if len(events) == 1 else "events"
        commit.message = f"WAL: {len(events)} {noun} from {actor.hex()[:8]}".encode()
        try:
            self._add_loose(
                [chunk_blob, meta_blob, day_tree, month_tree, year_tree, events_tree, root, commit]
            )
        except OSError as exc:
            raise Environment(
                f"cannot write the WAL in {self._git_dir}: {exc.strerror or exc}; "
                "check disk space and permissions (nothing was recorded)"
            ) from exc
        return commit.id.decode("ascii")

    def _add_loose(self, objects: list[Blob | Tree | Commit]) -> None:
        """Store loose objects the way git does: temp files, then links into place.

        dulwich's add_object takes `<object>.lock` and renames it; a writer killed in between
        leaves that lock, and every later write of the same object (a retried request writes
        byte-identical objects) then fails forever. A temp file plus link() never blocks
        anyone: an object's name is its content, so whoever links first wins and the others'
        copies are identical. A writer killed here leaves only `tmp_obj_*` files, which
        `git gc` prunes like git's own.

        Every temp file is written before any is fsynced, and they are fsynced concurrently,
        so one commit costs about one disk flush, not one per object. Each object is linked
        into place only once all of them are durable.
        """
        staged: list[tuple[str, str]] = []
        try:
            for obj in objects:
                oid = obj.id.decode("ascii")
                directory = os.path.join(self._objects_dir, oid[:2])
                path = os.path.join(directory, oid[2:])
                try:
                    # Refresh the mtime so that a concurrent `git gc` does not prune it before
                    # the ref names it (as git and dulwich do for an object that exists).
                    os.utime(path, None)
                    continue
                except FileNotFoundError:
                    pass
                os.makedirs(directory, exist_ok=True)
                fd, tmp = open_new_temp(directory, "tmp_obj")
                with os.fdopen(fd, "wb") as f:
                    f.write(obj.as_legacy_object())
                staged.append((tmp, path))
            # All at once: the disk flushes concurrent fsyncs together (8 objects took 54 ms
            # one after the other and 7 ms at once on the development machine's ext4).
            for done in self._fsync_pool().map(_fsync_path, [tmp for tmp, _ in staged]):
                assert done is None
            for tmp, path in staged:
                try:
                    os.chmod(tmp, 0o444)
                    os.link(tmp, path)
                except FileExistsError:
                    pass  # written meanwhile by someone else, with the same bytes
        finally:
            for tmp, _ in staged:
                try:
                    os.unlink(tmp)
                except FileNotFoundError:
                    pass

    def compare_and_set(self, expected: str | None, new: str) -> bool:
        """Move refs/grite/wal from `expected` (None: absent) to `new`.

        Returns:
            Whether this call moved it; False when the ref moved meanwhile or another process
            holds its lock file.

        Raises:
            Environment: the ref could not be written (disk full, permissions).
        """
        try:
            with self._write_lock:
                if expected is None:
                    return bool(self._repo.refs.add_if_new(WAL_REF, new.encode("ascii")))
                return bool(
                    self._repo.refs.set_if_equals(
                        WAL_REF, expected.encode("ascii"), new.encode("ascii")
                    )
                )
        except FileLocked:
            return False
        except OSError as exc:
            raise Environment(
                f"cannot update refs/grite/wal in {self._git_dir}: {exc.strerror or exc}; "
                "check disk space and permissions (nothing was recorded)"
            ) from exc

    def read_entries(
        self, since: str | None = None, head: str | None = None, *, now_ms: int | None = None
    ) -> list[WalEntry]:
        """Read the valid WAL commits after `since` (exclusive) up to `head`, oldest first;
        invalid commits are skipped (every reader skips the same ones).

        Args:
            since: the last commit already seen, or None to read everything.
            head: where to start walking back (default: the current ref).
            now_ms: this machine's clock (default: now); events further ahead are invalid.

        Raises:
            CorruptData: a commit or one of its objects is missing or damaged.
            WalHistoryChanged: `since` is not an ancestor in the chain.
        """
        read = self.read_good_entries(since, head, now_ms=now_ms)
        if read.error is not None:
            raise read.error
        return read.entries

    def read_good_entries(
        self, since: str | None = None, head: str | None = None, *, now_ms: int | None = None
    ) -> WalRead:
        """Like read_entries, but stop short of damage instead of failing.

        Returns the valid commits after `since` that are older than the oldest damaged commit
        (all of them when none is damaged), oldest first, the error of that oldest damaged
        commit, and the invalid commits skipped on the way. Commits newer than a damaged one
        are held back, not skipped: the caller's view then stays at the last good commit, and
        a repaired commit (e.g. a missing blob fetched again) is picked up by the next
        catch-up like any other. A damaged commit whose own object is unreadable hides
        everything before it too (its parent is unknown), so nothing after `since`.

        Raises:
            WalHistoryChanged: `since` is not an ancestor in the chain.
        """
        now = _now_ms() if now_ms is None else now_ms
        oid = head if head is not None else self.head()
        entries: list[WalEntry] = []
        skipped: list[InvalidWalCommit] = []
        error: CorruptData | None = None
        while oid is not None and oid != since:
            try:
                entry, prev = self._read_commit(oid, now)
            except InvalidWalCommit as exc:
                skipped.append(exc)
                oid = exc.parent
                continue
            except CorruptData as exc:
                error = exc
                entries.clear()
                skipped.clear()
                prev = self._parent_of(oid)
                if prev is None:
                    return WalRead([], error, [])
                oid = prev
                continue
            entries.append(entry)
            oid = prev
        if since is not None and oid != since:
            raise WalHistoryChanged(f"WAL commit {since} is no longer in refs/grite/wal")
        entries.reverse()
        return WalRead(entries, error, skipped)

    def read_commit(self, oid: str, *, now_ms: int | None = None) -> WalEntry:
        """One WAL commit, fully checked (meta.json included): what `grite sync` and
        `grite doctor` ask of every commit they look at.

        Raises:
            InvalidWalCommit: the commit breaks the format (the message says how).
            CorruptData: it or one of its objects is missing or damaged.
        """
        return self._read_commit(oid, _now_ms() if now_ms is None else now_ms)[0]

    def parents(self, oid: str) -> list[str]:
        """The git parents of a commit, first parent first.

        Raises:
            CorruptData: it is missing or not a commit.
        """
        return self._header(oid).parents

    def commits_between(self, base: str | None, head: str | None) -> list[str]:
        """The commits on `head`'s chain that are not on `base`'s, newest first: what fetching
        `head` brings to a clone at `base` (or pushing `head` to a remote at `base`).

        Both chains are walked in turn, one commit at a time, until one reaches a commit the
        other has seen (their fork point), so the cost is the distance to the fork, not the
        length of the history.

        Raises:
            CorruptData: a commit on the way is missing or not a commit.
        """
        ahead: list[str] = []
        seen_head: set[str] = set()
        seen_base: set[str] = set()
        walkers = [head, base]
        while walkers[0] is not None or walkers[1] is not None:
            if walkers[0] is not None:
                oid = walkers[0]
                if oid in seen_base:
                    return ahead
                ahead.append(oid)
                seen_head.add(oid)
                walkers[0] = self._first_parent(oid)
            if walkers[1] is not None:
                oid = walkers[1]
                if oid in seen_head:
                    return ahead[: ahead.index(oid)]
                seen_base.add(oid)
                walkers[1] = self._first_parent(oid)
        return ahead

    def _first_parent(self, oid: str) -> str | None:
        parents = self._header(oid).parents
        return parents[0] if parents else None

    def _parent_of(self, oid: str) -> str | None:
        """The first git parent of a commit whose content is damaged; None if unknowable."""
        try:
            parents = self._header(oid).parents
        except (GriteError, KeyError, ValueError, OSError):
            return None
        return parents[0] if parents else None

    def _header(self, oid: str) -> _CommitHeader:
        try:
            type_num, raw = self._get_raw(oid.encode("ascii"), _MAX_COMMIT_OR_TREE_BYTES)
        except _TooLarge as exc:
            raise CorruptData(
                f"WAL commit {oid} is {exc.size} bytes, too large to be a WAL commit; "
                "run 'grite doctor'",
                {"commit": oid},
            ) from exc
        except (KeyError, ValueError, NotCommitError, ObjectFormatException) as exc:
            raise CorruptData(
                f"WAL commit {oid} is unreadable ({exc.__class__.__name__}: {exc}); "
                "run 'grite doctor' to see what is damaged",
                {"commit": oid},
            ) from exc
        if type_num != Commit.type_num:
            raise CorruptData(
                f"WAL object {oid} is not a commit (git type {type_num}); run 'grite doctor'",
                {"commit": oid},
            )
        return _parse_header(oid, raw)

    def _read_commit(self, oid: str, now_ms: int) -> tuple[WalEntry, str | None]:
        # Raw object reads and dulwich's C tree parser instead of full object construction:
        # catch-up reads 8 objects per commit, and building Commit/Tree objects for each was
        # most of the cost (2.3x slower, measured with benchmarks/bench_core.py).
        header = self._header(oid)
        parent = header.parents[0] if header.parents else None

        def invalid(reason: str, **details: object) -> InvalidWalCommit:
            return InvalidWalCommit(
                f"WAL commit {oid} is invalid: {reason}", {"commit": oid, **details}, parent
            )

        if len(header.parents) > 1:
            raise invalid(f"it has {len(header.parents)} parents (WAL commits have one)")
        if header.commit_time is None:
            raise invalid("its committer line has no time")
        try:
            root = self._tree(header.tree)
            meta_entry = root.get(b"meta.json")
            events_entry = root.get(b"events")
            if meta_entry is None or meta_entry[0] != _MODE_FILE:
                raise invalid("it has no meta.json file")
            if events_entry is None or events_entry[0] != _MODE_DIR:
                raise invalid("it has no events directory")
            meta = self._meta(meta_entry[1], invalid)
            if meta.prev_wal != parent:
                raise invalid(
                    f"meta.json names prev_wal {meta.prev_wal} but its git parent is {parent} "
                    "(the chain is followed through git parents only)",
                    field="prev_wal",
                )
            name, blob = self._chunk_path(events_entry[1], invalid)
            data = self._blob(blob, MAX_CHUNK_BYTES, invalid, "chunk")
        except CorruptData as exc:
            if "commit" in exc.details:
                raise
            raise _naming(exc, oid) from exc
        except _TooLarge as exc:
            raise invalid(f"a tree is {exc.size} bytes, too large for a WAL commit") from exc
        except (KeyError, ValueError, NotCommitError, ObjectFormatException) as exc:
            raise CorruptData(
                f"WAL commit {oid} is unreadable ({exc.__class__.__name__}: {exc}); "
                "run 'grite doctor' to see what is damaged",
                {"commit": oid},
            ) from exc
        digest = chunk_hash(data)
        if name != f"{digest}.bin" or meta.chunk_hash != digest:
            if not _matches_git_id(blob, data):
                raise CorruptData(
                    f"WAL commit {oid}: git object {blob.decode()} is damaged (its content "
                    "does not match its id); run 'git fsck' and fetch it again",
                    {"commit": oid},
                )
            raise invalid(
                f"chunk {name} fails its hash (computed {digest}, meta.json says "
                f"{meta.chunk_hash})",
                chunk=name,
            )
        try:
            events = decode_chunk(data)
        except CorruptData as exc:
            raise InvalidWalCommit(
                f"WAL commit {oid} is invalid: {exc.message}",
                {**exc.details, "commit": oid},
                parent,
            ) from exc
        self._check_times(events, header.commit_time, now_ms, invalid)
        return WalEntry(commit=oid, actor=meta.actor_id, chunk_hash=digest, events=events), parent

    def _meta(self, oid: bytes, invalid: Callable[..., InvalidWalCommit]) -> _WalMeta:
        raw = self._blob(oid, MAX_META_BYTES, invalid, "meta.json")
        try:
            meta = _meta_decoder.decode(raw)
        except msgspec.DecodeError as exc:
            raise invalid(f"meta.json does not decode ({exc})", field="meta.json") from exc
        if meta.schema_version != 1:
            raise invalid(f"meta.json has schema_version {meta.schema_version}, not 1")
        if _HEX32.fullmatch(meta.actor_id) is None:
            raise invalid("meta.json's actor_id is not 32 lowercase hex characters")
        if _HEX64.fullmatch(meta.chunk_hash) is None:
            raise invalid("meta.json's chunk_hash is not 64 lowercase hex characters")
        return meta

    def _chunk_path(
        self, events_tree: bytes, invalid: Callable[..., InvalidWalCommit]
    ) -> tuple[str, bytes]:
        """(name, blob id) of the one chunk at events/YYYY/MM/DD/<hash>.bin. Every level holds
        exactly one entry, as grite and grite 0.5.3 write it; anything else is refused
        rather than walked (a tree can nest or fan out without bound)."""
        oid = events_tree
        path = "events"
        for depth in range(_EVENTS_DEPTH):
            entries = self._tree(oid)
            if len(entries) != 1:
                raise invalid(f"{path}/ holds {len(entries)} entries, not one")
            ((name, (mode, oid)),) = entries.items()
            text = name.decode("utf-8", "replace")
            path = f"{path}/{text}"
            leaf = depth == _EVENTS_DEPTH - 1
            if leaf:
                misplaced = mode != _MODE_FILE or _CHUNK_NAME.fullmatch(text) is None
            else:
                misplaced = mode != _MODE_DIR
            if misplaced:
                raise invalid(f"{path!r} is not where a chunk belongs (events/YYYY/MM/DD/*.bin)")
        return path.rsplit("/", 1)[1], oid

    def _blob(
        self, oid: bytes, limit: int, invalid: Callable[..., InvalidWalCommit], what: str
    ) -> bytes:
        try:
            type_num, data = self._get_raw(oid, limit)
        except _TooLarge as exc:
            raise invalid(f"{what} is {exc.size} bytes, more than the {limit} allowed") from exc
        if type_num != Blob.type_num:
            raise invalid(f"{what} is not a file")
        return data

    @staticmethod
    def _check_times(
        events: list[Event], commit_time: int, now_ms: int, invalid: Callable[..., InvalidWalCommit]
    ) -> None:
        after_commit = commit_time * 1000 + FUTURE_SKEW_MS
        after_clock = now_ms + FUTURE_SKEW_MS
        for e in events:
            if e.ts_unix_ms > after_commit or e.ts_unix_ms > after_clock:
                whose = "its commit" if e.ts_unix_ms > after_commit else "this machine's clock"
                raise invalid(
                    f"event {e.event_id.hex()} has ts_unix_ms {e.ts_unix_ms} "
                    f"({_iso(e.ts_unix_ms)}), more than 24 hours after {whose}",
                    event_id=e.event_id.hex(),
                    field="ts_unix_ms",
                )

    def _get_raw(self, oid: bytes, limit: int | None = None) -> tuple[int, bytes]:
        """(git type number, body) of an object; `_TooLarge` when it is over `limit` bytes.

        Loose objects are read here directly: git's loose format is just zlib of
        `<type> <size>\\x00<body>`, while dulwich's lookup first searches every pack and then
        builds an object, which made catch-up three times slower (measured with
        benchmarks/bench_core.py). No more than `limit` bytes are ever inflated, so a small
        hostile object cannot expand without bound. Packed and alternate objects still go
        through dulwich (which inflates them whole; the limit is checked after).
        """
        if _OID.fullmatch(oid) is None:
            # Never a path: an id from a commit or ref becomes objects/xx/yyyy below.
            raise CorruptData(f"{oid!r} is not a git object id; run 'grite doctor'")
        name = oid.decode("ascii")
        try:
            with open(f"{self._objects_dir}/{name[:2]}/{name[2:]}", "rb") as f:
                compressed = f.read()
        except FileNotFoundError:
            type_num, body = self._repo.object_store.get_raw(oid)
            if limit is not None and len(body) > limit:
                raise _TooLarge(len(body)) from None
            return type_num, body
        try:
            if limit is None:
                data = zlib.decompress(compressed)
            else:
                # Inflate at most what the limit allows (plus the header): a small hostile
                # object cannot expand without bound.
                data = zlib.decompressobj().decompress(compressed, limit + _MAX_HEADER)
        except zlib.error as exc:
            raise CorruptData(f"git object {name} is damaged ({exc}); run 'git fsck'") from exc
        end = data.find(b"\0", 0, _MAX_HEADER)
        kind, _, size_text = data[: max(end, 0)].partition(b" ")
        loose_type = _TYPE_NUMS.get(kind)
        if end < 0 or loose_type is None or not size_text.isdigit():
            raise CorruptData(f"git object {name} has a bad header; run 'git fsck'")
        size = int(size_text)
        if limit is not None and size > limit:
            raise _TooLarge(size)
        body = data[end + 1 :]
        if len(body) != size:
            raise CorruptData(
                f"git object {name} is damaged (its size is not {size}); run 'git fsck'"
            )
        return loose_type, body

    def _tree(self, oid: bytes) -> dict[bytes, tuple[int, bytes]]:
        type_num, raw = self._get_raw(oid, _MAX_COMMIT_OR_TREE_BYTES)
        if type_num != Tree.type_num:
            raise CorruptData(f"WAL object {oid.decode()} should be a tree")
        return {name: (mode, sha) for name, mode, sha in parse_tree(raw, **_TREE_SHA)}


def _tree_sha_argument() -> dict[str, int]:
    # Newer dulwich parses trees of SHA-256 repositories too and takes the hash length
    # (parse_tree(text, sha_len)); the releases pyproject.toml still allows (0.22) take
    # (text, strict) only, and a length passed there is taken for `strict`.
    try:
        parse_tree(b"", sha_len=20)
    except TypeError:
        return {}
    return {"sha_len": 20}


_TREE_SHA = _tree_sha_argument()


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


def _iso(ts_ms: int) -> str:
    return datetime.fromtimestamp(ts_ms / 1000, tz=timezone.utc).strftime("%Y-%m-%d %H:%M UTC")


def _parse_header(oid: str, raw: bytes) -> _CommitHeader:
    """Tree, parents and committer time from a raw commit (headers end at the first blank
    line; continuation lines of a signature start with a space and are ignored)."""
    tree: bytes | None = None
    parents: list[str] = []
    commit_time: int | None = None
    for line in raw.split(b"\n\n", 1)[0].split(b"\n"):
        if line.startswith(b"tree "):
            tree = line[5:]
        elif line.startswith(b"parent "):
            parents.append(line[7:].decode("ascii", "replace"))
        elif line.startswith(b"committer "):
            fields = line.rsplit(b" ", 2)
            if len(fields) == 3 and fields[1].lstrip(b"-").isdigit():
                commit_time = int(fields[1])
    if tree is None or _OID.fullmatch(tree) is None:
        raise CorruptData(f"WAL commit {oid} has no tree", {"commit": oid})
    if any(_OID.fullmatch(p.encode()) is None for p in parents):
        # A parent is later used to find an object file: anything but an object id is refused.
        raise CorruptData(f"WAL commit {oid} has a malformed parent line", {"commit": oid})
    return _CommitHeader(tree=tree, parents=parents, commit_time=commit_time)


def _matches_git_id(oid: bytes, data: bytes) -> bool:
    """Whether a blob's bytes hash to its git id (SHA-1): else the local copy is damaged."""
    actual = hashlib.sha1(b"blob %d\x00" % len(data) + data, usedforsecurity=False)
    return actual.hexdigest().encode("ascii") == oid


def _check_outgoing(data: bytes, commit_time: int) -> None:
    """Refuse to write a chunk that readers would refuse (a bad field or a clock too far
    ahead): a write is either readable by every clone or not made at all."""
    try:
        events = decode_chunk(data)
        Wal._check_times(events, commit_time, commit_time * 1000, _refuse_write)
    except CorruptData as exc:
        raise InvalidArgs(
            f"cannot record this: {exc.message.removeprefix('WAL commit new is invalid: ')}; "
            "nothing was recorded",
            dict(exc.details),
        ) from exc


def _refuse_write(reason: str, **details: object) -> InvalidWalCommit:
    return InvalidWalCommit(f"WAL commit new is invalid: {reason}", dict(details), None)


def _fsync_path(path: str) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _naming(exc: CorruptData, oid: str) -> CorruptData:
    """`exc` with the WAL commit it was found in, for errors raised below commit level."""
    return CorruptData(f"WAL commit {oid}: {exc.message}", {**exc.details, "commit": oid})


def append_with_retry(
    wal: Wal,
    actor: bytes,
    events: list[Event],
    *,
    before_try: Callable[[str | None], bool | list[Event]] | None = None,
    max_wait_seconds: float = 30.0,
    give_up_seconds: float = 120.0,
    stale_lock_seconds: float = STALE_LOCK_SECONDS,
) -> tuple[str | None, bool]:
    """Append `events`, retrying on a lost compare-and-swap until it wins.

    A lost race is never a lost event: the commit is rebuilt on the new head and tried again,
    with a short randomized backoff so many writers make progress.

    Args:
        before_try: called with the head about to be used; returning False means the events are
            already in the WAL (a retried request), so nothing is appended; returning a list
            appends those events instead of `events` (a group commit leaves out the writes
            that are already in the WAL), an empty list meaning nothing.
        stale_lock_seconds: a `refs/grite/wal.lock` older than this was left by a writer that
            died holding it; it is removed and the append retried (see grite.storage.ref_lock).

    Returns:
        (head after the call, whether this call appended).

    `max_wait_seconds` counts from the last time the ref moved: while other writers keep
    winning, the ref is busy, not stuck, and this writer keeps trying (for `give_up_seconds`
    in all), so a burst of contention is never reported as a lock nobody releases.

    Raises:
        Environment: the ref did not move for `max_wait_seconds` (a lock that never looked
            abandoned), or this writer lost every race for `give_up_seconds`.
    """
    started = time.monotonic()
    deadline = started + max_wait_seconds
    delay = 0.001
    while True:
        parent = wal.head()
        todo = events
        if before_try is not None:
            verdict = before_try(parent)
            if not verdict:
                return parent, False
            if isinstance(verdict, list):
                todo = verdict
        new = wal.try_append(actor, todo, parent)
        if new is not None:
            return new, True
        lock = os.path.join(wal.git_dir, "refs", "grite", "wal.lock")
        guard = os.path.join(wal.git_dir, "grite", "wal-lock-break.lock")
        if break_stale_lock(lock, guard, stale_lock_seconds):
            continue
        if wal.head() != parent:
            # Another writer won this race: the ref is busy, not stuck.
            deadline = min(time.monotonic() + max_wait_seconds, started + give_up_seconds)
        if time.monotonic() > deadline:
            if not os.path.lexists(lock):
                raise Environment(
                    f"refs/grite/wal kept moving under this write for "
                    f"{time.monotonic() - started:.0f}s (other writers won every race); "
                    "nothing was recorded: retry",
                    {"contended": True},
                )
            raise Environment(
                f"refs/grite/wal stayed locked for {max_wait_seconds:.0f}s; if no git or grite "
                f"process is running, remove {lock} and retry (nothing was recorded)",
                {"lock": lock},
            )
        time.sleep(delay * (1 + random.random()))
        delay = min(delay * 2, 0.05)
