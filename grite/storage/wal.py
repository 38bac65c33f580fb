"""The write-ahead log: `refs/grite/wal` in git, one commit per append (reference section 5.4).

Each commit's tree holds `meta.json` and one `GRITECNK` chunk at `events/YYYY/MM/DD/<hash>.bin`;
`meta.prev_wal` links to the previous WAL commit (also its git parent, so `git log` and
`git fsck` see an ordinary history). The ref moves only by compare-and-swap: `try_append`
reports whether it won, and `append_with_retry` is the one retry policy. Reads verify the
chunk hash and every event id, and refuse bad data naming the commit.

Only this module (with the rest of storage) touches dulwich.
"""

from __future__ import annotations

import json
import os
import random
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
from grite.model.errors import CorruptData, Environment, GriteError
from grite.model.events import Event
from grite.storage.gitrepo import open_git_repo
from grite.storage.reflock import STALE_LOCK_SECONDS, break_stale_lock

__all__ = ["WAL_REF", "Wal", "WalEntry", "WalHistoryChanged", "append_with_retry"]

WAL_REF = b"refs/grite/wal"
_IDENTITY = b"grite <grit@local>"
_MODE_FILE = 0o100644
_MODE_DIR = 0o040000
_TYPE_NUMS = {b"commit": 1, b"tree": 2, b"blob": 3, b"tag": 4}


class WalEntry(msgspec.Struct, frozen=True, kw_only=True):
    """One WAL commit and the events of its chunk, in stored order."""

    commit: str
    actor: str
    chunk_hash: str
    events: list[Event]


class WalHistoryChanged(GriteError):
    """The commit a reader stopped at last time is no longer in the WAL's chain."""

    code = "internal"


