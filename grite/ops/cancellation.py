"""Ctrl-C that means it: a request whose client went away is abandoned before its write is
durable, never after.

The daemon runs a forwarded command in a worker thread; when the client hangs up (Ctrl-C
half-closes or closes its connection) the daemon sets that request's event
(grite.daemon.session). Writes look at it at the one moment that decides: when the group
commit takes a write (grite.ops.repo_handle.RepoHandle.append), and before `grite sync` moves
the local WAL or pushes (grite.ops.sync). A write taken before the hang-up is committed and the
client, which waits for the final reply after its Ctrl-C, prints what was done. The in-process
path has no event: KeyboardInterrupt interrupts it where it stands, as before.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

from grite.model.errors import Cancelled

__all__ = ["cancellable", "checkpoint", "current"]

_local = threading.local()


@contextmanager
def cancellable(event: threading.Event | None) -> Iterator[None]:
    """Run the body with `event` as this thread's cancellation (None: not cancellable)."""
    previous = getattr(_local, "event", None)
    _local.event = event
    try:
        yield
    finally:
        _local.event = previous


def current() -> threading.Event | None:
    """This thread's cancellation event, captured by work another thread finishes."""
    return getattr(_local, "event", None)


def checkpoint(what: str, event: threading.Event | None = None) -> None:
    """Raise Cancelled when the request was interrupted; `what` says what was not done.

    Raises:
        Cancelled: the client went away (Ctrl-C) before this point.
    """
    ev = current() if event is None else event
    if ev is not None and ev.is_set():
        raise Cancelled(f"interrupted: {what}", {"cancelled": True})
