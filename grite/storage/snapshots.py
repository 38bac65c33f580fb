"""Snapshots: `refs/grite/snapshots/<created_ms>`, parentless commits holding every WAL event
up to a WAL head (as grite 0.5.3:
https://github.com/neul-labs/grite/blob/main/crates/libgrite-git/src/snapshot.rs).

Tree: `events/NNNN.bin` (GRITECNK chunks of at most 1000 events, in order) and `snapshot.json`
(pretty JSON `{schema_version, created_ts, wal_head, event_count, chunks:[{path, chunk_hash,
event_count}]}`); author `grite <grit@local>`, message `Snapshot: <n> events at <ms>`. Refs are
created only if absent; reads verify every chunk hash and event id.

Snapshot refs travel like any other ref (`git clone --mirror`, `git fetch` of `refs/grite/*`),
and nothing ties a snapshot's events to the WAL it names: a forged one could seed a view with
issues the WAL never held. So a snapshot is only used (to seed an empty view, for `rebuild
--from-snapshot`, as the base of the next snapshot) once this clone trusts it: it made it, or
`grite doctor --fix` compared it with the WAL. The trusted commit ids are listed, one per line,
in `<git_dir>/grite/trusted-snapshots`, a file of this clone that no fetch or clone copies.

Only storage touches dulwich.
"""

from __future__ import annotations

import json
import os
import re
import time

import msgspec
from dulwich.errors import NotCommitError, ObjectFormatException
from dulwich.file import FileLocked
from dulwich.objects import Blob, Commit, Tree

from grite.model.chunk import chunk_hash, decode_chunk, encode_chunk
from grite.model.errors import CorruptData, Environment
from grite.model.events import Event
from grite.model.limits import MAX_SNAPSHOT_META_BYTES
from grite.storage.config import write_atomic
from grite.storage.gitrepo import open_git_repo, update_ref_or_lose

__all__ = ["CHUNK_EVENTS", "SNAPSHOTS_PREFIX", "SnapshotInfo", "SnapshotStore"]

SNAPSHOTS_PREFIX = b"refs/grite/snapshots/"
CHUNK_EVENTS = 1000
_IDENTITY = b"grite <grit@local>"
_MODE_FILE = 0o100644
_MODE_DIR = 0o040000
_TRUST_FILE = "trusted-snapshots"
_OID = re.compile(r"[0-9a-f]{40}")


