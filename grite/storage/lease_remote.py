"""Leases arbitrated by a git remote: its lock refs read by a fetch and changed by a
compare-and-swap push, with the clone's own lock refs following what it saw.

The remote's `refs/grite/locks/<h>` hold the leases in grite 0.5.3's layout and format (see
grite.storage.lease_refs). To change one, this clone pushes exactly that ref, and git's push
protocol carries the value the remote advertised as the ref's old value: `git receive-pack`
(behind `git daemon`, ssh or `git http-backend`) updates the ref only if it still holds that
value, under the ref's lock, and reports the update as failed otherwise; a local-path or
`file://` remote is updated by dulwich with `set_if_equals` under the same `.lock` file. This
is the check `git push --force-with-lease` relies on
(https://git-scm.com/docs/git-push#Documentation/git-push.txt---force-with-leaseltrefnamegt),
so of two clones replacing the same value only one succeeds, whatever their timing.

What the remote held at the last look is kept in `refs/grite/remotes/<remote>/locks/<h>` (the
tracking refs `grite sync` keeps too); the clone's own refs follow it by the rule of
grite.model.lease_arbitration.follow_remote, so `grite lock status`, the lock policy and `grite watch`
see leases taken by other clones after the next fetch. Remote lock commits are hostile input:
one is mirrored only when it holds a readable lease for the resource its ref is named after.

Only storage touches dulwich; this module must not import grite.ops.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any, Protocol

import msgspec
from dulwich.errors import SendPackError
from dulwich.file import FileLocked
from dulwich.objects import ZERO_SHA
from dulwich.pack import pack_objects_to_data

from grite.model.errors import Environment
from grite.model.lease_arbitration import Follow, follow_remote
from grite.model.leases import LockRecord, lock_ref_name
from grite.storage.gitrepo import open_git_repo, update_ref
from grite.storage.lease_refs import LOCKS_PREFIX, LockStore, StoredLock
from grite.storage.sync import GRITE_PREFIX, SyncRepo, tracking_prefix

__all__ = [
    "Decide",
    "LeaseBook",
    "RemoteLockBook",
    "RemoteRefused",
    "has_remote",
    "lock_tracking",
    "mirror_lock_refs",
]

_REF_LEN = len(LOCKS_PREFIX) + 16


class LeaseBook(Protocol):
    """Where leases are decided: this clone's refs (LockStore) or a remote (RemoteLockBook).

    Every change is a compare-and-swap that reports whether it won; the retry policy lives in
    grite.ops.
    """

    def refresh(self) -> None: ...

    def refs_seen(self) -> dict[str, str]: ...

    def list(self) -> list[StoredLock]: ...

    def read(self, resource: str) -> StoredLock | None: ...

    def known(self, ref: str, oid: str) -> StoredLock | None: ...

    def write_commit(self, record: LockRecord, parent: str | None) -> str: ...

    def swap_where(self, decide: Decide) -> set[str]: ...

    def create(self, record: LockRecord) -> StoredLock | None: ...

    def replace(self, record: LockRecord, expected: str) -> StoredLock | None: ...

    def delete(self, lock: StoredLock) -> bool: ...

    def delete_many(self, locks: Sequence[StoredLock]) -> int: ...


# Given the arbiter's lock refs now (ref -> commit), the updates to make: ref -> (expected,
# new), None meaning absent.
Decide = Callable[[dict[str, str]], dict[str, tuple[str | None, str | None]]]


def _expired_placeholder(ref: str, oid: str) -> StoredLock:
    empty = LockRecord(owner="", nonce="", expires_unix_ms=0, resource="")
    return StoredLock(ref=ref, commit=oid, record=empty)


def _lease_pack(repo: Any, want: set[bytes], ofs_delta: bool) -> Any:
    """The pack for new lease commits: each commit, its tree and its `lock.json`.

    Their parent is the lease the remote holds (or none), so nothing else is missing there.
    Written out directly: dulwich's generic object walk would first visit the history of
    every ref the remote advertised (the whole WAL), the bulk of a claim's time.
    """
    store = repo.object_store
    objects = []
    for oid in sorted(want):
        commit = store[oid]
        tree = store[commit.tree]
        objects += [(commit, None), (tree, None)]
        objects += [(store[sha], None) for _name, _mode, sha in tree.iteritems()]
    return pack_objects_to_data(objects, ofs_delta=ofs_delta)


class _Outcome:
    """How the updates of one push went: applied, lost (the ref had moved), or refused by
    the remote with its reason (perhaps lost in the instant between advertising and
    updating; the caller looks again to tell)."""

    __slots__ = ("applied", "lost", "refused")

    def __init__(self) -> None:
        self.applied: set[str] = set()
        self.lost: set[str] = set()
        self.refused: dict[str, str] = {}


class RemoteRefused(Environment):
    """The remote received a lease update it could have applied, and refused it."""


def has_remote(git_dir: str, name: str) -> bool:
    """Whether git config defines remote `name` with a URL."""
    repo = open_git_repo(git_dir)
    try:
        repo.get_config().get((b"remote", name.encode("utf-8")), b"url")
    except KeyError:
        return False
    finally:
        repo.close()
    return True


def _lock_ref(name: bytes) -> bool:
    return name.startswith(LOCKS_PREFIX) and len(name) == _REF_LEN


def _valid(store: LockStore, ref: str, oid: str) -> StoredLock | None:
    """The lease at `oid` if it is readable and names the resource its ref is named after."""
    lock = store.load(ref, oid)
    if lock is None or lock_ref_name(lock.record.resource) != ref:
        return None
    return lock


def lock_tracking(repo: SyncRepo, remote: str) -> dict[str, str]:
    """The remote's lock refs as this clone last saw them (ref name -> oid)."""
    prefix = tracking_prefix(remote) + LOCKS_PREFIX[len(GRITE_PREFIX) :]
    found = repo._repo.refs.as_dict(prefix.rstrip(b"/"))
    return {(LOCKS_PREFIX + k).decode(): v.decode("ascii") for k, v in found.items()}


