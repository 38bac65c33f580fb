"""Git transport for `grite sync`: fetch a remote's `refs/grite/*` into tracking refs, push local
grite refs without ever forcing, and the ref and commit primitives the WAL merge needs.

Remotes come from the repository's git config (`remote.<name>.url`); dulwich carries the
bytes, so local paths, `file://`, `git://`, ssh and http(s) work as dulwich supports them.
Fetched refs land under `refs/grite/remotes/<remote>/...` and never overwrite a local ref;
deciding what to do with them is the caller's job (grite/ops/sync.py). Pushes are
compare-and-swap against the refs the remote advertised and fast-forward only; a ref that
would not fast-forward is reported as rejected, never forced.

Only storage imports dulwich; every dulwich or socket error is translated here. This module
must not import grite.ops or anything above storage.
"""

from __future__ import annotations

import json
import os
import re
import socket
import zlib
from collections.abc import Callable
from typing import Any
from urllib.parse import urlparse

import msgspec
from dulwich.client import GitClient, TCPGitClient, get_transport_and_path
from dulwich.config import ConfigFile
from dulwich.errors import (
    ApplyDeltaError,
    ChecksumMismatch,
    FileFormatException,
    GitProtocolError,
    HangupException,
    MissingCommitError,
    NotGitRepository,
    ObjectMissing,
    RefFormatError,
    WrongObjectException,
)
from dulwich.file import FileLocked
from dulwich.objects import ZERO_SHA
from dulwich.refs import check_ref_format

from grite.model.errors import CorruptData, Environment, GriteError, NotFound
from grite.model.events import Event
from grite.storage.gitrepo import open_git_repo, update_ref
from grite.storage.unwritable import REMEDY, read_only_reason, write_failure
from grite.storage.wal import Wal

__all__ = [
    "GRITE_PREFIX",
    "LOCKS_PREFIX",
    "NETWORK_TIMEOUT",
    "SNAPSHOTS_PREFIX",
    "PushReport",
    "RemoteUnreachable",
    "SyncRepo",
    "tracking_prefix",
]

GRITE_PREFIX = b"refs/grite/"
LOCKS_PREFIX = b"refs/grite/locks/"
SNAPSHOTS_PREFIX = b"refs/grite/snapshots/"
_REMOTES_PREFIX = b"refs/grite/remotes/"
_OID = re.compile(rb"[0-9a-f]{40}")
# Errors dulwich raises for unreadable git data (a remote's packed-refs, a pack, an object).
_REMOTE_DATA_ERRORS = (
    ApplyDeltaError,
    ChecksumMismatch,
    FileFormatException,
    MissingCommitError,
    ObjectMissing,
    RefFormatError,
    WrongObjectException,
    KeyError,
    ValueError,
    zlib.error,
)

# Seconds a network remote may stay silent (connect, or between reads) before we give up: a
# sync must never hang, in the terminal or in the daemon's worker thread.
NETWORK_TIMEOUT = 20.0


def tracking_prefix(remote: str) -> bytes:
    """Where the refs fetched from `remote` live: `refs/grite/remotes/<remote>/`."""
    return _REMOTES_PREFIX + remote.encode("utf-8") + b"/"


class PushReport(msgspec.Struct, frozen=True, kw_only=True):
    """What one push did. Ref names are full (`refs/grite/wal`).

    `remote_before` is what the remote advertised (ref -> oid) when the push started; `updated`
    maps each ref the remote accepted to its new oid (None: deleted); `rejected` maps each
    refused ref to the reason.
    """

    remote_before: dict[str, str]
    updated: dict[str, str | None]
    rejected: dict[str, str]


class _TimeoutTCPGitClient(TCPGitClient):
    """git:// client whose socket connects and reads with a timeout (dulwich sets none)."""

    def _connect(self, cmd: bytes, path: str | bytes, protocol_version: int | None = None) -> Any:
        # dulwich connects without a timeout: probe first so an unreachable host fails fast.
        probe = socket.create_connection((self._host, self._port or 9418), NETWORK_TIMEOUT)
        probe.close()
        proto, can_read, stderr = super()._connect(cmd, path, protocol_version)
        reader = getattr(proto.read, "__self__", None)
        sock = getattr(getattr(reader, "raw", None), "_sock", None)
        if isinstance(sock, socket.socket):
            sock.settimeout(NETWORK_TIMEOUT)
        return proto, can_read, stderr


