"""The issue projection is a CRDT: any order, any duplicates, same result; plus its LWW rules."""

from __future__ import annotations

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

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
    EventKind,
    IssueCreated,
    IssueUpdated,
    LabelAdded,
    LabelRemoved,
    LinkAdded,
    ProjectContextUpdated,
    StateChanged,
)
from grite.model.hashing import make_event
from grite.model.projection import (
    Comment,
    Dependency,
    IssueProjection,
    IssueSummary,
    apply_event,
    copy_projection,
    current_assignees,
    current_dependencies,
    current_labels,
    new_projection,
    project,
    summarize,
)

ISSUES = [bytes([i]) * 16 for i in (1, 2, 3)]
ACTORS = [bytes([a]) * 16 for a in (0xA0, 0xB0, 0xC0)]
ISSUE = ISSUES[0]
ALICE, BOB = ACTORS[0], ACTORS[1]


def ev(kind: EventKind, ts: int, actor: bytes = ALICE, issue: bytes = ISSUE) -> Event:
    return make_event(issue_id=issue, actor=actor, ts_unix_ms=ts, kind=kind)


def create(
    ts: int = 1000, actor: bytes = ALICE, title: str = "t", labels: list[str] | None = None
) -> Event:
    return ev(IssueCreated(title=title, body="b", labels=labels or []), ts, actor)


def apply_all(events: list[Event], issue: bytes = ISSUE) -> IssueProjection:
    p = new_projection(issue)
    for e in events:
        apply_event(p, e)
    return p


# --- hypothesis: order independence and idempotence ------------------------------------------

_label = st.sampled_from(["bug", "p0", "ui"])
_user = st.sampled_from(["alice", "bob"])
_small_text = st.sampled_from(["", "a", "b", "c"])
_dep_type = st.sampled_from(["blocks", "depends_on", "related_to"])
_kinds = st.one_of(
    st.builds(
        IssueCreated, title=_small_text, body=_small_text, labels=st.lists(_label, max_size=3)
    ),
    st.builds(IssueUpdated, title=st.none() | _small_text, body=st.none() | _small_text),
    st.builds(CommentAdded, body=_small_text),
    st.builds(LabelAdded, label=_label),
    st.builds(LabelRemoved, label=_label),
    st.builds(StateChanged, state=st.sampled_from(["open", "closed"])),
    st.builds(LinkAdded, url=_small_text, note=st.none() | _small_text),
    st.builds(AssigneeAdded, user=_user),
    st.builds(AssigneeRemoved, user=_user),
    st.builds(AttachmentAdded, name=_small_text, sha256=st.just(bytes(32)), mime=st.just("x/y")),
    st.builds(DependencyAdded, target=st.sampled_from(ISSUES), dep_type=_dep_type),
    st.builds(DependencyRemoved, target=st.sampled_from(ISSUES), dep_type=_dep_type),
    st.builds(ProjectContextUpdated, key=_small_text, value=_small_text),
)


def _events_of(issues: list[bytes]) -> st.SearchStrategy[Event]:
    # A tiny ts range and few actors make equal timestamps (and equal ts+actor) common.
    return st.builds(
        make_event,
        issue_id=st.sampled_from(issues),
        actor=st.sampled_from(ACTORS),
        ts_unix_ms=st.integers(0, 4),
        kind=_kinds,
    )


_events = _events_of(ISSUES)


@settings(max_examples=150, deadline=None)
@given(events=st.lists(_events, max_size=20), data=st.data())
def test_projection_is_equal_for_any_order_with_duplicates(
    events: list[Event], data: st.DataObject
) -> None:
    shuffled = data.draw(st.permutations(events))
    if events:
        extra = data.draw(st.lists(st.sampled_from(events), max_size=6))
        positions = data.draw(
            st.lists(st.integers(0, len(shuffled)), min_size=len(extra), max_size=len(extra))
        )
        for e, pos in zip(extra, positions, strict=True):
            shuffled.insert(pos, e)
    for issue in ISSUES:
        expected = project(issue, events)
        actual = project(issue, shuffled)
        assert actual == expected
        assert summarize(actual) == summarize(expected)
        assert current_dependencies(actual) == current_dependencies(expected)
        assert actual.event_count == len(
            {e.event_id for e in events if e.issue_id == issue and e.kind.TAG != 14}
        )


