"""The gate between a remote's WAL and this clone's: nothing a remote sends moves
`refs/grite/wal` or the view before every commit it brings has been checked, and nothing
invalid is pushed onward.

`check_remote_wal` runs after the fetch (which only fills `refs/grite/remotes/<remote>/`) and
before the merge. Each commit the remote's WAL would add is read in full (grite.storage.wal:
shape, meta.json, chunk hash, every event's fields and id), its events may be at most
FUTURE_SKEW_MS ahead of this machine's clock, and under `verify_signatures = require` every
event must carry a valid signature of a known actor. One failure refuses the whole remote,
naming the commit and the remote; the local WAL and view stay exactly as they were.

`outgoing_invalid` looks at what a push would send: commits this clone holds that break the
format (stored before grite checked pulls, or fetched with plain git) are never sent; the sync
re-applies the clone's own valid events on top of the remote's head instead (the same merge as
for diverged histories), so the invalid commit stays behind.

Imports storage and model only; never prints or reads the environment.
"""

from __future__ import annotations

from grite.model.errors import CorruptData
from grite.model.limits import FUTURE_SKEW_MS
from grite.storage.signing import EntryVerifier
from grite.storage.wal import InvalidWalCommit, Wal

__all__ = ["RemoteRefused", "check_remote_wal", "outgoing_invalid"]


class RemoteRefused(CorruptData):
    """A remote's WAL holds a commit this clone does not accept; nothing was changed."""


def check_remote_wal(
    wal: Wal,
    remote: str,
    local_head: str | None,
    remote_head: str | None,
    *,
    now_ms: int,
    verifier: EntryVerifier,
) -> int:
    """Check every commit that merging `remote_head` would bring, oldest first.

    Args:
        wal: this repository's WAL (the fetched objects are in its object store).
        remote: the remote's name, for the message.
        local_head: the local WAL head now (None: no WAL yet).
        remote_head: the fetched remote WAL head (None: the remote has no WAL).
        now_ms: this machine's clock; events more than FUTURE_SKEW_MS ahead are refused.
        verifier: the repository's verify_signatures policy and keys.

    Returns:
        How many commits were checked.

    Raises:
        RemoteRefused: a commit is damaged, invalid, too far in the future, or unsigned under
            `verify_signatures = require`.
    """
    if remote_head is None or remote_head == local_head:
        return 0
    try:
        incoming = wal.commits_between(local_head, remote_head)
        for oid in reversed(incoming):
            entry = wal.read_commit(oid, now_ms=now_ms)
            _kept, refused = verifier.split([entry])
            if refused:
                raise refused[0]
    except CorruptData as exc:
        raise _refusal(remote, exc) from exc
    return len(incoming)


def _refusal(remote: str, exc: CorruptData) -> RemoteRefused:
    skew_hours = FUTURE_SKEW_MS // 3_600_000
    clock = (
        f" (grite accepts events at most {skew_hours} hours ahead of this machine's clock)"
        if exc.details.get("field") == "ts_unix_ms"
        else ""
    )
    return RemoteRefused(
        f"refusing what remote {remote!r} sent: {exc.message}{clock}; nothing was changed "
        "(refs/grite/wal and the view are as they were). The remote's WAL must be repaired by "
        "whoever can push to it (see docs/security.md); until then, sync with another remote",
        {**exc.details, "remote": remote},
    )


def outgoing_invalid(wal: Wal, remote_head: str | None, local_head: str | None) -> list[str]:
    """The commits a push of `local_head` onto `remote_head` would send that every reader
    refuses (newest first); empty when the push is clean.

    Raises:
        CorruptData: a local commit on the way is missing (the push could not send it either).
    """
    bad = []
    for oid in wal.commits_between(remote_head, local_head):
        try:
            wal.read_commit(oid)
        except InvalidWalCommit:
            bad.append(oid)
    return bad