class RemoteUnreachable(Environment):
    """The remote could not be reached (or is not a git repository); nothing was changed."""


def _unreachable(remote: str, url: str, exc: BaseException) -> Environment:
    reason = getattr(exc, "strerror", None) or str(exc) or exc.__class__.__name__
    return RemoteUnreachable(
        f"cannot reach remote {remote!r} ({url}): {reason}; check the URL with 'git remote -v' "
        "and that the server is up (nothing was changed)",
        {"remote": remote, "url": url},
    )


class SyncRepo:
    """One repository's git objects and refs, for syncing. Not shared between threads."""

    def __init__(self, git_dir: str, repo_root: str) -> None:
        self._repo = open_git_repo(git_dir)
        self._git_dir = git_dir
        self._repo_root = repo_root
        self._wal = Wal(git_dir)

    def close(self) -> None:
        self._wal.close()
        self._repo.close()

    def __enter__(self) -> SyncRepo:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    # -- remotes -------------------------------------------------------------------------------

    def remote_url(self, remote: str) -> str:
        """The URL of `remote` from git config (relative local paths resolved to the repo root).

        Raises:
            NotFound: no such remote.
        """
        config = self._config()
        try:
            raw = config.get((b"remote", remote.encode("utf-8")), b"url")
        except KeyError:
            raise NotFound(
                f"no git remote named {remote!r}; run 'git remote -v' to see remotes, "
                f"or add one with 'git remote add {remote} URL'",
                {"remote": remote},
            ) from None
        url = raw.decode("utf-8")
        if "://" not in url and not _scp_like(url) and not os.path.isabs(url):
            url = os.path.normpath(os.path.join(self._repo_root, url))
        return url

    def _config(self) -> ConfigFile:
        return self._repo.get_config()

    def _client(self, remote: str, url: str) -> tuple[GitClient, str]:
        parsed = urlparse(url)
        try:
            if parsed.scheme == "git":
                return _TimeoutTCPGitClient(parsed.hostname or "localhost", parsed.port), (
                    parsed.path or "/"
                )
            kwargs: dict[str, Any] = {}
            if parsed.scheme in ("http", "https"):
                from dulwich.client import default_urllib3_manager

                kwargs["pool_manager"] = default_urllib3_manager(
                    self._config(), timeout=NETWORK_TIMEOUT
                )
            client, path = get_transport_and_path(url, config=self._config(), **kwargs)
        except ValueError as exc:
            raise Environment(
                f"remote {remote!r} has an unsupported URL {url!r}: {exc}; fix it with "
                f"'git remote set-url {remote} URL'",
                {"remote": remote, "url": url},
            ) from exc
        if parsed.scheme in ("", "file") and not _scp_like(url) and not os.path.isdir(path):
            raise _unreachable(remote, url, FileNotFoundError(2, "no repository at that path"))
        return client, path

    def _call(self, remote: str, url: str, fn: Callable[[], Any]) -> Any:
        try:
            return fn()
        except GriteError:
            raise
        except (TimeoutError, OSError, HangupException, GitProtocolError, NotGitRepository) as exc:
            raise _unreachable(remote, url, exc) from exc
        except _REMOTE_DATA_ERRORS as exc:
            # What the remote holds or sends (its packed-refs, a pack, an object) is not
            # readable git data: a damaged or hostile remote, never a bug of ours.
            raise CorruptData(
                f"remote {remote!r} ({url}) holds or sent data git cannot read "
                f"({exc.__class__.__name__}: {exc}); nothing was changed; check it with "
                "'git fsck' where it is hosted, or sync with another remote",
                {"remote": remote, "url": url},
            ) from exc

    # -- fetch ---------------------------------------------------------------------------------

    def fetch(self, remote: str, url: str) -> dict[str, str]:
        """Fetch the remote's grite refs and mirror them under the tracking prefix.

        Tracking refs whose remote ref is gone are deleted, so the tracking area always shows
        the remote as it was at this fetch. Local refs are never touched. Lock refs' tracking
        refs are the exception, left to grite.storage.lease_remote.mirror_lock_refs (the
        caller's next step): it moves each only once the clone's own lock ref has followed,
        since "tracked but absent here" means released here, and a push deletes those.

        Returns:
            The remote's grite refs (full name -> oid), without its own tracking refs.

        Raises:
            Environment: the remote cannot be reached or is not a git repository.
        """
        # A .git grite cannot write would otherwise fail half way (the pack, then a ref) and
        # read as an unreachable remote; say what it is before fetching anything.
        reason = read_only_reason(os.path.join(self._git_dir, "objects"))
        if reason is not None:
            raise Environment(
                f"cannot pull into {self._git_dir}: {reason}; {REMEDY}", {"path": self._git_dir}
            )
        client, path = self._client(remote, url)
        wanted: dict[bytes, bytes] = {}

        def determine_wants(refs: dict[bytes, bytes], depth: int | None = None) -> list[bytes]:
            for name, oid in refs.items():
                # A name git itself would refuse (control characters, `..`) is ignored.
                if _is_shared_ref(name) and check_ref_format(name) and _is_oid(oid):
                    wanted[name] = oid
            store = self._repo.object_store
            return sorted({oid for oid in wanted.values() if oid not in store})

        self._call(
            remote,
            url,
            lambda: client.fetch(
                path, self._repo, determine_wants=determine_wants, ref_prefix=[GRITE_PREFIX]
            ),
        )
        prefix = tracking_prefix(remote)
        lock_tracking = prefix + LOCKS_PREFIX[len(GRITE_PREFIX) :]
        refs = self._repo.refs
        existing = {
            name
            for name in refs.keys()
            if name.startswith(prefix) and not name.startswith(lock_tracking)
        }
        try:
            for name, oid in wanted.items():
                if name.startswith(LOCKS_PREFIX):
                    continue
                tracking = prefix + name[len(GRITE_PREFIX) :]
                update_ref(self._git_dir, lambda t=tracking, o=oid: refs.set_if_equals(t, None, o))
                existing.discard(tracking)
            for stale in existing:
                update_ref(self._git_dir, lambda s=stale: refs.remove_if_equals(s, None))
        except OSError as exc:
            raise write_failure(os.path.join(self._git_dir, "refs", "grite"), exc) from exc
        return {k.decode("utf-8", "replace"): v.decode("ascii") for k, v in wanted.items()}

    # -- push ----------------------------------------------------------------------------------

    def push(self, remote: str, url: str, *, release_owner: str | None = None) -> PushReport:
        """Push every local grite ref to the same name on the remote, fast-forward only.

        WAL and lock refs go when the remote value is absent or an ancestor of ours; snapshot
        refs only when absent (they never change). A lock ref whose value is the one this
        clone last saw on the remote is not local news and is not sent. A lock ref deleted here (released) is
        deleted on the remote only if the remote still holds exactly the commit we last fetched
        and that lock is owned by `release_owner`. Nothing is forced.

        Raises:
            Environment: the remote cannot be reached or refuses the pack.
        """
        client, path = self._client(remote, url)
        local = {
            name: oid
            for name, oid in self._repo.refs.as_dict(GRITE_PREFIX).items()
            if _is_shared_ref(GRITE_PREFIX + name)
        }
        local = {GRITE_PREFIX + name: oid for name, oid in local.items()}
        tracking = tracking_prefix(remote)
        before: dict[str, str] = {}
        rejected: dict[str, str] = {}
        sent: dict[bytes, bytes] = {}

        def update_refs(remote_refs: dict[bytes, bytes]) -> dict[bytes, bytes]:
            for name, oid in remote_refs.items():
                if _is_shared_ref(name) and oid and oid != ZERO_SHA:
                    before[name.decode("utf-8")] = oid.decode("ascii")
            for name, oid in sorted(local.items()):
                theirs = remote_refs.get(name)
                if name.startswith(LOCKS_PREFIX) and oid == self._raw_ref(
                    tracking + name[len(GRITE_PREFIX) :]
                ):
                    # A lease this clone saw on the remote (arbitrated there, or mirrored from
                    # it): nothing local to send; if the remote dropped it, it stays dropped.
                    continue
                if theirs is None or theirs == ZERO_SHA:
                    sent[name] = oid
                elif theirs == oid:
                    continue
                elif name.startswith(SNAPSHOTS_PREFIX):
                    rejected[name.decode()] = "the remote has a different snapshot of that name"
                elif self.is_ancestor(theirs.decode("ascii"), oid.decode("ascii")):
                    sent[name] = oid
                else:
                    rejected[name.decode()] = "non-fast-forward: the remote has commits we lack"
            if release_owner is not None:
                for name, oid in remote_refs.items():
                    if not name.startswith(LOCKS_PREFIX) or name in local:
                        continue
                    last_seen = self._raw_ref(tracking + name[len(GRITE_PREFIX) :])
                    if last_seen == oid and self.lock_owner(oid.decode()) == release_owner:
                        sent[name] = ZERO_SHA
            return dict(sent)

        def generate_pack_data(have: Any, want: Any, **kw: Any) -> Any:
            kw.pop("ofs_delta", None)
            return self._repo.generate_pack_data(set(have), set(want), ofs_delta=True, **kw)

        try:
            result = self._call(
                remote, url, lambda: client.send_pack(path, update_refs, generate_pack_data)
            )
        except FileLocked:
            # A local-path remote whose ref another push is updating right now: the same as
            # the remote having moved, so the caller pulls and tries again.
            busy = {
                name.decode(): "the remote ref is being updated by another push" for name in sent
            }
            return PushReport(remote_before=before, updated={}, rejected={**rejected, **busy})
        updated: dict[str, str | None] = {}
        refs = self._repo.refs
        for name, oid in sent.items():
            status = (result.ref_status or {}).get(name)
            if status:
                rejected[name.decode()] = status if isinstance(status, str) else str(status)
                continue
            # Like git, record what the remote now holds, so the next push knows what it saw.
            track = tracking + name[len(GRITE_PREFIX) :]
            if oid == ZERO_SHA:
                update_ref(self._git_dir, lambda t=track: refs.remove_if_equals(t, None))
                updated[name.decode()] = None
            else:
                update_ref(self._git_dir, lambda t=track, o=oid: refs.set_if_equals(t, None, o))
                updated[name.decode()] = oid.decode("ascii")
        return PushReport(remote_before=before, updated=updated, rejected=rejected)

    # -- WAL chain and refs --------------------------------------------------------------------

    def ref(self, name: bytes) -> str | None:
        """The oid a ref points at, or None if it does not exist."""
        value = self._raw_ref(name)
        return None if value is None else value.decode("ascii")

    def _raw_ref(self, name: bytes) -> bytes | None:
        try:
            return self._repo.refs[name]
        except KeyError:
            return None

    def chain(self, head: str | None, stop: str | None = None) -> list[str]:
        """WAL commit ids from `head` back to the root (or to `stop`, excluded), newest first.

        WAL commits have one parent, the previous commit of the chain (`meta.prev_wal`).
        """
        out: list[str] = []
        oid = head
        store = self._repo.object_store
        while oid is not None and oid != stop:
            out.append(oid)
            try:
                commit = store[oid.encode("ascii")]
            except KeyError:
                break
            parents = getattr(commit, "parents", [])
            oid = parents[0].decode("ascii") if parents else None
        return out

    def is_ancestor(self, ancestor: str, descendant: str) -> bool:
        """True when `ancestor` is `descendant` or on its first-parent chain."""
        if ancestor.encode("ascii") not in self._repo.object_store:
            return False
        return ancestor in self.chain(descendant)

    def set_wal_head(self, expected: str | None, new: str) -> bool:
        """Move `refs/grite/wal` from `expected` to `new`; False if it had moved (or is locked)."""
        return self._wal.compare_and_set(expected, new)

    def write_wal_commit(self, actor: bytes, events: list[Event], parent: str | None) -> str:
        """Store one WAL commit on top of `parent` without moving any ref."""
        return self._wal.write_commit(actor, events, parent)

    def lock_owner(self, oid: str) -> str | None:
        """The `owner` in a lock commit's `lock.json`, or None if it has none."""
        try:
            commit = self._repo.object_store[oid.encode("ascii")]
            tree = self._repo.object_store[commit.tree]  # type: ignore[attr-defined]
            raw = self._repo.object_store[tree[b"lock.json"][1]].as_raw_string()
            owner = json.loads(raw).get("owner")
        except (KeyError, ValueError, AttributeError, TypeError, RecursionError):
            return None
        return owner if isinstance(owner, str) else None


def _is_oid(oid: bytes | None) -> bool:
    return bool(oid) and oid != ZERO_SHA and _OID.fullmatch(oid or b"") is not None


def _is_shared_ref(name: bytes) -> bool:
    """Refs that travel between clones: everything under refs/grite/ except tracking refs."""
    return name.startswith(GRITE_PREFIX) and not name.startswith(_REMOTES_PREFIX)


def _scp_like(url: str) -> bool:
    """`host:path` (scp syntax for ssh), as git tells it apart from a local path."""
    head, sep, _rest = url.partition(":")
    return bool(sep) and "/" not in head and len(head) > 1