class Wal:
    """The WAL of one repository. Safe to share between threads of one process."""

    def __init__(self, git_dir: str, *, check_meta: bool = False) -> None:
        """Args:
        check_meta: also read every commit's meta.json and check its chunk hash and prev_wal
            (doctor does; catch-up relies on the chunk's content-addressed name instead).
        """
        self._check_meta = check_meta
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
        digest = chunk_hash(data)
        meta = {
            "schema_version": 1,
            "actor_id": actor.hex(),
            "chunk_hash": digest,
            "prev_wal": parent,
        }
        day = datetime.fromtimestamp(events[0].ts_unix_ms / 1000, tz=timezone.utc)
        chunk_blob = Blob.from_string(data)
        meta_blob = Blob.from_string(json.dumps(meta, indent=2).encode("utf-8"))
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
        now = int(time.time())
        commit.author_time = commit.commit_time = now
        commit.author_timezone = commit.commit_timezone = 0
        commit.encoding = b"UTF-8"
        commit.message = f"WAL: {len(events)} events from {actor.hex()[:8]}".encode()
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
            for n, obj in enumerate(objects):
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
                tmp = os.path.join(directory, f"tmp_obj_{os.getpid()}_{threading.get_ident()}_{n}")
                with open(tmp, "wb") as f:
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

    def read_entries(self, since: str | None = None, head: str | None = None) -> list[WalEntry]:
        """Read WAL commits after `since` (exclusive) up to `head`, oldest first.

        Args:
            since: the last commit already seen, or None to read everything.
            head: where to start walking back (default: the current ref).

        Raises:
            CorruptData: a commit, its meta.json or its chunk is missing or fails its hash.
            WalHistoryChanged: `since` is not an ancestor in the chain.
        """
        oid = head if head is not None else self.head()
        entries: list[WalEntry] = []
        while oid is not None and oid != since:
            entry, prev = self._read_commit(oid)
            entries.append(entry)
            oid = prev
        if since is not None and oid != since:
            raise WalHistoryChanged(f"WAL commit {since} is no longer in refs/grite/wal")
        entries.reverse()
        return entries

    def read_good_entries(
        self, since: str | None = None, head: str | None = None
    ) -> tuple[list[WalEntry], CorruptData | None]:
        """Like read_entries, but stop short of damage instead of failing.

        Returns the commits after `since` that are older than the oldest bad commit (all of
        them when none is bad), oldest first, and the error of that oldest bad commit. Commits
        newer than a bad one are held back, not skipped: the caller's view then stays at the
        last good commit, and a repaired commit (e.g. a missing blob fetched again) is picked
        up by the next catch-up like any other. A bad commit whose own object is unreadable
        hides everything before it too (its parent is unknown), so nothing after `since`.

        Raises:
            WalHistoryChanged: `since` is not an ancestor in the chain.
        """
        oid = head if head is not None else self.head()
        entries: list[WalEntry] = []
        error: CorruptData | None = None
        while oid is not None and oid != since:
            try:
                entry, prev = self._read_commit(oid)
            except CorruptData as exc:
                error = exc
                entries.clear()
                prev = self._parent_of(oid)
                if prev is None:
                    return [], error
                oid = prev
                continue
            entries.append(entry)
            oid = prev
        if since is not None and oid != since:
            raise WalHistoryChanged(f"WAL commit {since} is no longer in refs/grite/wal")
        entries.reverse()
        return entries, error

    def _parent_of(self, oid: str) -> str | None:
        """The first git parent of a commit whose content is damaged; None if unknowable."""
        try:
            type_num, raw = self._get_raw(oid.encode("ascii"))
        except (GriteError, KeyError, ValueError, OSError):
            return None
        if type_num != Commit.type_num:
            return None
        for line in raw.split(b"\n", 3)[:3]:
            if line.startswith(b"parent "):
                return line[7:].decode("ascii")
        return None

    def _read_commit(self, oid: str) -> tuple[WalEntry, str | None]:
        # Raw object reads and dulwich's C tree parser instead of full object construction:
        # catch-up reads 7 objects per commit, and building Commit/Tree objects for each was
        # most of the cost (2.3x slower, measured with benchmarks/bench_core.py).
        try:
            type_num, raw = self._get_raw(oid.encode("ascii"))
            if type_num != Commit.type_num:
                raise CorruptData(
                    f"WAL object {oid} is not a commit (git type {type_num}); run 'grite doctor'",
                    {"commit": oid},
                )
            tree_oid: bytes | None = None
            parent: bytes | None = None
            for line in raw.split(b"\n", 3)[:3]:
                if line.startswith(b"tree "):
                    tree_oid = line[5:]
                elif line.startswith(b"parent ") and parent is None:
                    parent = line[7:]
            if tree_oid is None:
                raise CorruptData(f"WAL commit {oid} has no tree", {"commit": oid})
            root = self._tree(tree_oid)
            meta = None
            if self._check_meta or parent is None:
                meta = json.loads(self._get_raw(root[b"meta.json"][1])[1])
            chunks = self._chunk_blobs(root[b"events"][1], "events/")
        except CorruptData as exc:
            if "commit" in exc.details:
                raise
            raise _naming(exc, oid) from exc
        except GriteError:
            raise
        except (KeyError, ValueError, NotCommitError, ObjectFormatException) as exc:
            raise CorruptData(
                f"WAL commit {oid} is unreadable ({exc.__class__.__name__}: {exc}); "
                "run 'grite doctor' to see what is damaged",
                {"commit": oid},
            ) from exc
        events: list[Event] = []
        declared = None if meta is None else meta.get("chunk_hash")
        digest = ""
        for name, data in chunks:
            digest = chunk_hash(data)
            if name != f"{digest}.bin" or (declared is not None and declared != digest):
                raise CorruptData(
                    f"WAL commit {oid}: chunk {name} fails its hash (computed {digest}); "
                    "the chunk was altered; run 'grite doctor'",
                    {"commit": oid, "chunk": name},
                )
            try:
                events.extend(decode_chunk(data))
            except CorruptData as exc:
                raise CorruptData(
                    f"WAL commit {oid}: {exc.message}; run 'grite doctor'",
                    {"commit": oid, **exc.details},
                ) from exc
        # meta.prev_wal and the first git parent are written equal (by grite 0.5.3 too); the
        # chain is followed through the parent, and meta is read where it decides something.
        prev = parent.decode("ascii") if parent is not None else None
        if meta is not None and meta.get("prev_wal") is not None:
            prev = str(meta["prev_wal"])
        entry = WalEntry(
            commit=oid,
            actor="" if meta is None else str(meta.get("actor_id", "")),
            chunk_hash=digest,
            events=events,
        )
        return entry, prev

    def _get_raw(self, oid: bytes) -> tuple[int, bytes]:
        """(git type number, body) of an object.

        Loose objects are read here directly: git's loose format is just zlib of
        `<type> <size>\\x00<body>`, while dulwich's lookup first searches every pack and then
        builds an object, which made catch-up three times slower (measured with
        benchmarks/bench_core.py). Packed and alternate objects still go through dulwich.
        """
        path = os.path.join(self._objects_dir, oid[:2].decode("ascii"), oid[2:].decode("ascii"))
        try:
            with open(path, "rb") as f:
                data = zlib.decompress(f.read())
        except FileNotFoundError:
            return self._repo.object_store.get_raw(oid)
        except zlib.error as exc:
            raise CorruptData(
                f"git object {oid.decode()} is damaged ({exc}); run 'git fsck'"
            ) from exc
        end = data.find(b"\0")
        kind = data[: data.find(b" ")]
        type_num = _TYPE_NUMS.get(kind)
        if end < 0 or type_num is None:
            raise CorruptData(f"git object {oid.decode()} has a bad header; run 'git fsck'")
        return type_num, data[end + 1 :]

    def _tree(self, oid: bytes) -> dict[bytes, tuple[int, bytes]]:
        type_num, raw = self._get_raw(oid)
        if type_num != Tree.type_num:
            raise CorruptData(f"WAL object {oid.decode()} should be a tree")
        return {name: (mode, sha) for name, mode, sha in parse_tree(raw, 20)}

    def _chunk_blobs(self, tree_oid: bytes, prefix: str) -> list[tuple[str, bytes]]:
        found = []
        for name, (mode, sha) in sorted(self._tree(tree_oid).items()):
            text = name.decode("utf-8", "replace")
            if mode == _MODE_DIR:
                found.extend(self._chunk_blobs(sha, f"{prefix}{text}/"))
            elif text.endswith(".bin"):
                found.append((text, self._get_raw(sha)[1]))
        return found


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
            died holding it; it is removed and the append retried (see grite.storage.reflock).

    Returns:
        (head after the call, whether this call appended).

    Raises:
        Environment: the ref stayed locked for `max_wait_seconds` by a lock that never looked
            abandoned.
    """
    deadline = time.monotonic() + max_wait_seconds
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
        if time.monotonic() > deadline:
            raise Environment(
                f"refs/grite/wal stayed locked for {max_wait_seconds:.0f}s; if no git or grite "
                f"process is running, remove {lock} and retry (nothing was recorded)",
                {"lock": lock},
            )
        time.sleep(delay * (1 + random.random()))
        delay = min(delay * 2, 0.05)