class _ChunkMeta(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    path: str
    chunk_hash: str
    event_count: int


# Unknown fields are refused rather than skipped: skipping a deeply nested value recurses
# without bound.
class _SnapshotMeta(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    schema_version: int = 1
    created_ts: int
    wal_head: str | None = None
    event_count: int
    chunks: list[_ChunkMeta] = []


class SnapshotInfo(msgspec.Struct, frozen=True, kw_only=True):
    """One snapshot ref; `timestamp` comes from the ref name (0 when it is not a number)."""

    ref: str
    oid: str
    timestamp: int
    wal_head: str | None = None
    event_count: int | None = None
    trusted: bool = False


class SnapshotStore:
    """The snapshot refs of one repository."""

    def __init__(self, git_dir: str) -> None:
        self._repo = open_git_repo(git_dir)
        self._git_dir = git_dir
        self._trust_path = os.path.join(git_dir, "grite", _TRUST_FILE)

    def close(self) -> None:
        self._repo.close()

    def __enter__(self) -> SnapshotStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def list(self, *, trusted_only: bool = False) -> list[SnapshotInfo]:
        """Snapshot refs, newest first (by the timestamp in the name, then name).

        Args:
            trusted_only: only the snapshots this clone made or verified (the only ones any
                reader may use).
        """
        trusted = self._trusted()
        found = []
        for name, oid in self._repo.refs.as_dict(SNAPSHOTS_PREFIX.rstrip(b"/")).items():
            text = name.decode("utf-8", "replace")
            stamp = int(text) if text.isdigit() and len(text) < 16 else 0
            oid_text = oid.decode("ascii", "replace")
            if trusted_only and oid_text not in trusted:
                continue
            found.append(
                SnapshotInfo(
                    ref=(SNAPSHOTS_PREFIX + name).decode("utf-8", "replace"),
                    oid=oid_text,
                    timestamp=stamp,
                    trusted=oid_text in trusted,
                )
            )
        found.sort(key=lambda s: (s.timestamp, s.ref), reverse=True)
        return found

    def _trusted(self) -> set[str]:
        try:
            with open(self._trust_path, encoding="ascii", errors="replace") as f:
                return {line.strip() for line in f if _OID.fullmatch(line.strip())}
        except FileNotFoundError:
            return set()
        except OSError as exc:
            raise Environment(
                f"cannot read {self._trust_path}: {exc.strerror or exc}; check its permissions"
            ) from exc

    def trust(self, info: SnapshotInfo) -> None:
        """Record that this clone made `info`, or compared it with the WAL, so it may be used.
        Ids of snapshots whose refs are gone are dropped from the list."""
        current = {i.oid for i in self.list()}
        trusted = (self._trusted() & current) | {info.oid}
        try:
            write_atomic(self._trust_path, "".join(f"{o}\n" for o in sorted(trusted)).encode())
        except OSError as exc:
            raise Environment(
                f"cannot write {self._trust_path}: {exc.strerror or exc}; check disk space and "
                "permissions"
            ) from exc

    def describe(self, info: SnapshotInfo) -> SnapshotInfo:
        """`info` with wal_head and event_count read from its snapshot.json.

        Raises:
            CorruptData: the snapshot commit or its snapshot.json is unreadable.
        """
        meta, _tree = self._meta(info.oid)
        return msgspec.structs.replace(info, wal_head=meta.wal_head, event_count=meta.event_count)

    def _meta(self, oid: str) -> tuple[_SnapshotMeta, Tree]:
        store = self._repo.object_store
        try:
            commit = store[oid.encode("ascii")]
            if not isinstance(commit, Commit):
                raise CorruptData(f"snapshot {oid} is not a commit", {"commit": oid})
            tree = store[commit.tree]
            if not isinstance(tree, Tree):
                raise CorruptData(f"snapshot {oid} has no tree", {"commit": oid})
            raw = store[tree[b"snapshot.json"][1]].as_raw_string()
            if len(raw) > MAX_SNAPSHOT_META_BYTES:
                raise CorruptData(
                    f"snapshot {oid}: snapshot.json is {len(raw)} bytes, more than the "
                    f"{MAX_SNAPSHOT_META_BYTES} allowed; delete the snapshot",
                    {"commit": oid},
                )
            return msgspec.json.decode(raw, type=_SnapshotMeta), tree
        except CorruptData:
            raise
        except (
            KeyError,
            ValueError,
            NotCommitError,
            ObjectFormatException,
            msgspec.DecodeError,
        ) as exc:
            raise CorruptData(
                f"snapshot {oid} is unreadable ({exc.__class__.__name__}: {exc}); delete it "
                "with 'grite snapshot gc' or 'git update-ref -d', then create a new one",
                {"commit": oid},
            ) from exc

    def read(self, info: SnapshotInfo) -> tuple[SnapshotInfo, list[Event]]:
        """The snapshot's events in stored order, each chunk and event id verified.

        Raises:
            CorruptData: a chunk is missing or fails its hash.
        """
        meta, tree = self._meta(info.oid)
        store = self._repo.object_store
        events: list[Event] = []
        for chunk in meta.chunks:
            try:
                sub = store[tree[b"events"][1]]
                assert isinstance(sub, Tree)
                data = store[sub[chunk.path.split("/", 1)[1].encode()][1]].as_raw_string()
            except (KeyError, AssertionError, IndexError, ValueError) as exc:
                raise CorruptData(
                    f"snapshot {info.oid}: chunk {chunk.path} is missing; delete the snapshot",
                    {"commit": info.oid},
                ) from exc
            if chunk_hash(data) != chunk.chunk_hash:
                raise CorruptData(
                    f"snapshot {info.oid}: chunk {chunk.path} fails its hash; delete the snapshot",
                    {"commit": info.oid},
                )
            try:
                events.extend(decode_chunk(data))
            except CorruptData as exc:
                raise CorruptData(
                    f"snapshot {info.oid}: {exc.message}; delete the snapshot",
                    {"commit": info.oid},
                ) from exc
        if len(events) != meta.event_count:
            raise CorruptData(
                f"snapshot {info.oid} declares {meta.event_count} events but holds "
                f"{len(events)}; delete the snapshot",
                {"commit": info.oid},
            )
        described = msgspec.structs.replace(
            info, wal_head=meta.wal_head, event_count=meta.event_count
        )
        return described, events

    def create(self, created_ms: int, wal_head: str, events: list[Event]) -> SnapshotInfo | None:
        """Write a snapshot of `events` (the whole WAL up to `wal_head`).

        Returns:
            The new snapshot, or None when `refs/grite/snapshots/<created_ms>` already exists.
        """
        if not events:
            raise ValueError("cannot snapshot an empty list of events")
        blobs: list[Blob] = []
        chunks: list[_ChunkMeta] = []
        events_tree = Tree()
        for n, start in enumerate(range(0, len(events), CHUNK_EVENTS)):
            part = events[start : start + CHUNK_EVENTS]
            data = encode_chunk(part)
            blob = Blob.from_string(data)
            blobs.append(blob)
            name = f"{n:04d}.bin"
            events_tree.add(name.encode(), _MODE_FILE, blob.id)
            chunks.append(
                _ChunkMeta(
                    path=f"events/{name}", chunk_hash=chunk_hash(data), event_count=len(part)
                )
            )
        meta = {
            "schema_version": 1,
            "created_ts": created_ms,
            "wal_head": wal_head,
            "event_count": len(events),
            "chunks": [msgspec.to_builtins(c) for c in chunks],
        }
        meta_blob = Blob.from_string(json.dumps(meta, indent=2).encode("utf-8"))
        root = Tree()
        root.add(b"events", _MODE_DIR, events_tree.id)
        root.add(b"snapshot.json", _MODE_FILE, meta_blob.id)
        commit = Commit()
        commit.tree = root.id
        commit.parents = []
        commit.author = commit.committer = _IDENTITY
        commit.author_time = commit.commit_time = int(time.time())
        commit.author_timezone = commit.commit_timezone = 0
        commit.encoding = b"UTF-8"
        commit.message = f"Snapshot: {len(events)} events at {created_ms}".encode()
        ref = SNAPSHOTS_PREFIX + str(created_ms).encode()
        try:
            for obj in (*blobs, events_tree, meta_blob, root, commit):
                self._repo.object_store.add_object(obj)
            won = update_ref_or_lose(
                self._git_dir, lambda: self._repo.refs.add_if_new(ref, commit.id)
            )
        except FileLocked:
            return None
        except OSError as exc:
            raise Environment(
                f"cannot write a snapshot in {self._git_dir}: {exc.strerror or exc}; "
                "check disk space and permissions"
            ) from exc
        if not won:
            return None
        info = SnapshotInfo(
            ref=ref.decode(),
            oid=commit.id.decode("ascii"),
            timestamp=created_ms,
            wal_head=wal_head,
            event_count=len(events),
            trusted=True,
        )
        self.trust(info)
        return info

    def delete(self, info: SnapshotInfo) -> bool:
        try:
            name, old = info.ref.encode(), info.oid.encode()
            return bool(
                update_ref_or_lose(
                    self._git_dir, lambda: self._repo.refs.remove_if_equals(name, old)
                )
            )
        except FileLocked:
            return False
