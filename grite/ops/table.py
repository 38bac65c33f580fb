"""The operation table: every args Struct, the operation that runs it, and the one way to run it.

Every path into business logic comes through here: the CLI after parsing argv
(grite.cli.app), the daemon's typed `Op` requests and `grite batch` (grite.ipc.local, run in
the daemon's worker threads), and `grite.Client` when it runs in-process. A new operation is
one entry in OPERATIONS; its arguments and its rendering live in the CLI area module that parses
it (grite/cli/*_commands.py).
"""

from __future__ import annotations

import functools
import operator
import os
import typing
from collections.abc import Callable
from typing import Any, Protocol

import msgspec

from grite.model import requests as rq
from grite.model.errors import InvalidArgs
from grite.model.requests_agents import IssueClaimArgs, IssueReadyArgs
from grite.model.requests_context import (
    ContextIndexArgs,
    ContextProjectArgs,
    ContextQueryArgs,
    ContextSetArgs,
    ContextShowArgs,
)
from grite.model.requests_locks import (
    LockAcquireArgs,
    LockGcArgs,
    LockReleaseArgs,
    LockRenewArgs,
    LockStatusArgs,
)
from grite.model.requests_maint import (
    DbStatsArgs,
    DoctorArgs,
    RebuildArgs,
    SnapshotCreateArgs,
    SnapshotGcArgs,
    SnapshotListArgs,
)
from grite.model.requests_prime import PrimeArgs
from grite.model.requests_sync import ExportArgs, SyncArgs
from grite.ops import (
    actors,
    agents,
    claims,
    context_store,
    deps,
    export,
    issues,
    locks,
    maint,
    prime,
    sync,
)
from grite.ops.context import ActorSelector, OpContext
from grite.ops.repo_handle import RepoHandle
from grite.storage.repo import RepoPaths, discover_repo

__all__ = [
    "OPERATIONS",
    "HandleProvider",
    "OpFunction",
    "OpRunner",
    "is_sync",
    "op_context",
    "op_runner",
]

OpFunction = Callable[[OpContext, Any], Any]


class HandleProvider(Protocol):
    """Where a request gets its open repositories: the daemon's warm registry
    (grite.daemon.registry) or handles opened for this process (grite.ipc.local)."""

    def get(self, paths: RepoPaths) -> RepoHandle: ...


OPERATIONS: dict[type, OpFunction] = {
    rq.InitArgs: actors.init,
    rq.ActorInitArgs: actors.actor_init,
    rq.ActorListArgs: actors.actor_list,
    rq.ActorShowArgs: actors.actor_show,
    rq.ActorCurrentArgs: actors.actor_current,
    rq.ActorUseArgs: actors.actor_use,
    rq.IssueCreateArgs: issues.issue_create,
    rq.IssueUpdateArgs: issues.issue_update,
    rq.IssueListArgs: issues.issue_list,
    rq.IssueShowArgs: issues.issue_show,
    rq.IssueCommentArgs: issues.issue_comment,
    rq.IssueCloseArgs: issues.issue_close,
    rq.IssueReopenArgs: issues.issue_reopen,
    rq.IssueLabelArgs: issues.issue_label,
    rq.IssueAssigneeArgs: issues.issue_assignee,
    rq.IssueLinkArgs: issues.issue_link,
    rq.IssueAttachArgs: issues.issue_attach,
    rq.IssueDepArgs: deps.dep_write,
    rq.IssueDepListArgs: deps.dep_list,
    rq.IssueDepTopoArgs: deps.dep_topo,
    IssueReadyArgs: agents.issue_ready,
    IssueClaimArgs: claims.issue_claim,
    SyncArgs: sync.sync,
    ExportArgs: export.export,
    LockAcquireArgs: locks.lock_acquire,
    LockRenewArgs: locks.lock_renew,
    LockReleaseArgs: locks.lock_release,
    LockStatusArgs: locks.lock_status,
    LockGcArgs: locks.lock_gc,
    SnapshotCreateArgs: maint.snapshot_create,
    SnapshotListArgs: maint.snapshot_list,
    SnapshotGcArgs: maint.snapshot_gc,
    RebuildArgs: maint.rebuild,
    DoctorArgs: maint.doctor,
    DbStatsArgs: maint.db_stats,
    ContextIndexArgs: context_store.context_index,
    ContextQueryArgs: context_store.context_query,
    ContextShowArgs: context_store.context_show,
    ContextProjectArgs: context_store.context_project,
    ContextSetArgs: context_store.context_set,
    PrimeArgs: prime.prime,
}


