"""What a daemon request executes: a forwarded command line or a typed operation.

Both run through grite.cli.local, the same code the in-process path runs, against the
registry's warm handles in the supervisor's thread pool. The CLI app, and with it argh, dulwich
and diskcache, is imported lazily here, only ever inside the daemon and after it has reported
ready.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from grite.daemon.registry import RequestHandles
from grite.ipc import protocol

if TYPE_CHECKING:
    from grite.model.invocation import Invocation, Outcome

__all__ = ["default_executor", "discover", "run_op"]


def default_executor(inv: Invocation, handles: RequestHandles) -> Outcome:
    # Deliberately lazy, and only ever in the daemon: the CLI app pulls argh, dulwich and
    # diskcache, which the daemon loads in a worker thread after it has reported ready.
    from grite.cli import app

    return app.run_invocation(inv, handles, ran=handles.ran)  # type: ignore[arg-type]


def run_op(
    op: protocol.Op, request_id: bytes, actor: str, handles: RequestHandles
) -> tuple[protocol.OpResult, str]:
    """Run one Op as the in-process path does (grite.cli.local.run_op)."""
    # Deliberately lazy, like default_executor.
    from grite.cli import local

    return local.run_op(op, request_id, actor, handles)  # type: ignore[arg-type]


def discover(cwd: str) -> Any:
    # Deliberately lazy: storage pulls in dulwich, loaded in a worker thread after ready.
    from grite.storage.repo import discover_repo

    return discover_repo(cwd)