def _newest(events: list[Event]) -> Event | None:
    return max(events, key=lambda e: e.version, default=None)


@settings(max_examples=200, deadline=None)
@given(events=st.lists(_events_of([ISSUE]), max_size=20))
def test_projection_matches_the_last_writer_wins_rules(events: list[Event]) -> None:
    p = project(ISSUE, events)
    creates = [e for e in events if isinstance(e.kind, IssueCreated)]
    assert p.created == bool(creates)
    first = min(creates, key=lambda e: e.version, default=None)
    assert p.created_ts == (first.ts_unix_ms if first else 0)
    assert p.author == (first.actor if first else b"")
    assert p.updated_ts == max((e.ts_unix_ms for e in events if e.kind.TAG != 14), default=0)

    titled = _newest(
        [
            e
            for e in events
            if isinstance(e.kind, (IssueCreated, IssueUpdated)) and e.kind.title is not None
        ]
    )
    assert p.title == (titled.kind.title if titled else "")  # type: ignore[union-attr]
    bodied = _newest(
        [
            e
            for e in events
            if isinstance(e.kind, (IssueCreated, IssueUpdated)) and e.kind.body is not None
        ]
    )
    assert p.body == (bodied.kind.body if bodied else "")  # type: ignore[union-attr]
    stated = _newest([e for e in events if isinstance(e.kind, (IssueCreated, StateChanged))])
    expected_state = (
        "open" if stated is None or isinstance(stated.kind, IssueCreated) else stated.kind.state
    )
    assert p.state == expected_state

    for label in ("bug", "p0", "ui"):
        touching = [
            e
            for e in events
            if (isinstance(e.kind, (LabelAdded, LabelRemoved)) and e.kind.label == label)
            or (isinstance(e.kind, IssueCreated) and label in e.kind.labels)
        ]
        newest = _newest(touching)
        present = newest is not None and not isinstance(newest.kind, LabelRemoved)
        assert (label in current_labels(p)) == present

    comments = sorted({e.version: e for e in events if isinstance(e.kind, CommentAdded)}.items())
    assert [c.event_id for c in p.comments] == [e.event_id for _, e in comments]
    assert summarize(p).comment_count == len(comments)


@settings(max_examples=100, deadline=None)
@given(events=st.lists(_events, max_size=30))
def test_projection_survives_a_msgpack_round_trip(events: list[Event]) -> None:
    p = project(ISSUE, events)
    data = msgspec.msgpack.encode(p)
    assert msgspec.msgpack.decode(data, type=IssueProjection) == p


# --- plain cases -----------------------------------------------------------------------------


def test_create_sets_registers_labels_and_author() -> None:
    p = apply_all([create(ts=2000, actor=BOB, title="Hello", labels=["p0", "bug"])])
    assert p.created
    assert (p.title, p.body, p.state) == ("Hello", "b", "open")
    assert current_labels(p) == ["bug", "p0"]
    assert (p.created_ts, p.updated_ts, p.author) == (2000, 2000, BOB)
    assert p.event_count == 1


def test_newer_title_update_applies() -> None:
    p = apply_all([create(ts=1000), ev(IssueUpdated(title="New"), 2000)])
    assert p.title == "New"
    assert p.body == "b"
    assert p.updated_ts == 2000


def test_older_update_is_ignored() -> None:
    p = apply_all([create(ts=2000, title="Original"), ev(IssueUpdated(title="Old"), 1000)])
    assert p.title == "Original"
    assert p.updated_ts == 2000
    assert p.event_count == 2


def test_equal_timestamp_update_is_decided_by_actor() -> None:
    a = ev(IssueUpdated(title="from alice"), 5000, ALICE)
    b = ev(IssueUpdated(title="from bob"), 5000, BOB)
    assert apply_all([create(), a, b]).title == "from bob"
    assert apply_all([create(), b, a]).title == "from bob"