def _tracking_ref(remote: str, ref: str) -> bytes:
    return tracking_prefix(remote) + ref.encode()[len(GRITE_PREFIX) :]


def mirror_lock_refs(
    repo: SyncRepo,
    remote: str,
    before: dict[str, str],
    after: dict[str, str],
    only: Iterable[str] | None = None,
    store: LockStore | None = None,
) -> None:
    """Make the clone's lock refs follow the remote's, after seeing the remote's values.

    Args:
        repo: the clone.
        remote: the remote's name (whose tracking refs are updated to `after`).
        before: the remote's lock refs as last seen (tracking refs before this look).
        after: the remote's lock refs now.
        only: the refs to consider (default: every ref in `before` or `after`).
        store: the clone's lock store, if the caller has one open.
    """
    mine = LockStore(repo._git_dir) if store is None else store
    refs = repo._repo.refs
    try:
        names = set(before) | set(after) if only is None else set(only)
        for ref in sorted(names):
            tracked, now = before.get(ref), after.get(ref)
            local = repo.ref(ref.encode())
            if local == now == tracked:
                continue
            fast_forward = local is not None and now is not None and repo.is_ancestor(local, now)
            if follow_remote(local, tracked, now, fast_forward) is Follow.TAKE:
                if (now is None or _valid(mine, ref, now) is not None) and not mine.move(
                    ref, local, now
                ):
                    if repo.ref(ref.encode()) != now:
                        # The clone's ref did not follow: its lock file is held (by a process
                        # killed while it wrote that ref, until the lock ages out). The
                        # tracking ref must not move on without it: "the remote holds what we
                        # saw, the clone has none" reads as released here, and the next sync
                        # would delete a live lease on the remote. The next look tries again.
                        continue
            if now == tracked:
                continue
            track = _tracking_ref(remote, ref)
            if now is None:
                update_ref(repo._git_dir, lambda t=track: refs.remove_if_equals(t, None))
            else:
                value = now.encode("ascii")
                update_ref(repo._git_dir, lambda t=track, v=value: refs.set_if_equals(t, None, v))
    finally:
        if store is None:
            mine.close()


