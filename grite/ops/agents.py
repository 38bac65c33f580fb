"""Agent operations: the ready queue (`issue ready`). The claim (`issue ready --claim`) is in
grite.ops.claims.
"""

from __future__ import annotations

from grite.model.depgraph import ready_issue_ids
from grite.model.projection import IssueSummary
from grite.model.requests_agents import (
    IssueReadyArgs,
    IssueReadyResult,
)
from grite.model.user_text import has_labels, label_filter
from grite.ops.context import OpContext
from grite.ops.issues import row

__all__ = ["issue_ready", "ready_summaries"]


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
