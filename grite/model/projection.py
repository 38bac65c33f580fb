"""The CRDT projection of one issue: what its events add up to.

Unlike grite 0.5.3 (https://github.com/neul-labs/grite/blob/main/crates/libgrite-core/src/projection.rs), which applied events in arrival order and failed on
an event before its IssueCreated, this projection is a state-based CRDT: applying the same set
of events in any order, any number of times, yields an equal `IssueProjection`. Sync delivers
events in whatever order the WAL chain gives, so that property is what keeps every clone's
view identical.

Rules, all keyed on `Event.version` = (ts_unix_ms, actor, event_id), compared lexicographically;
a version is unique because it contains the event id:

- title, body, state: last-writer-wins registers. IssueCreated writes title, body and state
  "open" at its version; IssueUpdated writes its non-null fields; StateChanged writes state.
- labels, assignees, dependencies: last-writer-wins element sets. Each element keeps the version
  of its newest add or remove and is present iff that was an add. IssueCreated's labels are adds
  at the create's version. A remove of an unseen element is kept as a tombstone, so that an add
  delivered later but written earlier stays removed.
- comments, links, attachments: grow-only, kept sorted by version.
- created_ts / author come from the IssueCreated with the smallest version, so a crafted second
  create changes nothing about who created the issue. Every create still writes its registers.
- An issue without an IssueCreated keeps its state but has `created == False`; queries hide it
  until the create arrives.
- ContextUpdated and ProjectContextUpdated are not issue events: applying them changes nothing.

Pure: imports only grite.model, no I/O. `apply_event` is on the view's catch-up hot path, so it
does O(log n) work per event (bisect into sorted lists) and never copies the projection.
"""

from __future__ import annotations

import bisect
from collections.abc import Hashable, Iterable
from typing import TypeVar

import msgspec

from grite.model.errors import GriteError
from grite.model.events import (
    AssigneeAdded,
    AssigneeRemoved,
    AttachmentAdded,
    CommentAdded,
    ContextUpdated,
    DependencyAdded,
    DependencyRemoved,
    Event,
    IssueCreated,
    IssueUpdated,
    LabelAdded,
    LabelRemoved,
    LinkAdded,
    ProjectContextUpdated,
    StateChanged,
)

__all__ = [
    "Attachment",
    "Comment",
    "Dependency",
    "IssueProjection",
    "IssueSummary",
    "Link",
    "LwwElement",
    "Version",
    "apply_event",
    "copy_projection",
    "current_assignees",
    "current_dependencies",
    "current_labels",
    "new_projection",
    "project",
    "summarize",
]

Version = tuple[int, bytes, bytes]
"""(ts_unix_ms, actor, event_id): the last-writer-wins order of events."""

_K = TypeVar("_K", bound=Hashable)


class Comment(msgspec.Struct, frozen=True, kw_only=True):
    event_id: bytes
    actor: bytes
    ts_unix_ms: int
    body: str


class Link(msgspec.Struct, frozen=True, kw_only=True):
    event_id: bytes
    actor: bytes
    ts_unix_ms: int
    url: str
    note: str | None = None


class Attachment(msgspec.Struct, frozen=True, kw_only=True):
    event_id: bytes
    actor: bytes
    ts_unix_ms: int
    name: str
    sha256: bytes
    mime: str


class Dependency(msgspec.Struct, frozen=True, kw_only=True):
    """An edge stored on its source issue: `source <dep_type> target`."""

    target: bytes
    dep_type: str


class LwwElement(msgspec.Struct, frozen=True, kw_only=True):
    """One member of a last-writer-wins element set: its newest add or remove."""

    version: Version
    present: bool


class IssueSummary(msgspec.Struct, frozen=True, kw_only=True):
    issue_id: bytes
    title: str
    state: str
    labels: list[str]
    assignees: list[str]
    created_ts: int
    updated_ts: int
    comment_count: int
    author: bytes
    dependencies: list[Dependency] = []


