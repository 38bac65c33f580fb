"""Lock refs: `refs/grite/locks/<sha256(resource)[:8] hex>`, one commit per lease, as grite 0.5.3
keeps them (https://github.com/neul-labs/grite/blob/main/crates/libgrite-git/src/lock_manager.rs).

Each lock commit's tree holds `lock.json` (pretty JSON `{owner, nonce, expires_unix_ms,
resource}`), author `grite <grit@localhost>`, message `Lock: <resource>`, parent = the previous
lock commit of that ref. The primitives report whether they won: `create` is an atomic
create-if-absent, `replace` and `delete` are compare-and-swap against the commit the caller
read. The retry and conflict policy lives in grite.ops.locks.

Only storage touches dulwich.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence

import msgspec
from dulwich.errors import NotCommitError, ObjectFormatException
from dulwich.file import FileLocked
from dulwich.objects import Blob, Commit, Tree

from grite.model.errors import Environment
from grite.model.leases import LockRecord, lock_ref_name
from grite.storage.gitrepo import open_git_repo, update_ref_or_lose

__all__ = ["LOCKS_PREFIX", "LockStore", "StoredLock"]

LOCKS_PREFIX = b"refs/grite/locks/"
_IDENTITY = b"grite <grit@localhost>"
_MODE_FILE = 0o100644
# grite writes lock.json of about 200 bytes; one from elsewhere larger than this is ignored.
_MAX_LOCK_JSON = 64 * 1024


class StoredLock(msgspec.Struct, frozen=True, kw_only=True):
    """A lock as found on its ref: the record and the commit that holds it."""

    ref: str
    commit: str
    record: LockRecord


class LockStore:
    """The lock refs of one repository."""

    def __init__(self, git_dir: str) -> None:
        self._repo = open_git_repo(git_dir)
        self._git_dir = git_dir
        # Lock commits never change: what `known` read once stays true for this store's life.
        self._known: dict[str, StoredLock] = {}

    def close(self) -> None:
        self._repo.close()

    def __enter__(self) -> LockStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def refresh(self) -> None:
        """Nothing to do: this clone's refs are always read as they are now."""

    def refs_seen(self) -> dict[str, str]:
        """Every lock ref and its commit (ref name -> oid), without reading the commits."""
        return {
            (LOCKS_PREFIX + name).decode(): oid.decode("ascii")
            for name, oid in self._repo.refs.as_dict(LOCKS_PREFIX.rstrip(b"/")).items()
        }

    def has_object(self, oid: str) -> bool:
        return oid.encode("ascii") in self._repo.object_store

    def known(self, ref: str, oid: str) -> StoredLock | None:
        """The lease at commit `oid` of `ref`; a commit holding no readable lease reads as
        an expired one (so it can be replaced), a missing commit as None."""
        key = f"{ref}:{oid}"
        lock = self._known.get(key)
        if lock is None:
            lock = self.load(ref, oid)
            if lock is None:
                if not self.has_object(oid):
                    return None
                empty = LockRecord(owner="", nonce="", expires_unix_ms=0, resource="")
                lock = StoredLock(ref=ref, commit=oid, record=empty)
            self._known[key] = lock
        return lock

    def swap_where(
        self, decide: Callable[[dict[str, str]], dict[str, tuple[str | None, str | None]]]
    ) -> set[str]:
        """Change lock refs deciding from their values now: `decide` gets every lock ref
        (ref -> commit) and returns updates (ref -> (expected, new), None meaning absent),
        each a compare-and-swap. Returns the refs that moved."""
        updates = decide(self.refs_seen())
        return {ref for ref, (old, new) in updates.items() if self.move(ref, old, new)}

    def list(self) -> list[StoredLock]:
        """Every lock ref with a readable `lock.json`, sorted by resource."""
        found = []
        for name, oid in sorted(self._repo.refs.as_dict(LOCKS_PREFIX.rstrip(b"/")).items()):
            lock = self._load(LOCKS_PREFIX + name, oid)
            if lock is not None:
                found.append(lock)
        found.sort(key=lambda x: x.record.resource)
        return found

    def read(self, resource: str) -> StoredLock | None:
        ref = lock_ref_name(resource).encode()
        try:
            oid = self._repo.refs[ref]
        except KeyError:
            return None
        return self._load(ref, oid)

    def load(self, ref: str, oid: str) -> StoredLock | None:
        """The lease that commit `oid` holds as the value of `ref`, or None when the commit
        is missing or holds no readable `lock.json`."""
        return self._load(ref.encode(), oid.encode("ascii"))

    def _load(self, ref: bytes, oid: bytes) -> StoredLock | None:
        store = self._repo.object_store
        try:
            commit = store[oid]
            if not isinstance(commit, Commit):
                return None
            tree = store[commit.tree]
            if not isinstance(tree, Tree):
                return None
            raw = store[tree[b"lock.json"][1]].as_raw_string()
            if len(raw) > _MAX_LOCK_JSON:
                return None
            record = msgspec.json.decode(raw, type=LockRecord)
        except (
            KeyError,
            ValueError,
            NotCommitError,
            ObjectFormatException,
            msgspec.DecodeError,
            RecursionError,  # a deeply nested unknown field (lock refs come from other clones)
        ):
            # Not a lock we can read (foreign or damaged): invisible, as in the reference.
            return None
        return StoredLock(ref=ref.decode(), commit=oid.decode("ascii"), record=record)

    def _commit(self, record: LockRecord, parent: str | None) -> bytes:
        body = {
            "owner": record.owner,
            "nonce": record.nonce,
            "expires_unix_ms": record.expires_unix_ms,
            "resource": record.resource,
        }
        blob = Blob.from_string(json.dumps(body, indent=2).encode("utf-8"))
        tree = Tree()
        tree.add(b"lock.json", _MODE_FILE, blob.id)
        commit = Commit()
        commit.tree = tree.id
        commit.parents = [parent.encode("ascii")] if parent else []
        commit.author = commit.committer = _IDENTITY
        commit.author_time = commit.commit_time = int(time.time())
        commit.author_timezone = commit.commit_timezone = 0
        commit.encoding = b"UTF-8"
        commit.message = f"Lock: {record.resource}".encode()
        try:
            for obj in (blob, tree, commit):
                self._repo.object_store.add_object(obj)
        except OSError as exc:
            raise Environment(
                f"cannot write a lock in {self._git_dir}: {exc.strerror or exc}; "
                "check disk space and permissions"
            ) from exc
        return commit.id  # type: ignore[no-any-return]

    def write_commit(self, record: LockRecord, parent: str | None) -> str:
        """Store a lock commit for `record` on top of `parent`, moving no ref; its id."""
        return self._commit(record, parent).decode("ascii")

    def move(self, ref: str, expected: str | None, new: str | None) -> bool:
        """Compare-and-swap a lock ref: from `expected` to `new` (None: absent), or False."""
        name = ref.encode()
        old = None if expected is None else expected.encode("ascii")
        refs = self._repo.refs
        try:
            if new is None:
                if old is None:
                    return name not in refs
                return bool(
                    update_ref_or_lose(self._git_dir, lambda: refs.remove_if_equals(name, old))
                )
            value = new.encode("ascii")
            if old is None:
                return bool(update_ref_or_lose(self._git_dir, lambda: refs.add_if_new(name, value)))
            return bool(
                update_ref_or_lose(self._git_dir, lambda: refs.set_if_equals(name, old, value))
            )
        except FileLocked:
            return False

    def delete_many(self, locks: Sequence[StoredLock]) -> int:
        """Delete each lock whose ref still holds its commit; how many went."""
        return sum(1 for lk in locks if self.delete(lk))

    def create(self, record: LockRecord) -> StoredLock | None:
        """Create the lock ref if it does not exist. Returns the lock, or None if it exists."""
        ref = lock_ref_name(record.resource).encode()
        oid = self._commit(record, None)
        try:
            won = update_ref_or_lose(self._git_dir, lambda: self._repo.refs.add_if_new(ref, oid))
        except FileLocked:
            return None
        if not won:
            return None
        return StoredLock(ref=ref.decode(), commit=oid.decode("ascii"), record=record)

    def replace(self, record: LockRecord, expected: str) -> StoredLock | None:
        """Point the lock ref at a new lease if it still holds commit `expected`."""
        ref = lock_ref_name(record.resource).encode()
        oid = self._commit(record, expected)
        try:
            old = expected.encode("ascii")
            won = update_ref_or_lose(
                self._git_dir, lambda: self._repo.refs.set_if_equals(ref, old, oid)
            )
        except FileLocked:
            return None
        if not won:
            return None
        return StoredLock(ref=ref.decode(), commit=oid.decode("ascii"), record=record)

    def delete(self, lock: StoredLock) -> bool:
        """Delete the lock ref if it still holds `lock.commit`."""
        try:
            name, old = lock.ref.encode(), lock.commit.encode("ascii")
            return bool(
                update_ref_or_lose(
                    self._git_dir, lambda: self._repo.refs.remove_if_equals(name, old)
                )
            )
        except FileLocked:
            return False
