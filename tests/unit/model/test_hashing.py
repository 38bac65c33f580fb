"""Event hashing: the reference vectors of grite 0.5.3 and the invariants of the preimage."""

from __future__ import annotations

import msgspec
import pytest

from grite.model.events import (
    AssigneeAdded,
    AssigneeRemoved,
    AttachmentAdded,
    CommentAdded,
    ContextUpdated,
    DependencyAdded,
    DependencyRemoved,
    EventKind,
    IssueCreated,
    IssueUpdated,
    LabelAdded,
    LabelRemoved,
    LinkAdded,
    ProjectContextUpdated,
    StateChanged,
    Symbol,
)
from grite.model.hashing import compute_event_id, event_preimage, make_event, verify_event_id

ISSUE = bytes(range(16))
ACTOR = bytes(range(16, 32))
PARENT = bytes(range(32, 64))
TS = 1_700_000_000_000

V1_CBOR = (
    "870150000102030405060708090a0b0c0d0e0f50101112131415161718191a1b1c1d1e1f1b0000018bcfe56800"
    "f60183645465737464426f64798263627567627030"
)
V1_ID = "9c2aee7924bf7482dd3842c6ec32fd5103883b9d2354f63df2075ac61fe3d827"
V2_ID = "5227efec6ae3d41725827edb3e62d00a595784d7adec58fb4e1b787c44c4b333"
V3_ID = "fca597420160df9f7230b28384a27dc86656b206520e5c8085e78cbb02a46e27"

SYMBOLS = [
    Symbol(name="main", kind="function", line_start=1, line_end=9),
    Symbol(name="Config", kind="struct", line_start=10, line_end=20),
    Symbol(name="Config", kind="impl", line_start=21, line_end=30),
]

ALL_KINDS: list[EventKind] = [
    IssueCreated(title="Test", body="Body", labels=["p0", "bug"]),
    IssueUpdated(title="Title 2"),
    CommentAdded(body="Looks good"),
    LabelAdded(label="bug"),
    LabelRemoved(label="bug"),
    StateChanged(state="closed"),
    LinkAdded(url="https://example.com", note="docs"),
    AssigneeAdded(user="alice"),
    AssigneeRemoved(user="alice"),
    AttachmentAdded(name="log.txt", sha256=bytes(32), mime="text/plain"),
    DependencyAdded(target=bytes(16), dep_type="blocks"),
    DependencyRemoved(target=bytes(16), dep_type="blocks"),
    ContextUpdated(
        path="src/main.rs",
        language="rust",
        symbols=SYMBOLS,
        summary="2 functions",
        content_hash=bytes(range(32)),
    ),
    ProjectContextUpdated(key="build", value="cargo build"),
]


def test_v1_issue_created_preimage_and_id_match_reference() -> None:
    kind = IssueCreated(title="Test", body="Body", labels=["bug", "p0"])
    assert event_preimage(ISSUE, ACTOR, TS, None, kind).hex() == V1_CBOR
    assert compute_event_id(ISSUE, ACTOR, TS, None, kind).hex() == V1_ID


def test_v2_issue_updated_id_matches_reference() -> None:
    kind = IssueUpdated(title="Title 2", body=None)
    assert compute_event_id(ISSUE, ACTOR, TS, None, kind).hex() == V2_ID


def test_v3_comment_with_parent_id_matches_reference() -> None:
    kind = CommentAdded(body="Looks good")
    assert compute_event_id(ISSUE, ACTOR, TS + 1000, PARENT, kind).hex() == V3_ID


def test_make_event_computes_reference_id_and_verifies() -> None:
    event = make_event(
        issue_id=ISSUE,
        actor=ACTOR,
        ts_unix_ms=TS,
        kind=IssueCreated(title="Test", body="Body", labels=["p0", "bug"]),
    )
    assert event.event_id.hex() == V1_ID
    assert event.kind == IssueCreated(title="Test", body="Body", labels=["bug", "p0"])
    assert verify_event_id(event)


def test_verify_event_id_rejects_a_changed_field() -> None:
    event = make_event(issue_id=ISSUE, actor=ACTOR, ts_unix_ms=TS, kind=CommentAdded(body="a"))
    assert not verify_event_id(msgspec.structs.replace(event, ts_unix_ms=TS + 1))
    assert not verify_event_id(msgspec.structs.replace(event, kind=CommentAdded(body="b")))


def test_all_fourteen_kinds_have_distinct_tags() -> None:
    assert sorted(k.TAG for k in ALL_KINDS) == list(range(1, 15))


@pytest.mark.parametrize("kind", ALL_KINDS, ids=lambda k: type(k).__name__)
def test_every_kind_hashes_deterministically_to_32_bytes(kind: EventKind) -> None:
    first = compute_event_id(ISSUE, ACTOR, TS, None, kind)
    again = compute_event_id(ISSUE, ACTOR, TS, None, kind)
    assert first == again
    assert len(first) == 32