def test_update_changes_title_and_body_independently() -> None:
    p = apply_all(
        [
            create(ts=1000),
            ev(IssueUpdated(title="T2"), 3000),
            ev(IssueUpdated(title="T-old", body="B2"), 2000),
        ]
    )
    assert (p.title, p.body) == ("T2", "B2")


def test_state_is_last_writer_wins() -> None:
    closed = ev(StateChanged(state="closed"), 2000)
    reopened = ev(StateChanged(state="open"), 3000)
    assert apply_all([create(), reopened, closed]).state == "open"
    assert apply_all([create(), closed]).state == "closed"


def test_label_remove_then_add_follows_versions_not_arrival() -> None:
    add = ev(LabelAdded(label="ui"), 3000)
    remove = ev(LabelRemoved(label="ui"), 2000)
    assert current_labels(apply_all([create(), add, remove])) == ["ui"]
    assert current_labels(apply_all([create(), remove, add])) == ["ui"]


def test_older_add_after_newer_remove_stays_removed() -> None:
    remove = ev(LabelRemoved(label="ui"), 3000)
    add = ev(LabelAdded(label="ui"), 2000)
    assert current_labels(apply_all([create(), remove, add])) == []


def test_removing_a_create_label_removes_it_and_keeps_the_others() -> None:
    p = apply_all([create(labels=["bug", "initial"]), ev(LabelRemoved(label="initial"), 2000)])
    assert current_labels(p) == ["bug"]


def test_assignees_are_an_lww_set() -> None:
    p = apply_all(
        [
            create(),
            ev(AssigneeAdded(user="bob"), 2000),
            ev(AssigneeAdded(user="alice"), 2000, BOB),
            ev(AssigneeRemoved(user="bob"), 3000),
        ]
    )
    assert current_assignees(p) == ["alice"]
    assert summarize(p).assignees == ["alice"]


def test_dependencies_are_an_lww_set_keyed_by_target_and_type() -> None:
    t1, t2 = ISSUES[1], ISSUES[2]
    p = apply_all(
        [
            create(),
            ev(DependencyAdded(target=t2, dep_type="depends_on"), 2000),
            ev(DependencyAdded(target=t1, dep_type="related_to"), 2000),
            ev(DependencyAdded(target=t1, dep_type="blocks"), 2000),
            ev(DependencyAdded(target=t1, dep_type="depends_on"), 2000),
            ev(DependencyRemoved(target=t1, dep_type="depends_on"), 3000),
        ]
    )
    assert current_dependencies(p) == [
        Dependency(target=t1, dep_type="blocks"),
        Dependency(target=t2, dep_type="depends_on"),
        Dependency(target=t1, dep_type="related_to"),
    ]


def test_comments_are_ordered_by_version_whatever_the_arrival() -> None:
    c3 = ev(CommentAdded(body="third"), 3000)
    c1 = ev(CommentAdded(body="first"), 1000, BOB)
    c2a = ev(CommentAdded(body="second-alice"), 2000, ALICE)
    c2b = ev(CommentAdded(body="second-bob"), 2000, BOB)
    p = apply_all([c3, create(ts=500), c2b, c1, c2a])
    assert [c.body for c in p.comments] == ["first", "second-alice", "second-bob", "third"]
    assert p.comments[0] == Comment(event_id=c1.event_id, actor=BOB, ts_unix_ms=1000, body="first")


def test_links_and_attachments_are_kept_in_version_order() -> None:
    l2 = ev(LinkAdded(url="https://b", note="n"), 2000)
    l1 = ev(LinkAdded(url="https://a"), 1000)
    a2 = ev(AttachmentAdded(name="y", sha256=bytes(32), mime="text/plain"), 2000)
    a1 = ev(AttachmentAdded(name="x", sha256=bytes(32), mime="text/plain"), 1000)
    p = apply_all([create(), l2, a2, l1, a1])
    assert [(link.url, link.note) for link in p.links] == [("https://a", None), ("https://b", "n")]
    assert [a.name for a in p.attachments] == ["x", "y"]


