"""Rules for leases that a git remote arbitrates: how a clone's lock refs follow the remote's,
and how concurrent claimers spread their first choice over the ready queue.

A clone keeps three values per lock ref: its own (`refs/grite/locks/<h>`, what `lock status`
and the lock policy read), the remote's as last seen (`refs/grite/remotes/<remote>/locks/<h>`,
as git keeps `refs/remotes/`), and the remote's now. The clone's own ref follows the remote's
unless it holds a change that the remote has not seen yet (a lease taken or released with
`--local`, which `grite sync` pushes), exactly as git leaves a branch with unpushed commits
alone.

Pure: imports nothing of grite; no I/O.
"""

from __future__ import annotations

import enum

__all__ = ["Follow", "first_choice", "follow_remote"]


class Follow(enum.Enum):
    """What to do with the clone's own lock ref after seeing the remote's value."""

    KEEP = "keep"  # already equal, or a local change the remote has not seen: leave it
    TAKE = "take"  # set it to the remote's value (delete it when the remote has none)


def follow_remote(
    local: str | None, tracked: str | None, remote: str | None, fast_forward: bool
) -> Follow:
    """Whether the clone's lock ref should take the remote's value.

    Args:
        local: the clone's ref (None: absent).
        tracked: the remote's value when the clone last looked (None: absent or never seen).
        remote: the remote's value now (None: absent).
        fast_forward: `remote` descends from `local` (a renewal or take-over of that lease).

    Returns:
        TAKE when the clone has no unpushed change to that ref (its value is the one it last
        saw on the remote), when the remote's value descends from it, or when the clone
        dropped the lease and the remote has changed it since; KEEP otherwise.
    """
    if local == remote:
        return Follow.KEEP
    if local == tracked:
        return Follow.TAKE
    if local is None:
        # Released here but not pushed: still pending while the remote holds what we saw;
        # once the remote has moved on (renewed, taken over), its lease is the news.
        return Follow.KEEP if remote == tracked else Follow.TAKE
    if remote is not None and fast_forward:
        return Follow.TAKE
    return Follow.KEEP


def first_choice(free: int, contenders: int, seed: bytes) -> int:
    """Index, in the oldest-first list of `free` unclaimed ready issues, to try first.

    With nobody else claiming (`contenders` 0) it is 0: a lone agent works oldest first. With
    others at work, agents asking at the same moment would all race for the oldest issue and
    all but one would lose a round trip to the remote; instead each starts at a point chosen
    by `seed` (derived from the request) among the first `contenders + 1` issues.

    Args:
        free: how many unclaimed ready issues there are.
        contenders: how many other claimers seem active (their live leases on open issues).
        seed: bytes that differ between requests and repeat for a retry of the same one.
    """
    window = min(free, contenders + 1)
    if window <= 1:
        return 0
    return int.from_bytes(seed[:8], "big") % window
