"""What a daemon request executes: a forwarded command line or a typed operation.

A typed operation runs through grite.ipc.local.run_op over grite.ops.table, the code the
in-process path runs; a forwarded command line runs through grite.cli.app.run_invocation, the
one place the daemon imports the CLI (it parses argv, as Mercurial's chg server runs hg's
dispatch for its clients). Both run against the registry's warm handles in the daemon's
worker pool, imported lazily, only ever inside the daemon and after it has reported ready.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from grite.daemon.registry import RequestHandles
from grite.ipc import protocol

if TYPE_CHECKING:
    from grite.model.invocation import Invocation, Outcome

__all__ = ["default_executor", "discover", "notification_source", "run_op"]


def default_executor(inv: Invocation, handles: RequestHandles) -> Outcome:
    # Deliberately lazy, and only ever in the daemon: the CLI app pulls argh, dulwich and
    # diskcache, which the daemon loads in a worker thread after it has reported ready.
    from grite.cli import app

    return app.run_invocation(inv, handles, ran=handles.ran)  # type: ignore[arg-type]


def run_op(
    op: protocol.Op, request_id: bytes, actor: str, handles: RequestHandles
) -> tuple[protocol.OpResult, str]:
    """Run one Op as the in-process path does (grite.ipc.local.run_op)."""
    # Deliberately lazy, like default_executor.
    from grite.ipc import local

    return local.run_op(op, request_id, actor, handles)


def discover(cwd: str) -> Any:
    # Deliberately lazy: storage pulls in dulwich, loaded in a worker thread after ready.
    from grite.storage.repo import discover_repo

    return discover_repo(cwd)


def notification_source(ran: list[type]) -> str:
    """How watchers hear of what a request wrote: "sync" when it ran a sync."""
    # Deliberately lazy, like default_executor.
    from grite.ops.table import is_sync

    return "sync" if any(is_sync(t) for t in ran) else "local_write"
