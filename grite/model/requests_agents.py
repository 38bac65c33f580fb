"""Arguments and results of the agent operations: the ready queue and the atomic claim.

Same conventions as grite.model.requests: frozen, kw_only, args tagged with a fixed snake_case
name (the `"type"` of a `grite batch` line), ids as lowercase hex in results, new fields get
defaults. Pure: imports only msgspec and grite.model.
"""

from __future__ import annotations

import msgspec

from grite.model.requests import IssueRow

__all__ = [
    "READY_ORDER",
    "IssueClaimArgs",
    "IssueClaimResult",
    "IssueReadyArgs",
    "IssueReadyResult",
]

# The documented order of `issue ready`: oldest first, ties broken by issue id.
READY_ORDER = "created_ts,issue_id"


class IssueReadyArgs(msgspec.Struct, frozen=True, kw_only=True, tag="issue_ready"):
    """Open issues that nothing open holds back, optionally only those with every label."""

    labels: list[str] = []


class IssueClaimArgs(msgspec.Struct, frozen=True, kw_only=True, tag="issue_claim"):
    """Take the first ready issue that nobody has claimed: lease it and assign it to me."""

    labels: list[str] = []
    ttl: str | None = None  # lease length, e.g. "300", "15m" (default 300 s)
    local: bool = False  # lease in this clone only, even when a grite remote exists


class IssueReadyResult(msgspec.Struct, frozen=True, kw_only=True):
    issues: list[IssueRow]
    total: int
    order: str = READY_ORDER


class IssueClaimResult(msgspec.Struct, frozen=True, kw_only=True):
    """The claimed issue (as it is after the assignment), the lease and the write."""

    issue: IssueRow
    assignee: str  # the acting actor's id (hex), added to the issue's assignees
    lease_resource: str  # "issue:<issue id>"
    lease_owner: str
    lease_expires_unix_ms: int
    event_ids: list[str]
    wal_head: str | None
    skipped: int = 0  # ready issues passed over because someone had claimed them
    remote: str | None = None  # the git remote that granted the lease (None: this clone)