@pytest.mark.parametrize("kind", ALL_KINDS, ids=lambda k: type(k).__name__)
def test_every_kind_id_covers_issue_actor_ts_and_parent(kind: EventKind) -> None:
    base = compute_event_id(ISSUE, ACTOR, TS, None, kind)
    assert compute_event_id(bytes(16), ACTOR, TS, None, kind) != base
    assert compute_event_id(ISSUE, bytes(16), TS, None, kind) != base
    assert compute_event_id(ISSUE, ACTOR, TS + 1, None, kind) != base
    assert compute_event_id(ISSUE, ACTOR, TS, PARENT, kind) != base


def test_all_kinds_hash_to_distinct_ids() -> None:
    ids = {compute_event_id(ISSUE, ACTOR, TS, None, k) for k in ALL_KINDS}
    assert len(ids) == len(ALL_KINDS)


def test_dependency_ids_differ_by_dep_type() -> None:
    target = bytes(range(100, 116))
    ids = {
        compute_event_id(ISSUE, ACTOR, TS, None, DependencyAdded(target=target, dep_type=t))
        for t in ("blocks", "depends_on", "related_to")
    }
    assert len(ids) == 3


def test_dependency_add_and_remove_have_different_ids() -> None:
    target = bytes(range(100, 116))
    added = compute_event_id(
        ISSUE, ACTOR, TS, None, DependencyAdded(target=target, dep_type="depends_on")
    )
    removed = compute_event_id(
        ISSUE, ACTOR, TS, None, DependencyRemoved(target=target, dep_type="depends_on")
    )
    assert added != removed


def test_label_and_assignee_add_and_remove_have_different_ids() -> None:
    assert compute_event_id(ISSUE, ACTOR, TS, None, LabelAdded(label="x")) != compute_event_id(
        ISSUE, ACTOR, TS, None, LabelRemoved(label="x")
    )
    assert compute_event_id(ISSUE, ACTOR, TS, None, AssigneeAdded(user="x")) != compute_event_id(
        ISSUE, ACTOR, TS, None, AssigneeRemoved(user="x")
    )


def test_issue_created_label_order_does_not_change_the_id() -> None:
    a = IssueCreated(title="t", body="b", labels=["zeta", "alpha", "mid"])
    b = IssueCreated(title="t", body="b", labels=["alpha", "mid", "zeta"])
    assert compute_event_id(ISSUE, ACTOR, TS, None, a) == compute_event_id(
        ISSUE, ACTOR, TS, None, b
    )


def test_issue_created_label_set_changes_the_id() -> None:
    a = IssueCreated(title="t", body="b", labels=["alpha"])
    b = IssueCreated(title="t", body="b", labels=["alpha", "beta"])
    assert compute_event_id(ISSUE, ACTOR, TS, None, a) != compute_event_id(
        ISSUE, ACTOR, TS, None, b
    )


def _context(symbols: list[Symbol]) -> ContextUpdated:
    return ContextUpdated(
        path="src/main.rs",
        language="rust",
        symbols=symbols,
        summary="s",
        content_hash=bytes(32),
    )


def test_context_updated_symbol_order_does_not_change_the_id() -> None:
    forward = compute_event_id(ISSUE, ACTOR, TS, None, _context(SYMBOLS))
    backward = compute_event_id(ISSUE, ACTOR, TS, None, _context(list(reversed(SYMBOLS))))
    assert forward == backward


def test_context_updated_symbol_lines_change_the_id() -> None:
    moved = [Symbol(name="main", kind="function", line_start=2, line_end=9), *SYMBOLS[1:]]
    assert compute_event_id(ISSUE, ACTOR, TS, None, _context(SYMBOLS)) != compute_event_id(
        ISSUE, ACTOR, TS, None, _context(moved)
    )


def test_project_context_ids_differ_by_key() -> None:
    a = compute_event_id(ISSUE, ACTOR, TS, None, ProjectContextUpdated(key="a", value="v"))
    b = compute_event_id(ISSUE, ACTOR, TS, None, ProjectContextUpdated(key="b", value="v"))
    assert a != b


def test_preimage_uses_minimal_integer_heads() -> None:
    # 23 fits in the initial byte, 24 needs one more byte: RFC 8949 preferred serialization.
    small = event_preimage(ISSUE, ACTOR, 23, None, CommentAdded(body=""))
    large = event_preimage(ISSUE, ACTOR, 24, None, CommentAdded(body=""))
    assert bytes([0x17, 0xF6]) in small
    assert bytes([0x18, 0x18, 0xF6]) in large