class RemoteLockBook:
    """The leases on one remote of a clone: read by fetching its lock refs, changed by
    compare-and-swap pushes of one ref each. Not shared between threads.

    Args:
        git_dir: the clone's git directory.
        repo_root: its work tree (relative remote paths resolve against it).
        remote: the git remote that arbitrates.

    Raises:
        NotFound: git config has no such remote.
    """

    def __init__(self, git_dir: str, repo_root: str, remote: str) -> None:
        self.remote = remote
        self._sync = SyncRepo(git_dir, repo_root)
        self._store = LockStore(git_dir)
        try:
            self.url = self._sync.remote_url(remote)
        except BaseException:
            self.close()
            raise
        # The remote's lock refs at the last look (None: look again before answering).
        self._seen: dict[str, str] | None = None
        self._loaded: dict[str, StoredLock] = {}

    def close(self) -> None:
        self._store.close()
        self._sync.close()

    def __enter__(self) -> RemoteLockBook:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    # -- reading -------------------------------------------------------------------------------

    def refresh(self) -> None:
        """Fetch the remote's lock refs (and the commits this clone lacks), then mirror them.

        Raises:
            RemoteUnreachable: the remote cannot be reached.
        """
        client, path = self._sync._client(self.remote, self.url)
        wanted: dict[bytes, bytes] = {}
        objects = self._sync._repo.object_store

        def determine_wants(refs: dict[bytes, bytes], depth: int | None = None) -> list[bytes]:
            for name, oid in refs.items():
                if _lock_ref(name) and oid and oid != ZERO_SHA:
                    wanted[name] = oid
            return sorted({oid for oid in wanted.values() if oid not in objects})

        self._sync._call(
            self.remote,
            self.url,
            lambda: client.fetch(
                path, self._sync._repo, determine_wants=determine_wants, ref_prefix=[LOCKS_PREFIX]
            ),
        )
        after = {k.decode(): v.decode("ascii") for k, v in wanted.items()}
        before = lock_tracking(self._sync, self.remote)
        mirror_lock_refs(self._sync, self.remote, before, after, store=self._store)
        self._seen = after

    def _current(self) -> dict[str, str]:
        if self._seen is None:
            self.refresh()
        assert self._seen is not None
        return self._seen

    def known(self, ref: str, oid: str) -> StoredLock | None:
        """The lease at commit `oid` of `ref` when this clone has that commit, else None.

        A commit that holds no readable lease for the resource its ref is named after
        (foreign or damaged) reads as a lease that has expired, so that it can be replaced.
        """
        key = f"{ref}:{oid}"
        lock = self._loaded.get(key)
        if lock is None:
            lock = _valid(self._store, ref, oid)
            if lock is None:
                if not self._store.has_object(oid):
                    return None  # not fetched yet; a later fetch may bring it
                lock = _expired_placeholder(ref, oid)
            self._loaded[key] = lock
        return lock

    def refs_seen(self) -> dict[str, str]:
        """The remote's lock refs as this clone last saw them (ref -> commit; no network)."""
        return lock_tracking(self._sync, self.remote)

    def list(self) -> list[StoredLock]:
        """Every lease on the remote now (fetched when this book has not looked yet, or a
        change it tried was lost since), sorted by resource."""
        found = [self.known(ref, oid) for ref, oid in self._current().items()]
        return sorted(
            (lk for lk in found if lk is not None and lk.record.resource),
            key=lambda x: x.record.resource,
        )

    def read(self, resource: str) -> StoredLock | None:
        """The remote's lease on `resource` now (see `list`)."""
        ref = lock_ref_name(resource)
        oid = self._current().get(ref)
        lock = None if oid is None else self.known(ref, oid)
        if lock is not None and not lock.record.resource:
            record = msgspec.structs.replace(lock.record, resource=resource)
            return msgspec.structs.replace(lock, record=record)
        return lock

    # -- compare-and-swap ----------------------------------------------------------------------

    def write_commit(self, record: LockRecord, parent: str | None) -> str:
        """Store a lease commit in this clone (a push carries it to the remote)."""
        return self._store.write_commit(record, parent)

    def create(self, record: LockRecord) -> StoredLock | None:
        """Create the lease on the remote if the remote has none. None: someone has one."""
        return self._put(record, None)

    def replace(self, record: LockRecord, expected: str) -> StoredLock | None:
        """Replace the remote's lease if it still is commit `expected`. None: it moved."""
        return self._put(record, expected)

    def delete(self, lock: StoredLock) -> bool:
        """Delete the remote's lease if it still is `lock.commit`."""
        return self.delete_many([lock]) == 1

    def delete_many(self, locks: Sequence[StoredLock]) -> int:
        """Delete each lease whose remote ref still holds its commit, in one push; how many."""
        if not locks:
            return 0
        updates: dict[str, tuple[str | None, str | None]] = {
            lk.ref: (lk.commit, None) for lk in locks
        }
        return len(self.swap_where(lambda _current: updates))

    def _put(self, record: LockRecord, expected: str | None) -> StoredLock | None:
        ref = lock_ref_name(record.resource)
        oid = self._store.write_commit(record, expected)
        if ref not in self.swap_where(lambda _current: {ref: (expected, oid)}):
            return None
        return StoredLock(ref=ref, commit=oid, record=record)

    def swap_where(self, decide: Decide) -> set[str]:
        """Change lock refs on the remote in one push, deciding from what it holds right now.

        `decide` receives the remote's lock refs as the remote advertises them at the start
        of the push (ref -> commit) and returns the updates (ref -> (expected, new), None
        meaning absent); each is applied only if the remote's ref still holds `expected` when
        the remote updates it. Commits named as new values must already be stored in this
        clone (`write_commit`).

        Returns:
            The refs the remote moved. The others had moved already; this book then looks
            again before its next answer.

        Raises:
            RemoteUnreachable: the remote cannot be reached.
            RemoteRefused: the remote refused an update although its ref held the expected
                value (a hook, permissions, a full disk).
        """
        updates: dict[str, tuple[str | None, str | None]] = {}
        outcome = self._send(decide, updates)
        before: dict[str, str] = {}
        after: dict[str, str] = {}
        for ref in outcome.applied:
            seen = self._sync.ref(_tracking_ref(self.remote, ref))
            if seen is not None:
                before[ref] = seen
            new = updates[ref][1]
            if new is not None:
                after[ref] = new
        mirror_lock_refs(
            self._sync, self.remote, before, after, only=outcome.applied, store=self._store
        )
        if self._seen is not None and len(outcome.applied) == len(updates):
            for ref in outcome.applied:
                new = updates[ref][1]
                if new is None:
                    self._seen.pop(ref, None)
                else:
                    self._seen[ref] = new
        elif updates:
            self._seen = None  # something moved under us: look again before the next answer
        if outcome.refused:
            # Each ref matched when the remote advertised it; if it still does, the update
            # was refused, not lost to another clone's update in between.
            current = self._current()
            for ref, reason in sorted(outcome.refused.items()):
                if current.get(ref) == updates[ref][0]:
                    raise RemoteRefused(
                        f"remote {self.remote!r} ({self.url}) refused to update {ref}: "
                        f"{reason}; check that you may push there (hooks, permissions, disk)",
                        {"remote": self.remote, "url": self.url, "ref": ref, "reason": reason},
                    )
        return outcome.applied

    def _send(self, decide: Decide, updates: dict[str, tuple[str | None, str | None]]) -> _Outcome:
        """One push: ask `decide` (filling `updates`), send what still matches the remote's
        refs, and sort every update into applied, lost or refused."""
        client, path = self._sync._client(self.remote, self.url)
        sent: dict[bytes, bytes] = {}

        def update_refs(remote_refs: dict[bytes, bytes]) -> dict[bytes, bytes]:
            current = {
                name.decode(): oid.decode("ascii")
                for name, oid in remote_refs.items()
                if _lock_ref(name) and oid and oid != ZERO_SHA
            }
            updates.update(decide(current))
            for ref, (expected, new) in updates.items():
                # The remote checks the old value again under its ref lock; an update that
                # has lost already would only be refused there.
                if current.get(ref) == expected:
                    sent[ref.encode()] = ZERO_SHA if new is None else new.encode("ascii")
            return dict(sent)

        repo = self._sync._repo

        def generate_pack_data(have: Any, want: Any, **kw: Any) -> Any:
            return _lease_pack(repo, set(want), ofs_delta=bool(kw.get("ofs_delta", True)))

        def push() -> Any:
            try:
                return client.send_pack(path, update_refs, generate_pack_data)
            except SendPackError as exc:
                raise RemoteRefused(
                    f"remote {self.remote!r} ({self.url}) refused the lease update: {exc}; "
                    "check that you may push there",
                    {"remote": self.remote, "url": self.url},
                ) from exc

        outcome = _Outcome()
        try:
            result = self._sync._call(self.remote, self.url, push)
        except FileLocked:
            # A local-path remote whose ref another clone is updating at this very moment.
            outcome.lost.update(updates)
            return outcome
        statuses = result.ref_status
        if statuses is None and sent:
            statuses = self._verify(client, path, sent)
        for ref in updates:
            name = ref.encode()
            if name not in sent:
                outcome.lost.add(ref)
            elif statuses and statuses.get(name):
                outcome.refused[ref] = str(statuses[name])
            else:
                outcome.applied.add(ref)
        return outcome

    def _verify(self, client: Any, path: str, sent: dict[bytes, bytes]) -> dict[bytes, str]:
        # A server without report-status says nothing per ref: read the refs back.
        result = self._sync._call(self.remote, self.url, lambda: client.get_refs(path))
        refs = getattr(result, "refs", result)
        return {
            ref: "" if refs.get(ref, ZERO_SHA) == oid else "the remote kept another value"
            for ref, oid in sent.items()
        }
