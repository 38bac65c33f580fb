"""Dependency operations: add, remove, list, and the topological order of issues."""

from __future__ import annotations

from grite.model.depgraph import topological_order, would_create_cycle
from grite.model.errors import Conflict, InvalidArgs
from grite.model.events import DEP_TYPES, DependencyAdded, DependencyRemoved
from grite.model.projection import Dependency
from grite.model.requests import (
    DepListResult,
    DepTopoResult,
    DepWriteResult,
    IssueDepArgs,
    IssueDepListArgs,
    IssueDepTopoArgs,
)
from grite.model.user_text import has_labels, label_filter
from grite.ops.context import OpContext
from grite.ops.issues import _edge, dependents_of, row, write_events

__all__ = ["dep_list", "dep_topo", "dep_write"]


def _dep_type(value: str) -> str:
    if value not in DEP_TYPES:
        raise InvalidArgs(
            f"unknown dependency type {value!r}; use one of: {', '.join(DEP_TYPES)}",
            {"value": value},
        )
    return value


def _deps_map(ctx: OpContext) -> dict[bytes, list[Dependency]]:
    return {s.issue_id: list(s.dependencies) for s in ctx.handle.summaries() if s.dependencies}


def dep_write(ctx: OpContext, args: IssueDepArgs) -> DepWriteResult:
    """Add or remove the edge `issue <dep_type> target`."""
    dep_type = _dep_type(args.dep_type)
    handle = ctx.handle
    issue_id = handle.resolve_issue(args.issue)
    target = handle.resolve_issue(args.target)
    if args.remove:
        kind: DependencyAdded | DependencyRemoved = DependencyRemoved(
            target=target, dep_type=dep_type
        )  # type: ignore[arg-type]
        action = "removed"
    else:
        if would_create_cycle(_deps_map(ctx), issue_id, target, dep_type):
            what = "to itself" if issue_id == target else "because it would make a cycle"
            raise Conflict(
                f"cannot add {issue_id.hex()[:8]} {dep_type} {target.hex()[:8]} {what}; "
                f"'{dep_type}' dependencies must stay acyclic (see 'grite issue dep list')",
                {"issue_id": issue_id.hex(), "target": target.hex(), "dep_type": dep_type},
            )
        kind = DependencyAdded(target=target, dep_type=dep_type)  # type: ignore[arg-type]
        action = "added"
    result = write_events(ctx, issue_id, [kind], action, lock=args.lock)
    return DepWriteResult(
        action=action,  # type: ignore[arg-type]
        issue_id=issue_id.hex(),
        target=target.hex(),
        dep_type=dep_type,
        event_id=result.event_ids[0],
        wal_head=result.wal_head,
    )


def dep_list(ctx: OpContext, args: IssueDepListArgs) -> DepListResult:
    issue_id = ctx.handle.resolve_issue(args.issue)
    if args.reverse:
        deps = [_edge(ctx, src, t) for src, t in dependents_of(ctx, issue_id)]
        return DepListResult(issue_id=issue_id.hex(), direction="dependents", deps=deps)
    p = ctx.handle.projection(issue_id)
    assert p is not None
    edges = sorted(
        ((t, dt) for (t, dt), el in p.dependencies.items() if el.present),
        key=lambda x: (x[1], x[0]),
    )
    deps = [_edge(ctx, t, dt) for t, dt in edges]
    return DepListResult(issue_id=issue_id.hex(), direction="dependencies", deps=deps)


def dep_topo(ctx: OpContext, args: IssueDepTopoArgs) -> DepTopoResult:
    summaries = {s.issue_id: s for s in ctx.handle.summaries()}
    wanted = label_filter(args.labels)
    ids = [
        i
        for i, s in summaries.items()
        if (args.state == "all" or s.state == args.state) and has_labels(wanted, s.labels)
    ]
    order = topological_order(ids, _deps_map(ctx), lambda i: (summaries[i].created_ts, i))
    return DepTopoResult(issues=[row(summaries[i]) for i in order])
