"""Typed arguments and results of every grite operation.

The CLI builds an args Struct from argv; the daemon's typed protocol carries the same Structs;
grite.ops turns args into a result Struct; rendering turns the result into text or JSON. Ids
in results are lowercase hex strings, since results are what users and JSON consumers see.
Tags never change (they are wire names); new fields get defaults.
"""

from __future__ import annotations

from typing import Literal

import msgspec

__all__ = [
    "ActorCurrentArgs",
    "ActorInfo",
    "ActorInitArgs",
    "ActorListArgs",
    "ActorCard",
    "ActorListResult",
    "ActorShowResult",
    "ActorShowArgs",
    "ActorUseArgs",
    "ActorUseResult",
    "AttachmentView",
    "CommentView",
    "DepEdgeView",
    "DepListResult",
    "DepTopoResult",
    "DepWriteResult",
    "DependencyView",
    "InitArgs",
    "InitResult",
    "IssueAssigneeArgs",
    "IssueAttachArgs",
    "IssueCloseArgs",
    "IssueCommentArgs",
    "IssueCreateArgs",
    "IssueCreateResult",
    "IssueDepArgs",
    "IssueDepListArgs",
    "IssueDepTopoArgs",
    "IssueLabelArgs",
    "IssueLinkArgs",
    "IssueListArgs",
    "IssueListResult",
    "IssueReopenArgs",
    "IssueRow",
    "IssueShowArgs",
    "IssueUpdateArgs",
    "IssueView",
    "IssueWriteResult",
    "LinkView",
    "ShowEvent",
    "OpArgs",
]


class _Args(msgspec.Struct, frozen=True, kw_only=True, tag=True):
    pass


class _Result(msgspec.Struct, frozen=True, kw_only=True):
    pass


# -- arguments ------------------------------------------------------------------------------


class InitArgs(_Args, frozen=True, kw_only=True, tag="init"):
    no_agents_md: bool = False


class ActorInitArgs(_Args, frozen=True, kw_only=True, tag="actor_init"):
    label: str | None = None
    generate_key: bool = False


class ActorListArgs(_Args, frozen=True, kw_only=True, tag="actor_list"):
    pass


class ActorShowArgs(_Args, frozen=True, kw_only=True, tag="actor_show"):
    actor_id: str | None = None


class ActorCurrentArgs(_Args, frozen=True, kw_only=True, tag="actor_current"):
    pass


class ActorUseArgs(_Args, frozen=True, kw_only=True, tag="actor_use"):
    actor_id: str


class IssueCreateArgs(_Args, frozen=True, kw_only=True, tag="issue_create"):
    title: str
    body: str = ""
    labels: list[str] = []


class IssueUpdateArgs(_Args, frozen=True, kw_only=True, tag="issue_update"):
    issue: str
    title: str | None = None
    body: str | None = None
    lock: bool = False  # --lock: hold issue:<id> for the write (grite 0.5.3's flag)


class IssueListArgs(_Args, frozen=True, kw_only=True, tag="issue_list"):
    state: Literal["open", "closed", "all"] = "open"
    labels: list[str] = []
    assignee: str | None = None
    search: str | None = None
    sort: Literal["created", "updated", "title"] = "created"
    limit: int | None = None
    # The sort order backwards (created: newest first); `grite issue list` shows the newest
    # first unless --reverse, the typed API keeps grite 0.5.3's oldest first.
    reverse: bool = False


class IssueShowArgs(_Args, frozen=True, kw_only=True, tag="issue_show"):
    issue: str


class IssueCommentArgs(_Args, frozen=True, kw_only=True, tag="issue_comment"):
    issue: str
    body: str
    lock: bool = False  # --lock: hold issue:<id> for the write (grite 0.5.3's flag)


class IssueCloseArgs(_Args, frozen=True, kw_only=True, tag="issue_close"):
    issue: str
    lock: bool = False  # --lock: hold issue:<id> for the write (grite 0.5.3's flag)
    comment: str | None = None  # --comment: a comment written in the same commit


class IssueReopenArgs(_Args, frozen=True, kw_only=True, tag="issue_reopen"):
    issue: str
    lock: bool = False  # --lock: hold issue:<id> for the write (grite 0.5.3's flag)
    comment: str | None = None  # --comment: a comment written in the same commit


class IssueLabelArgs(_Args, frozen=True, kw_only=True, tag="issue_label"):
    issue: str
    add: list[str] = []
    remove: list[str] = []
    lock: bool = False  # --lock: hold issue:<id> for the write (grite 0.5.3's flag)


class IssueAssigneeArgs(_Args, frozen=True, kw_only=True, tag="issue_assignee"):
    issue: str
    add: list[str] = []
    remove: list[str] = []
    lock: bool = False  # --lock: hold issue:<id> for the write (grite 0.5.3's flag)


class IssueLinkArgs(_Args, frozen=True, kw_only=True, tag="issue_link"):
    issue: str
    url: str
    note: str | None = None
    lock: bool = False  # --lock: hold issue:<id> for the write (grite 0.5.3's flag)


class IssueAttachArgs(_Args, frozen=True, kw_only=True, tag="issue_attach"):
    issue: str
    name: str
    sha256: str
    mime: str
    lock: bool = False  # --lock: hold issue:<id> for the write (grite 0.5.3's flag)


class IssueDepArgs(_Args, frozen=True, kw_only=True, tag="issue_dep"):
    issue: str
    target: str
    dep_type: str = "depends_on"
    remove: bool = False
    lock: bool = False  # --lock: hold issue:<id> for the write (grite 0.5.3's flag)


class IssueDepListArgs(_Args, frozen=True, kw_only=True, tag="issue_dep_list"):
    issue: str
    reverse: bool = False


