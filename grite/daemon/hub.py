"""The daemon's notification hub: per-repository subscribers and what changed since last time.

For every repository with at least one watcher the hub remembers the WAL head it last published
and the lease locks it last saw. `refresh(git_dir, source)` compares them with the refs, and for
each new WAL commit (in WAL order) delivers one IssueChanged per event, then a WalAdvanced
naming the commit (when the head moved off its chain, as a diverged `grite sync` moves it, the
commits of the new chain, with only the events the old one lacked); then one LockChanged per
lease taken, renewed or released. The request handlers (handlers/commands.py) call it after
every request they ran (source local_write, or sync for a sync), and housekeeping's poller every
POLL_INTERVAL seconds (source external: another process or `git fetch` moved the ref).
A per-repository lock makes publishing sequential, so subscribers see no gap and no duplicate
whoever notices a change first. A subscriber registered at head H gets everything after H live
and can replay (since, H] from the WAL first, so `watch --since` joins without gap or repeat.

Blocking (git reads): call from worker threads, never from the event loop. Delivery callbacks
must be thread-safe and must not block (the watch handler hands frames to its loop). Imports
grite.storage and grite.model only; must not import grite.cli.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING

import msgspec

from grite.model.context import is_context_event
from grite.model.errors import CorruptData, InvalidArgs, NotFound
from grite.model.ids import is_hex
from grite.model.notifications import (
    NULL_HEAD,
    IssueChanged,
    LockChanged,
    Notification,
    WalAdvanced,
)

if TYPE_CHECKING:
    from grite.storage.wal import Wal, WalEntry

__all__ = ["POLL_INTERVAL", "Hub", "Subscription", "notes_for_entries"]

_log = logging.getLogger("grite.daemon")

# How often housekeeping looks for refs moved by other processes (seconds).
POLL_INTERVAL = 0.1

Deliver = Callable[[Notification], None]


def notes_for_entries(
    entries: list[WalEntry], previous: str | None, source: str
) -> list[Notification]:
    """The notifications for WAL commits `entries` (oldest first) that follow `previous`."""
    notes: list[Notification] = []
    prev = previous
    for entry in entries:
        for e in entry.events:
            if is_context_event(e):
                continue  # the context store's pseudo-issues are not issues (WalAdvanced counts them)
            tag = type(e.kind).__struct_config__.tag
            notes.append(
                IssueChanged(
                    issue_id=e.issue_id.hex(),
                    event_id=e.event_id.hex(),
                    kind=str(tag),
                    actor=e.actor.hex(),
                    wal_commit=entry.commit,
                )
            )
        notes.append(
            WalAdvanced(
                wal_head=entry.commit, previous=prev, source=source, events=len(entry.events)
            )
        )
        prev = entry.commit
    return notes


def _events_of(wal: Wal, commits: list[str]) -> list[WalEntry]:
    """The readable WAL commits of `commits` (newest first), oldest first; invalid or damaged
    ones are left out, as every reader leaves them out."""
    from grite.storage.wal import InvalidWalCommit  # loaded by _Repo already

    entries = []
    for commit in reversed(commits):
        try:
            entries.append(wal.read_commit(commit))
        except (InvalidWalCommit, CorruptData):
            continue
    return entries


def _rewritten(wal: Wal, old: str | None, new: str, source: str) -> list[Notification]:
    """The notifications for a WAL whose head moved from `old` to `new` off its chain.

    The commits on `new`'s chain but not on `old`'s hold what arrived (a merged sync: the
    remote's commits, then one commit re-applying our own events); events already on `old`'s
    chain are not announced again. The first wal_advanced names `old` as previous, which is
    how a watcher sees that the chain was replaced.
    """
    _log.info("WAL moved off its chain (%s to %s); announcing what arrived", old, new)
    seen = {
        e.event_id for entry in _events_of(wal, wal.commits_between(new, old)) for e in entry.events
    }
    notes: list[Notification] = []
    previous = old
    for entry in _events_of(wal, wal.commits_between(old, new)):
        fresh = [e for e in entry.events if e.event_id not in seen]
        notes += notes_for_entries([msgspec.structs.replace(entry, events=fresh)], previous, source)
        previous = entry.commit
    if previous != new:  # the new head itself was unreadable: still say where the WAL is
        notes.append(WalAdvanced(wal_head=new, previous=previous, source=source))
    return notes


class Subscription:
    """One watcher of one repository; `start` is the head its live stream begins after."""

    def __init__(self, key: str, deliver: Deliver) -> None:
        self.key = key
        self.deliver = deliver
        self.start: str | None = None


class _Repo:
    def __init__(self, git_dir: str) -> None:
        # Deliberately lazy: storage pulls in dulwich, which the daemon loads only once a
        # repository is used (never before it reports ready).
        from grite.storage.lease_refs import LockStore
        from grite.storage.wal import Wal

        self.git_dir = git_dir
        self.wal = Wal(git_dir)
        self.locks = LockStore(git_dir)
        self.lock = threading.Lock()  # held while reading refs and publishing
        self.head = self.wal.head()
        self.leases = self._leases()
        self.subs: set[Subscription] = set()

    def _leases(self) -> dict[str, tuple[str, int, str]]:
        return {
            lk.record.resource: (lk.record.owner, lk.record.expires_unix_ms, lk.commit)
            for lk in self.locks.list()
        }

    def close(self) -> None:
        self.wal.close()
        self.locks.close()


class Hub:
    """Subscribers by repository (git dir) and the refs each was last told about."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._repos: dict[str, _Repo] = {}

    def watched(self) -> list[str]:
        """Git dirs with at least one subscriber."""
        with self._lock:
            return [k for k, r in self._repos.items() if r.subs]

    def subscribe(self, git_dir: str, deliver: Deliver) -> Subscription:
        """Start delivering this repository's changes; `.start` says from which head."""
        sub = Subscription(git_dir, deliver)
        with self._lock:
            repo = self._repos.get(git_dir)
            if repo is None:
                repo = _Repo(git_dir)
                self._repos[git_dir] = repo
            # Taking the repo lock while holding ours is the only nesting: never the reverse.
            with repo.lock:
                repo.subs.add(sub)
                sub.start = repo.head
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        with self._lock:
            repo = self._repos.get(sub.key)
            if repo is None:
                return
            with repo.lock:
                repo.subs.discard(sub)
                if repo.subs:
                    return
            del self._repos[sub.key]
        repo.close()

    def replay(self, sub: Subscription, since: str) -> list[Notification]:
        """What happened after WAL head `since` up to the subscription's start.

        Raises:
            InvalidArgs: `since` is not a full 40-hex commit id.
            NotFound: `since` is not in the WAL's history.
        """
        since = since.strip().lower()
        if len(since) != 40 or not is_hex(since):
            raise InvalidArgs(
                f"--since {since!r} is not a WAL head: give the full 40-hex commit id of a "
                "wal_advanced notification (or 'git rev-parse refs/grite/wal')",
                {"since": since},
            )
        if since == sub.start:
            return []
        from grite.storage.wal import WalHistoryChanged  # loaded by _Repo already

        with self._lock:
            repo = self._repos.get(sub.key)
        if repo is None:
            return []
        base = None if since == NULL_HEAD else since
        try:
            if sub.start is None:
                if base is None:
                    return []
                raise WalHistoryChanged("empty WAL")
            entries = repo.wal.read_entries(since=base, head=sub.start)
        except WalHistoryChanged:
            raise NotFound(
                f"WAL head {since} is not in this repository's history (rewritten, or from "
                "another repository); run 'grite watch' without --since",
                {"since": since},
            ) from None
        return notes_for_entries(entries, base, "replay")

    def refresh(self, git_dir: str, source: str) -> int:
        """Publish whatever changed in a watched repository; returns the number delivered."""
        from grite.storage.wal import WalHistoryChanged  # loaded by _Repo already

        with self._lock:
            repo = self._repos.get(git_dir)
        if repo is None:
            return 0
        with repo.lock:
            if not repo.subs:
                return 0
            notes: list[Notification] = []
            head = repo.wal.head()
            if head != repo.head:
                try:
                    entries = repo.wal.read_entries(since=repo.head, head=head)
                    notes += notes_for_entries(entries, repo.head, source)
                except WalHistoryChanged:
                    # Our head is not under the new one: a diverged `grite sync` appended our
                    # local events on top of the remote's chain, or a forced fetch replaced it.
                    if head is not None:
                        notes += _rewritten(repo.wal, repo.head, head, source)
                repo.head = head
            leases = repo._leases()
            if leases != repo.leases:
                for resource in sorted(set(leases) | set(repo.leases)):
                    new = leases.get(resource)
                    if new == repo.leases.get(resource):
                        continue
                    owner, expires = (new[0], new[1]) if new is not None else ("", 0)
                    notes.append(LockChanged(resource=resource, owner=owner, expires_ms=expires))
                repo.leases = leases
            for sub in list(repo.subs):
                for note in notes:
                    sub.deliver(note)
            return len(notes)

    def poll(self, busy: Callable[[str], bool]) -> None:
        """Refresh every watched repository that no request is using (source external)."""
        for git_dir in self.watched():
            if not busy(git_dir):
                try:
                    self.refresh(git_dir, "external")
                except Exception:  # a damaged ref must not stop the poller for others
                    _log.exception("cannot refresh notifications for %s", git_dir)

    def close(self) -> None:
        with self._lock:
            repos = list(self._repos.values())
            self._repos.clear()
        for repo in repos:
            repo.close()
