"""Agent operations: the ready queue (`issue ready`), plus OpRunner, which runs any operation
from its args Struct outside argv parsing (the daemon's typed `Op` request, `grite batch` and
`grite.Client` in-process all go through it). The claim (`issue ready --claim`) is in
grite.ops.claims. Must not import grite.cli, grite.ipc or grite.daemon.
"""

from __future__ import annotations

import functools
import operator
import typing
from collections.abc import Callable, Mapping
from typing import Any

import msgspec

from grite.model.depgraph import ready_issue_ids
from grite.model.errors import InvalidArgs
from grite.model.projection import IssueSummary
from grite.model.requests_agents import (
    IssueReadyArgs,
    IssueReadyResult,
)
from grite.model.user_text import has_labels, label_filter
from grite.ops.actors import resolve_actor
from grite.ops.context import ActorSelector, OpContext
from grite.ops.issues import row
from grite.ops.repo_handle import RepoHandle
from grite.storage.repo import RepoPaths, discover_repo

__all__ = ["OpRunner", "issue_ready", "ready_summaries"]


def ready_summaries(ctx: OpContext, labels: list[str]) -> list[IssueSummary]:
    """The ready issues with every label in `labels`, oldest first."""
    summaries = ctx.handle.summaries()
    by_id = {s.issue_id: s for s in summaries}
    deps = {s.issue_id: s.dependencies for s in summaries}
    wanted = label_filter([x for x in labels if x.strip()])
    ready = [by_id[i] for i in ready_issue_ids(summaries, deps)]
    return [s for s in ready if has_labels(wanted, s.labels)]


def issue_ready(ctx: OpContext, args: IssueReadyArgs) -> IssueReadyResult:
    """Open issues none of whose depends_on targets is open and that no open issue blocks.

    Ordered by (created_ts, issue_id): oldest first, stable across calls and machines.
    """
    rows = [row(s) for s in ready_summaries(ctx, args.labels)]
    return IssueReadyResult(issues=rows, total=len(rows))


OpFunction = Callable[[OpContext, Any], Any]


class OpRunner:
    """Runs operations given as args Structs, for callers that have no argv to parse.

    Args:
        operations: the table from args type to op function (grite.cli.app.OPERATIONS); it
            is passed in because ops must not import the CLI.
    """

    def __init__(self, operations: Mapping[type, OpFunction]) -> None:
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

    def run(
        self,
        args: Any,
        *,
        cwd: str,
        opener: Callable[[RepoPaths], RepoHandle],
        request_id: bytes,
        now_ms: int,
        actor: str | None = None,
        data_dir: str | None = None,
        warnings: list[str] | None = None,
    ) -> Any:
        """Run one operation against the repository containing `cwd`.

        Args:
            args: the args Struct.
            cwd: where to discover the repository from.
            opener: returns an open RepoHandle for the repository (warm in the daemon).
            request_id: idempotency key (new ids and event ids derive from it).
            now_ms: the client's clock (a retry reproduces identical events).
            actor: act as this actor id (like --actor).
            data_dir: actor data directory (like --data-dir), absolute or relative to cwd.
            warnings: receives lines to show the user (e.g. lock policy warnings).

        Returns:
            The operation's result Struct.

        Raises:
            GriteError: whatever the operation raises; InvalidArgs for an unknown type.
        """
        fn = self._ops.get(type(args))
        if fn is None:
            raise InvalidArgs(f"unknown operation {type(args).__name__}")
        paths = discover_repo(cwd)
        if data_dir is not None and not data_dir.startswith("/"):
            data_dir = f"{cwd.rstrip('/')}/{data_dir}"
        selector = ActorSelector(actor=actor or None, data_dir=data_dir)
        ctx = OpContext(
            paths=paths,
            opener=opener,
            selector=selector,
            request_id=request_id,
            now_ms=now_ms,
            warnings=warnings,
        )
        if selector.actor is not None or selector.data_dir is not None:
            resolve_actor(ctx, create=False)
        return ctx.run(fn, args)