class IssueProjection(msgspec.Struct, kw_only=True):
    """The current state of one issue. Mutable: `apply_event` updates it in place.

    `applied` holds the id of every issue event applied, which makes application idempotent;
    `event_count` is its size.
    """

    issue_id: bytes
    created: bool = False
    created_version: Version | None = None
    created_ts: int = 0
    author: bytes = b""
    updated_ts: int = 0
    title: str = ""
    title_version: Version | None = None
    body: str = ""
    body_version: Version | None = None
    state: str = "open"
    state_version: Version | None = None
    labels: dict[str, LwwElement] = msgspec.field(default_factory=dict)
    assignees: dict[str, LwwElement] = msgspec.field(default_factory=dict)
    dependencies: dict[tuple[bytes, str], LwwElement] = msgspec.field(default_factory=dict)
    comments: list[Comment] = msgspec.field(default_factory=list)
    links: list[Link] = msgspec.field(default_factory=list)
    attachments: list[Attachment] = msgspec.field(default_factory=list)
    applied: set[bytes] = msgspec.field(default_factory=set)
    # Every issue event applied, sorted by version: what `issue show --json` lists as `events`.
    events: list[Event] = msgspec.field(default_factory=list)

    @property
    def event_count(self) -> int:
        """Distinct issue events applied (duplicates and context events not counted)."""
        return len(self.applied)


def _record_version(rec: Comment | Link | Attachment) -> Version:
    return (rec.ts_unix_ms, rec.actor, rec.event_id)


def _set_element(elements: dict[_K, LwwElement], key: _K, version: Version, present: bool) -> bool:
    current = elements.get(key)
    if current is None or version > current.version:
        elements[key] = LwwElement(version=version, present=present)
        return True
    return False


def new_projection(issue_id: bytes) -> IssueProjection:
    """An empty, not yet created projection for `issue_id`."""
    return IssueProjection(issue_id=issue_id)


def copy_projection(p: IssueProjection) -> IssueProjection:
    """A copy of `p` that apply_event may change without touching `p`.

    apply_event replaces versions, LwwElements and records and never changes one in place,
    so copying the containers is enough (and far cheaper than decoding the projection again).
    """
    return msgspec.structs.replace(
        p,
        labels=dict(p.labels),
        assignees=dict(p.assignees),
        dependencies=dict(p.dependencies),
        comments=list(p.comments),
        links=list(p.links),
        attachments=list(p.attachments),
        applied=set(p.applied),
        events=list(p.events),
    )