def test_duplicate_event_is_applied_once() -> None:
    p = new_projection(ISSUE)
    comment = ev(CommentAdded(body="once"), 2000)
    assert apply_event(p, create())
    assert apply_event(p, comment)
    assert not apply_event(p, comment)
    assert len(p.comments) == 1
    assert p.event_count == 2


def test_older_write_still_counts_as_applied() -> None:
    p = apply_all([create(ts=2000)])
    assert apply_event(p, ev(IssueUpdated(title="Old"), 1000))
    assert p.title == "t"
    assert p.event_count == 2


def test_events_before_create_are_kept_but_invisible_until_create_arrives() -> None:
    p = new_projection(ISSUE)
    apply_event(p, ev(CommentAdded(body="early"), 2000))
    apply_event(p, ev(LabelAdded(label="bug"), 2000))
    assert not p.created
    assert p.event_count == 2
    apply_event(p, create(ts=1000, title="Late"))
    assert p.created
    assert p.title == "Late"
    assert current_labels(p) == ["bug"]
    assert [c.body for c in p.comments] == ["early"]
    assert (p.created_ts, p.updated_ts) == (1000, 2000)


def test_created_ts_and_author_come_from_the_smallest_create_version() -> None:
    early = create(ts=1000, actor=BOB, title="first")
    late = create(ts=3000, actor=ALICE, title="second")
    for order in ([early, late], [late, early]):
        p = apply_all(order)
        assert (p.created_ts, p.author) == (1000, BOB)
        # Every create is still a register write: the newest title wins.
        assert p.title == "second"
        assert p.event_count == 2


def test_equal_timestamp_creates_pick_the_smaller_actor_as_author() -> None:
    a = create(ts=1000, actor=ALICE)
    b = create(ts=1000, actor=BOB)
    assert apply_all([b, a]).author == ALICE
    assert apply_all([a, b]).author == ALICE


def test_context_events_are_ignored() -> None:
    p = apply_all([create()])
    before = msgspec.structs.replace(p, applied=set(p.applied))
    context = ev(
        ContextUpdated(
            path="a.py", language="python", symbols=[], summary="", content_hash=bytes(32)
        ),
        9000,
    )
    project_context = ev(ProjectContextUpdated(key="k", value="v"), 9000)
    assert not apply_event(p, context)
    assert not apply_event(p, project_context)
    assert p == before


def test_event_of_another_issue_is_refused() -> None:
    p = new_projection(ISSUE)
    with pytest.raises(GriteError, match="belongs to issue"):
        apply_event(p, ev(CommentAdded(body="x"), 1000, issue=ISSUES[1]))


def test_project_skips_events_of_other_issues() -> None:
    other = ev(IssueCreated(title="other", body="", labels=[]), 1000, issue=ISSUES[1])
    p = project(ISSUE, [other, create(title="mine")])
    assert p.title == "mine"
    assert p.event_count == 1


def test_summary_lists_sorted_labels_assignees_and_counts_comments() -> None:
    p = apply_all(
        [
            create(ts=1000, labels=["zeta", "alpha"]),
            ev(AssigneeAdded(user="zed"), 1500),
            ev(AssigneeAdded(user="amy"), 1500),
            ev(CommentAdded(body="1"), 2000),
            ev(CommentAdded(body="2"), 2500),
            ev(StateChanged(state="closed"), 3000),
        ]
    )
    assert summarize(p) == IssueSummary(
        issue_id=ISSUE,
        title="t",
        state="closed",
        labels=["alpha", "zeta"],
        assignees=["amy", "zed"],
        created_ts=1000,
        updated_ts=3000,
        comment_count=2,
        author=ALICE,
    )


@given(
    before=st.lists(_events_of([ISSUE]), max_size=15),
    after=st.lists(_events_of([ISSUE]), max_size=15),
)
def test_a_copy_changes_without_touching_the_original(
    before: list[Event], after: list[Event]
) -> None:
    original = apply_all(before)
    frozen = msgspec.msgpack.encode(original)
    copy = copy_projection(original)
    for e in after:
        apply_event(copy, e)
    assert msgspec.msgpack.encode(original) == frozen  # the kept projection is untouched
    assert copy == apply_all(before + after)  # and the copy is what applying all gives
