"""Handlers that run something for the client: a forwarded command line and a typed Op.

Both run in the worker pool against the per-repository registry (blocking work never runs on
the loop); more than `max_in_flight` at once are answered `busy`. A forwarded argv goes to the
executor (default_executor: the CLI app); an Op to run_op. A read whose repository did not
move while it ran is kept (replies.py) for the next identical request. After each, the
repositories it touched are refreshed in the notification hub (source local_write, or sync for
a sync).

What runs: a typed operation goes through grite.ipc.local.run_op over grite.ops.table, the
code the in-process path runs; a forwarded command line through grite.cli.app.run_invocation,
and this module is the one place the daemon imports the CLI (it parses argv, as Mercurial's
chg server runs hg's dispatch for its clients). Both run against the registry's warm handles
in the worker pool, imported lazily, only ever inside the daemon and after it has reported
ready.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from grite.daemon.replies import READ_TAGS, key_of, read_tag
from grite.daemon.session import Refusal
from grite.ipc import protocol
from grite.model.errors import GriteError
from grite.model.invocation import command_word
from grite.ops.cancellation import cancellable

if TYPE_CHECKING:
    import threading
    from concurrent.futures import ThreadPoolExecutor

    from grite.daemon.hub import Hub
    from grite.daemon.registry import Registry, RequestHandles
    from grite.daemon.replies import ReplyCache, Stamp
    from grite.daemon.service import Load
    from grite.daemon.session import Call
    from grite.model.invocation import Invocation, Outcome
    from grite.storage.wal import Wal

__all__ = [
    "Commands",
    "Executor",
    "Executors",
    "OpExecutor",
    "default_executor",
    "discover",
    "notification_source",
    "run_op",
]

_log = logging.getLogger("grite.daemon")

Executor = Callable[["Invocation", "RequestHandles"], "Outcome"]
# Runs one typed Op: (op, request id, actor, handles) -> (result, notification source).
OpExecutor = Callable[[protocol.Op, bytes, str, "RequestHandles"], "tuple[protocol.OpResult, str]"]


# -- what runs ---------------------------------------------------------------------------


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


@dataclass(frozen=True)
class Executors:
    """What runs the work: `argv` a forwarded command line (default: the CLI app), `op` a
    typed Op (None: run_op, whose reads may be kept)."""

    argv: Executor = default_executor
    op: OpExecutor | None = None


def _tag(kind: type) -> str:
    config = getattr(kind, "__struct_config__", None)
    tag = getattr(config, "tag", None)
    return tag if isinstance(tag, str) else ""


class Commands:
    """`cmd_run_argv` and `cmd_op`, and the worker-side runs behind them.

    Args:
        executors: what runs a command line and an Op.
        registry: the per-repository handles.
        hub: the notification hub refreshed after each request.
        replies: where kept answers of reads go.
        load: the daemon's counters (in flight).
        pool: the worker threads.
        max_in_flight: requests running at once before answering `busy`.
    """

    def __init__(
        self,
        executors: Executors,
        registry: Registry,
        hub: Hub,
        replies: ReplyCache,
        load: Load,
        pool: ThreadPoolExecutor,
        max_in_flight: int,
    ) -> None:
        self._executors = executors
        self._registry = registry
        self._hub = hub
        self._replies = replies
        self._load = load
        self._pool = pool
        self._max_in_flight = max_in_flight

    def _enter(self) -> None:
        if self._load.in_flight >= self._max_in_flight:
            raise Refusal("busy", f"{self._load.in_flight} commands in flight; try again")
        self._load.in_flight += 1

    async def cmd_run_argv(self, request: protocol.Request, call: Call) -> protocol.ResultData:
        body = request.body
        assert isinstance(body, protocol.RunArgv)
        self._enter()
        try:
            loop = asyncio.get_running_loop()
            outcome, kept = await loop.run_in_executor(
                self._pool, self._execute, body.invocation, request.actor, call.cancel
            )
        finally:
            self._load.in_flight -= 1
        result = protocol.RunArgvResult(outcome=outcome)
        key = key_of(request)
        if kept is not None and key is not None:
            self._replies.keep(key, kept[0], kept[1], result)
        return result

    def _execute(
        self, invocation: Invocation, actor: str, cancel: threading.Event | None = None
    ) -> tuple[Outcome, tuple[Wal, Stamp] | None]:
        """Run one command line; also (WAL, stamp) when its output may be kept."""
        # Only `issue ...` commands hold reads whose output may be kept; only the default
        # executor reports which operation ran.
        executor = self._executors.argv
        may_keep = executor is default_executor and command_word(invocation.argv) == "issue"
        with self._registry.scope(actor) as handles, cancellable(cancel):
            before = _stamp_of(invocation.cwd, handles) if may_keep else None
            outcome = executor(invocation, handles)
            used = handles.used()
            ran = list(handles.ran)
        source = notification_source(ran)
        self._publish(used, source)
        read = len(ran) == 1 and _tag(ran[0]) in READ_TAGS
        if before is None or not read or outcome.exit_code or outcome.stderr:
            return outcome, None
        return outcome, before if before[0].stamp() == before[1] else None

    async def cmd_op(self, request: protocol.Request, call: Call) -> protocol.ResultData:
        body = request.body
        assert isinstance(body, protocol.Op)
        self._enter()
        try:
            loop = asyncio.get_running_loop()
            result, kept = await loop.run_in_executor(
                self._pool, self._execute_op, body, request, call.cancel
            )
        finally:
            self._load.in_flight -= 1
        key = key_of(request)
        if kept is not None and key is not None:
            self._replies.keep(key, kept[0], kept[1], result)
        return result

    def _execute_op(
        self, op: protocol.Op, request: protocol.Request, cancel: threading.Event | None = None
    ) -> tuple[protocol.OpResult, tuple[Wal, Stamp] | None]:
        """Run one Op; also (WAL, stamp) when its answer may be kept for the next ones."""
        op_executor = self._executors.op
        with self._registry.scope(request.actor) as handles, cancellable(cancel):
            before = None if op_executor else _read_stamp(op, handles)
            run = op_executor or run_op
            result, source = run(op, request.request_id, request.actor, handles)
            used = handles.used()
        self._publish(used, source)
        if before is None or result.error is not None or result.warnings:
            return result, None
        # Kept only if the ref did not move while the read ran: it then saw that head.
        return result, before if before[0].stamp() == before[1] else None

    def _publish(self, git_dirs: list[str], source: str) -> None:
        for git_dir in git_dirs:
            try:
                self._hub.refresh(git_dir, source)
            except Exception:  # notifications are best effort; the request already succeeded
                _log.exception("cannot publish notifications for %s", git_dir)


def _read_stamp(op: protocol.Op, handles: RequestHandles) -> tuple[Wal, Stamp] | None:
    """For a read that may be kept: its repository's WAL and ref stamp, before it runs."""
    if read_tag(bytes(op.args)) not in READ_TAGS:
        return None
    return _stamp_of(op.cwd, handles)


def _stamp_of(cwd: str, handles: RequestHandles) -> tuple[Wal, Stamp] | None:
    try:
        handle = handles.get(discover(cwd))
    except GriteError:
        return None  # the request itself reports it
    wal = getattr(handle, "wal", None)
    if wal is None or getattr(handle, "wal_error", None) is not None:
        return None  # a damaged WAL: every read looks again
    return wal, wal.stamp()