def apply_event(p: IssueProjection, e: Event) -> bool:
    """Merge one event into `p`, in place.

    Args:
        p: the projection of `e.issue_id`.
        e: any event; out-of-order and duplicate delivery are fine.

    Returns:
        True if `p` changed (False for a duplicate or a context event).

    Raises:
        GriteError: `e` belongs to another issue (a caller bug, never a data problem).
    """
    kind = e.kind
    if isinstance(kind, (ContextUpdated, ProjectContextUpdated)):
        return False
    if e.issue_id != p.issue_id:
        raise GriteError(
            f"event {e.event_id.hex()} belongs to issue {e.issue_id.hex()}, "
            f"not {p.issue_id.hex()}; this is a bug in grite, please report it"
        )
    event_id = e.event_id
    if event_id in p.applied:
        return False
    p.applied.add(event_id)
    version = (e.ts_unix_ms, e.actor, event_id)
    bisect.insort(p.events, e, key=lambda x: x.version)
    if e.ts_unix_ms > p.updated_ts:
        p.updated_ts = e.ts_unix_ms

    if isinstance(kind, IssueCreated):
        p.created = True
        if p.created_version is None or version < p.created_version:
            p.created_version = version
            p.created_ts = e.ts_unix_ms
            p.author = e.actor
        _write_title(p, kind.title, version)
        _write_body(p, kind.body, version)
        _write_state(p, "open", version)
        for label in kind.labels:
            _set_element(p.labels, label, version, True)
    elif isinstance(kind, IssueUpdated):
        if kind.title is not None:
            _write_title(p, kind.title, version)
        if kind.body is not None:
            _write_body(p, kind.body, version)
    elif isinstance(kind, StateChanged):
        _write_state(p, kind.state, version)
    elif isinstance(kind, CommentAdded):
        comment = Comment(event_id=event_id, actor=e.actor, ts_unix_ms=e.ts_unix_ms, body=kind.body)
        bisect.insort(p.comments, comment, key=_record_version)
    elif isinstance(kind, LinkAdded):
        link = Link(
            event_id=event_id, actor=e.actor, ts_unix_ms=e.ts_unix_ms, url=kind.url, note=kind.note
        )
        bisect.insort(p.links, link, key=_record_version)
    elif isinstance(kind, AttachmentAdded):
        attachment = Attachment(
            event_id=event_id,
            actor=e.actor,
            ts_unix_ms=e.ts_unix_ms,
            name=kind.name,
            sha256=kind.sha256,
            mime=kind.mime,
        )
        bisect.insort(p.attachments, attachment, key=_record_version)
    elif isinstance(kind, LabelAdded):
        _set_element(p.labels, kind.label, version, True)
    elif isinstance(kind, LabelRemoved):
        _set_element(p.labels, kind.label, version, False)
    elif isinstance(kind, AssigneeAdded):
        _set_element(p.assignees, kind.user, version, True)
    elif isinstance(kind, AssigneeRemoved):
        _set_element(p.assignees, kind.user, version, False)
    elif isinstance(kind, DependencyAdded):
        _set_element(p.dependencies, (kind.target, kind.dep_type), version, True)
    elif isinstance(kind, DependencyRemoved):
        _set_element(p.dependencies, (kind.target, kind.dep_type), version, False)
    # The id is recorded even when an older write lost to a newer one: the event was merged.
    return True


def _write_title(p: IssueProjection, value: str, version: Version) -> None:
    if p.title_version is None or version > p.title_version:
        p.title = value
        p.title_version = version


def _write_body(p: IssueProjection, value: str, version: Version) -> None:
    if p.body_version is None or version > p.body_version:
        p.body = value
        p.body_version = version


def _write_state(p: IssueProjection, value: str, version: Version) -> None:
    if p.state_version is None or version > p.state_version:
        p.state = value
        p.state_version = version


def project(issue_id: bytes, events: Iterable[Event]) -> IssueProjection:
    """The projection of `issue_id` from `events`; events of other issues are skipped."""
    p = new_projection(issue_id)
    for e in events:
        if e.issue_id == issue_id:
            apply_event(p, e)
    return p


def current_labels(p: IssueProjection) -> list[str]:
    """Labels present now, sorted."""
    return sorted(label for label, el in p.labels.items() if el.present)


def current_assignees(p: IssueProjection) -> list[str]:
    """Assignees present now, sorted."""
    return sorted(user for user, el in p.assignees.items() if el.present)


def current_dependencies(p: IssueProjection) -> list[Dependency]:
    """Outgoing dependencies present now, sorted by (dep_type, target)."""
    keys = sorted(
        (dep_type, target) for (target, dep_type), el in p.dependencies.items() if el.present
    )
    return [Dependency(target=target, dep_type=dep_type) for dep_type, target in keys]


def summarize(p: IssueProjection) -> IssueSummary:
    """The list-row view of `p` (callers hide projections with `created == False`)."""
    return IssueSummary(
        issue_id=p.issue_id,
        title=p.title,
        state=p.state,
        labels=current_labels(p),
        assignees=current_assignees(p),
        created_ts=p.created_ts,
        updated_ts=p.updated_ts,
        comment_count=len(p.comments),
        author=p.author,
        dependencies=current_dependencies(p),
    )