def is_sync(args_type: type) -> bool:
    """Whether an operation moves events between clones: its writes notify watchers as
    "sync", not "local_write" (for a forwarded `grite sync` and a typed Op alike)."""
    return issubclass(args_type, SyncArgs)


def op_context(
    *,
    cwd: str,
    opener: Callable[[RepoPaths], RepoHandle],
    request_id: bytes,
    now_ms: int,
    actor: str | None = None,
    data_dir: str | None = None,
    warnings: list[str] | None = None,
) -> OpContext:
    """The context an operation runs in, for the repository containing `cwd`.

    Args:
        cwd: where to discover the repository from (the client's directory).
        opener: returns an open RepoHandle for the repository (warm in the daemon).
        request_id: idempotency key (new ids and event ids derive from it).
        now_ms: the client's clock (a retry reproduces identical events).
        actor: act as this actor id (like --actor).
        data_dir: actor data directory (like --data-dir), absolute or relative to cwd.
        warnings: receives lines to show the user (e.g. lock policy warnings).

    Raises:
        GriteError: no repository at `cwd`, or an explicit actor that does not exist (an
            error even for reads).
    """
    if data_dir is not None and not os.path.isabs(data_dir):
        data_dir = os.path.join(cwd, data_dir)
    ctx = OpContext(
        paths=discover_repo(cwd),
        opener=opener,
        selector=ActorSelector(actor=actor or None, data_dir=data_dir),
        request_id=request_id,
        now_ms=now_ms,
        warnings=warnings,
    )
    if ctx.selector.actor is not None or ctx.selector.data_dir is not None:
        actors.resolve_actor(ctx, create=False)
    return ctx


class OpRunner:
    """Runs operations given as args Structs, for callers that have no argv to parse."""

    def __init__(self, operations: typing.Mapping[type, OpFunction]) -> None:
        self._ops = dict(operations)
        union = functools.reduce(operator.or_, self._ops)
        self._msgpack: msgspec.msgpack.Decoder[Any] = msgspec.msgpack.Decoder(union)
        self._json: msgspec.json.Decoder[Any] = msgspec.json.Decoder(union)
        self._results: dict[type, type | None] = {}

    def decode(self, data: bytes, *, json: bool = False) -> Any:
        """Decode one args Struct from msgpack (or JSON) using its `"type"` tag.

        Raises:
            InvalidArgs: not an object, an unknown type, or fields that do not fit.
        """
        try:
            return (self._json if json else self._msgpack).decode(data)
        except msgspec.DecodeError as exc:
            raise InvalidArgs(
                f'invalid command: {exc}; a command is an object whose "type" names the '
                'operation, e.g. {"type": "issue_show", "issue": "abcd"}; run "grite batch --help" '
                "for every type and its keys",
                {"error": str(exc)},
            ) from exc

    def result_type(self, args_type: type) -> type | None:
        """The result Struct an operation returns (from its annotation), if declared."""
        if args_type not in self._results:
            fn = self._ops.get(args_type)
            hint: Any = None
            if fn is not None:
                try:
                    hint = typing.get_type_hints(fn).get("return")
                except (NameError, TypeError):
                    hint = None
            self._results[args_type] = hint if isinstance(hint, type) else None
        return self._results[args_type]

    def operation(self, args: Any) -> OpFunction:
        """The operation that runs `args`.

        Raises:
            InvalidArgs: no operation takes this args type.
        """
        fn = self._ops.get(type(args))
        if fn is None:
            raise InvalidArgs(f"unknown operation {type(args).__name__}")
        return fn

    def run(self, ctx: OpContext, args: Any) -> Any:
        """Run the operation for `args` in `ctx` (see op_context).

        Raises:
            GriteError: whatever the operation raises; InvalidArgs for an unknown type.
        """
        return ctx.run(self.operation(args), args)


@functools.cache
def op_runner() -> OpRunner:
    """The OpRunner over OPERATIONS (its decoders are built once per process)."""
    return OpRunner(OPERATIONS)