class IssueDepTopoArgs(_Args, frozen=True, kw_only=True, tag="issue_dep_topo"):
    state: Literal["open", "closed", "all"] = "open"
    labels: list[str] = []


OpArgs = (
    InitArgs
    | ActorInitArgs
    | ActorListArgs
    | ActorShowArgs
    | ActorCurrentArgs
    | ActorUseArgs
    | IssueCreateArgs
    | IssueUpdateArgs
    | IssueListArgs
    | IssueShowArgs
    | IssueCommentArgs
    | IssueCloseArgs
    | IssueReopenArgs
    | IssueLabelArgs
    | IssueAssigneeArgs
    | IssueLinkArgs
    | IssueAttachArgs
    | IssueDepArgs
    | IssueDepListArgs
    | IssueDepTopoArgs
)

# -- results --------------------------------------------------------------------------------


class InitResult(_Result, frozen=True, kw_only=True):
    actor_id: str
    data_dir: str
    repo_config: str
    action: Literal["created", "existing"]
    agents_md_action: Literal["created", "updated", "skipped", "disabled"]
    agents_md_path: str | None = None


class ActorInfo(_Result, frozen=True, kw_only=True):
    actor_id: str
    label: str | None = None
    created_ts: int | None = None
    data_dir: str | None = None
    public_key: str | None = None
    key_scheme: str | None = None
    source: str | None = None
    is_default: bool = False


class ActorCard(_Result, frozen=True, kw_only=True):
    """grite 0.5.3's `actor show` object."""

    actor_id: str
    label: str | None = None
    created_ts: int | None = None
    public_key: str | None = None
    key_scheme: str | None = None


class ActorShowResult(ActorInfo, frozen=True, kw_only=True):
    """`actor show`: our flat fields, plus 0.5.3's payload `{"actor": {...}}`."""

    actor: ActorCard


class ActorListResult(_Result, frozen=True, kw_only=True):
    actors: list[ActorInfo]


class ActorUseResult(_Result, frozen=True, kw_only=True):
    default_actor: str
    repo_config: str


class IssueWriteResult(_Result, frozen=True, kw_only=True):
    """`event_id` is grite 0.5.3's key (its writes make one event): the first of event_ids."""

    action: str
    issue_id: str
    event_ids: list[str]
    wal_head: str | None
    state: str | None = None
    title: str | None = None
    event_id: str | None = None


class IssueRow(_Result, frozen=True, kw_only=True):
    issue_id: str
    title: str
    state: str
    labels: list[str]
    assignees: list[str]
    author: str
    created_ts: int
    updated_ts: int
    comment_count: int


class IssueListResult(_Result, frozen=True, kw_only=True):
    issues: list[IssueRow]
    total: int
    open: int
    closed: int
    hint: str | None = None  # a next step when there is nothing here yet (first use)


class CommentView(_Result, frozen=True, kw_only=True):
    event_id: str
    actor: str
    ts_unix_ms: int
    body: str
    actor_label: str | None = None  # the actor's label when this clone knows it


class LinkView(_Result, frozen=True, kw_only=True):
    event_id: str
    actor: str
    ts_unix_ms: int
    url: str
    note: str | None = None


class AttachmentView(_Result, frozen=True, kw_only=True):
    event_id: str
    actor: str
    ts_unix_ms: int
    name: str
    sha256: str
    mime: str


class DepEdgeView(_Result, frozen=True, kw_only=True):
    issue_id: str
    dep_type: str
    title: str | None = None
    state: str | None = None


class DependencyView(DepEdgeView, frozen=True, kw_only=True):
    """An outgoing edge in `issue show`: `target` repeats issue_id (0.5.3's daemon name)."""

    target: str


class ShowEvent(_Result, frozen=True, kw_only=True):
    """One event as grite 0.5.3's `issue show` prints it: ids in hex, `kind` externally
    tagged with its fields (byte fields as arrays of integers, as serde writes them)."""

    event_id: str
    issue_id: str
    actor: str
    ts_unix_ms: int
    parent: str | None
    kind: dict[str, dict[str, object]]


class IssueView(_Result, frozen=True, kw_only=True):
    issue_id: str
    title: str
    body: str
    state: str
    labels: list[str]
    assignees: list[str]
    author: str
    created_ts: int
    updated_ts: int
    comments: list[CommentView]
    links: list[LinkView]
    attachments: list[AttachmentView]
    dependencies: list[DependencyView]
    dependents: list[DepEdgeView]
    event_count: int
    comment_count: int = 0
    # grite 0.5.3's `issue show` payload: the summary and the events, oldest first.
    issue: IssueRow | None = None
    events: list[ShowEvent] = []
    author_label: str | None = None  # the author's label when this clone knows it
    # Actor ids (hex) among the assignees, with the handle human output shows for each.
    assignee_handles: dict[str, str] = {}


class IssueCreateResult(IssueWriteResult, frozen=True, kw_only=True):
    """`issue create`: also the new issue's fields, as 0.5.3's daemon returns them."""

    body: str = ""
    labels: list[str] = []
    assignees: list[str] = []
    comments: list[CommentView] = []
    links: list[LinkView] = []
    attachments: list[AttachmentView] = []
    dependencies: list[DepEdgeView] = []
    created_ts: int = 0
    updated_ts: int = 0


class DepWriteResult(_Result, frozen=True, kw_only=True):
    action: Literal["added", "removed"]
    issue_id: str
    target: str
    dep_type: str
    event_id: str | None
    wal_head: str | None


class DepListResult(_Result, frozen=True, kw_only=True):
    issue_id: str
    direction: Literal["dependencies", "dependents"]
    deps: list[DepEdgeView]


class DepTopoResult(_Result, frozen=True, kw_only=True):
    issues: list[IssueRow]
    order: str = "topological"
