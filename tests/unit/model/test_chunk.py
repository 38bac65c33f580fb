"""The GRITECNK chunk codec: exact header bytes, round trips and every decode error."""

from __future__ import annotations

import hashlib

import cbor2
import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from grite.model.chunk import CHUNK_MAGIC, chunk_hash, decode_chunk, encode_chunk
from grite.model.errors import CorruptData
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
    Symbol,
)
from grite.model.hashing import make_event
from grite.model.limits import MAX_TS_MS

HEADER = b"GRITECNK\x01\x00\x07cbor-v1"
ISSUE = bytes(range(16))
ACTOR = bytes(range(16, 32))
PARENT = bytes(range(32, 64))
TS = 1_700_000_000_000

ALL_KINDS: list[EventKind] = [
    IssueCreated(title="Test", body="Body", labels=["p0", "bug"]),
    IssueUpdated(title="Title 2"),
    CommentAdded(body="Looks good"),
    LabelAdded(label="bug"),
    LabelRemoved(label="bug"),
    StateChanged(state="closed"),
    LinkAdded(url="https://example.com", note=None),
    AssigneeAdded(user="alice"),
    AssigneeRemoved(user="alice"),
    AttachmentAdded(name="log.txt", sha256=bytes(range(32)), mime="text/plain"),
    DependencyAdded(target=bytes(16), dep_type="depends_on"),
    DependencyRemoved(target=bytes(16), dep_type="related_to"),
    ContextUpdated(
        path="src/lib.rs",
        language="rust",
        symbols=[
            Symbol(name="b", kind="fn", line_start=5, line_end=9),
            Symbol(name="a", kind="fn", line_start=1, line_end=4),
        ],
        summary="2 functions",
        content_hash=bytes(32),
    ),
    ProjectContextUpdated(key="build", value="make"),
]


def _event(
    kind: EventKind, ts: int = TS, parent: bytes | None = None, sig: bytes | None = None
) -> Event:
    return make_event(issue_id=ISSUE, actor=ACTOR, ts_unix_ms=ts, kind=kind, parent=parent, sig=sig)


def _all_events() -> list[Event]:
    return [
        _event(k, ts=TS + i, parent=PARENT if i % 2 else None, sig=b"s" * 64 if i % 3 else None)
        for i, k in enumerate(ALL_KINDS)
    ]


# --- hypothesis strategies -------------------------------------------------------------------

_text = st.text(max_size=12)
_id16 = st.binary(min_size=16, max_size=16)
_id32 = st.binary(min_size=32, max_size=32)
_dep_type = st.sampled_from(["blocks", "depends_on", "related_to"])
_symbol = st.builds(
    Symbol,
    name=_text,
    kind=st.sampled_from(["fn", "struct", "class"]),
    line_start=st.integers(0, 2**32 - 1),
    line_end=st.integers(0, 2**32 - 1),
)
_kinds = st.one_of(
    st.builds(IssueCreated, title=_text, body=_text, labels=st.lists(_text, max_size=4)),
    st.builds(IssueUpdated, title=st.none() | _text, body=st.none() | _text),
    st.builds(CommentAdded, body=_text),
    st.builds(LabelAdded, label=_text),
    st.builds(LabelRemoved, label=_text),
    st.builds(StateChanged, state=st.sampled_from(["open", "closed"])),
    st.builds(LinkAdded, url=_text, note=st.none() | _text),
    st.builds(AssigneeAdded, user=_text),
    st.builds(AssigneeRemoved, user=_text),
    st.builds(AttachmentAdded, name=_text, sha256=_id32, mime=_text),
    st.builds(DependencyAdded, target=_id16, dep_type=_dep_type),
    st.builds(DependencyRemoved, target=_id16, dep_type=_dep_type),
    st.builds(
        ContextUpdated,
        path=_text,
        language=_text,
        # Unique (name, kind): the payload sorts by that pair only, as grite 0.5.3 does.
        symbols=st.lists(_symbol, max_size=4, unique_by=lambda s: (s.name, s.kind)),
        summary=_text,
        content_hash=_id32,
    ),
    st.builds(ProjectContextUpdated, key=_text, value=_text),
)
_events = st.builds(
    make_event,
    issue_id=_id16,
    actor=_id16,
    ts_unix_ms=st.integers(0, MAX_TS_MS),
    kind=_kinds,
    parent=st.none() | _id32,
    sig=st.none() | st.binary(min_size=64, max_size=64),
)


# --- format ----------------------------------------------------------------------------------


def test_header_is_exactly_the_reference_bytes() -> None:
    data = encode_chunk([_event(ALL_KINDS[0])])
    assert data[:18] == HEADER
    assert CHUNK_MAGIC == b"GRITECNK"
    assert len(HEADER) == 18


def test_empty_chunk_round_trips() -> None:
    data = encode_chunk([])
    assert data == HEADER + b"\x80"
    assert decode_chunk(data) == []


def test_all_fourteen_kinds_round_trip_in_order() -> None:
    events = _all_events()
    assert sorted(e.kind.TAG for e in events) == list(range(1, 15))
    assert decode_chunk(encode_chunk(events)) == events


@settings(max_examples=200, deadline=None)
@given(st.lists(_events, max_size=6))
def test_generated_events_round_trip(events: list[Event]) -> None:
    data = encode_chunk(events)
    assert decode_chunk(data) == events
    assert encode_chunk(decode_chunk(data)) == data


def test_chunk_body_is_plain_cbor_of_eight_field_records() -> None:
    events = _all_events()
    records = cbor2.loads(encode_chunk(events)[18:])
    assert len(records) == len(events)
    for rec, e in zip(records, events, strict=True):
        assert rec == [
            e.event_id,
            e.issue_id,
            e.actor,
            e.ts_unix_ms,
            e.parent,
            e.kind.TAG,
            e.kind.payload(),
            e.sig,
        ]


def test_chunk_stores_issue_created_labels_and_symbols_sorted() -> None:
    records = cbor2.loads(encode_chunk(_all_events())[18:])
    assert records[0][6] == ["Test", "Body", ["bug", "p0"]]
    assert [s[0] for s in records[12][6][2]] == ["a", "b"]


def test_chunk_hash_is_blake2b_of_the_whole_file_and_deterministic() -> None:
    data = encode_chunk(_all_events())
    assert chunk_hash(data) == hashlib.blake2b(data, digest_size=32).hexdigest()
    assert chunk_hash(encode_chunk(_all_events())) == chunk_hash(data)
    assert len(chunk_hash(data)) == 64


# --- errors ----------------------------------------------------------------------------------


def _chunk_of(records: object) -> bytes:
    return HEADER + cbor2.dumps(records)


def _record(**changes: object) -> list[object]:
    e = _event(CommentAdded(body="hi"))
    rec: list[object] = [e.event_id, e.issue_id, e.actor, e.ts_unix_ms, e.parent, 3, ["hi"], None]
    names = ["event_id", "issue_id", "actor", "ts", "parent", "tag", "payload", "sig"]
    for name, value in changes.items():
        rec[names.index(name)] = value
    return rec


def _corrupt_message(data: bytes, verify: bool = True) -> str:
    with pytest.raises(CorruptData) as info:
        decode_chunk(data, verify=verify)
    assert info.value.code == "corrupt"
    return info.value.message


def test_valid_handmade_record_decodes() -> None:
    assert decode_chunk(_chunk_of([_record()])) == [_event(CommentAdded(body="hi"))]


def test_too_small_chunk_is_corrupt() -> None:
    assert "too small" in _corrupt_message(b"GRITECNK\x01")
    assert "too small" in _corrupt_message(b"")


def test_bad_magic_is_corrupt() -> None:
    data = encode_chunk([_event(ALL_KINDS[0])])
    assert "magic" in _corrupt_message(b"GRITECNX" + data[8:])


def test_unsupported_version_is_corrupt() -> None:
    data = encode_chunk([_event(ALL_KINDS[0])])
    assert "unsupported chunk version: 99" in _corrupt_message(data[:8] + b"\x63\x00" + data[10:])


def test_version_is_little_endian() -> None:
    data = encode_chunk([])
    assert "version: 256" in _corrupt_message(data[:8] + b"\x00\x01" + data[10:])


def test_wrong_codec_is_corrupt() -> None:
    assert "codec" in _corrupt_message(b"GRITECNK\x01\x00\x07json-v1\x80")
    assert "codec" in _corrupt_message(b"GRITECNK\x01\x00\x06cbor-v\x80")


def test_truncated_codec_name_is_corrupt() -> None:
    assert "truncated" in _corrupt_message(b"GRITECNK\x01\x00\x07cbor")


def test_truncated_cbor_is_corrupt() -> None:
    data = encode_chunk(_all_events())
    assert "CBOR" in _corrupt_message(data[:-5])
    assert "CBOR" in _corrupt_message(HEADER)


def test_body_that_is_not_an_array_is_corrupt() -> None:
    assert "not an array" in _corrupt_message(_chunk_of({"a": 1}))


@pytest.mark.parametrize("arity", [0, 7, 9])
def test_record_with_wrong_arity_is_corrupt(arity: int) -> None:
    rec = (_record() + [None])[:arity]
    assert "8 fields" in _corrupt_message(_chunk_of([rec]))


def test_record_that_is_not_an_array_is_corrupt() -> None:
    assert "8 fields" in _corrupt_message(_chunk_of([b"x" * 8]))


@pytest.mark.parametrize(
    ("field", "value", "expected"),
    [
        ("event_id", b"\x00" * 31, "event_id must be 32 bytes"),
        ("issue_id", b"\x00" * 17, "issue_id must be 16 bytes"),
        ("actor", "not bytes", "actor must be 16 bytes"),
        ("parent", b"\x00" * 16, "parent must be 32 bytes"),
        ("ts", -1, "ts_unix_ms -1 is not a time from 1970 to 9999"),
        ("ts", "now", "ts_unix_ms 'now' is not a time"),
        ("ts", MAX_TS_MS + 1, "is not a time from 1970 to 9999"),
        ("ts", 2**64 - 1, "is not a time from 1970 to 9999"),
        ("ts", 2**70, "CBOR tag 2 is not part of the chunk format"),  # a bignum
        ("ts", True, "is not a time"),
        ("tag", "3", "kind tag must be an integer"),
        ("sig", "text", "sig must be null or 64 bytes"),
        ("sig", b"s" * 63, "sig must be null or 64 bytes"),
    ],
)
def test_record_with_bad_field_is_corrupt(field: str, value: object, expected: str) -> None:
    assert expected in _corrupt_message(_chunk_of([_record(**{field: value})]))


def test_unknown_kind_tag_is_corrupt() -> None:
    assert "unknown kind tag: 99" in _corrupt_message(_chunk_of([_record(tag=99)]))


@pytest.mark.parametrize(
    ("tag", "payload", "expected"),
    [
        (1, ["t", "b"], "IssueCreated expects 3 fields"),
        (1, ["t", "b", "bug"], "labels must be an array"),
        (2, ["t"], "IssueUpdated expects 2 fields"),
        (3, "hi", "CommentAdded expects 1 fields"),
        (3, [7], "expected a text string"),
        (6, ["done"], "invalid state"),
        (10, ["n", b"\x00" * 31, "m"], "sha256: expected 32 bytes"),
        (11, [b"\x00" * 16, "parent_of"], "invalid dependency type"),
        (12, [b"\x00" * 15, "blocks"], "target: expected 16 bytes"),
        (13, ["p", "l", [["n", "k", 1]], "s", b"\x00" * 32], "Symbol expects 4 fields"),
        (14, ["k"], "ProjectContextUpdated expects 2 fields"),
    ],
)
def test_malformed_payload_is_corrupt(tag: int, payload: object, expected: str) -> None:
    assert expected in _corrupt_message(_chunk_of([_record(tag=tag, payload=payload)]))


def _tampered() -> bytes:
    data = encode_chunk([_event(CommentAdded(body="original"))])
    tampered = data.replace(b"original", b"Original")
    assert tampered != data
    return tampered


def test_tampered_payload_fails_the_event_id_check() -> None:
    message = _corrupt_message(_tampered())
    assert "event_id mismatch" in message


def test_tampered_chunk_names_the_stored_event_id() -> None:
    with pytest.raises(CorruptData) as info:
        decode_chunk(_tampered())
    stored = decode_chunk(_tampered(), verify=False)[0].event_id
    assert info.value.details["event_id"] == stored.hex()
    assert stored.hex() in info.value.message


def test_verify_false_skips_only_the_id_check() -> None:
    (event,) = decode_chunk(_tampered(), verify=False)
    original = _event(CommentAdded(body="original"))
    assert event == msgspec.structs.replace(original, kind=CommentAdded(body="Original"))
    assert "unknown kind tag" in _corrupt_message(_chunk_of([_record(tag=99)]), verify=False)
    assert "8 fields" in _corrupt_message(_chunk_of([_record()[:7]]), verify=False)
    assert "magic" in _corrupt_message(b"XXXXXXXX" + _tampered()[8:], verify=False)


def test_a_valid_record_after_a_tampered_one_does_not_rescue_the_chunk() -> None:
    good = _record()
    bad = _record(payload=["tampered"])
    assert "event_id mismatch" in _corrupt_message(_chunk_of([good, bad]))


# --- bounds: what a chunk from another clone may hold ------------------------------------------


def _shared_labels_chunk(copies: int, size: int) -> bytes:
    """The shape of a shared-reference bomb: one text string marked shareable (tag 28) and
    `copies` references to it (tag 29) as the labels of one IssueCreated."""
    labels = (
        b"\x99"
        + copies.to_bytes(2, "big")
        + cbor2.dumps(cbor2.CBORTag(28, "x" * size))
        + cbor2.dumps(cbor2.CBORTag(29, 0)) * (copies - 1)
    )
    e = _event(CommentAdded(body="hi"))
    # An 8-element record whose first six fields cbor2 writes; payload and sig by hand.
    head = b"\x88" + cbor2.dumps([e.event_id, e.issue_id, e.actor, TS, None, 1])[1:]
    payload = b"\x83" + cbor2.dumps("t") + cbor2.dumps("b") + labels
    return HEADER + b"\x81" + head + payload + b"\xf6"


def test_shared_references_are_refused_before_any_hashing() -> None:
    # 1,000 references to one 100 kB label would hash a 100 MB preimage; refused at the tag.
    message = _corrupt_message(_shared_labels_chunk(1000, 100_000))
    assert "CBOR tag 28 is not part of the chunk format" in message


@pytest.mark.parametrize("tag", [0, 1, 2, 3, 25, 29, 30, 37, 256, 258, 55799, 4242])
def test_every_cbor_tag_is_refused(tag: int) -> None:
    payload = cbor2.dumps(cbor2.CBORTag(tag, "hi"))
    data = HEADER + b"\x81" + cbor2.dumps(_record())[:-5] + b"\x81" + payload + b"\xf6"
    assert f"CBOR tag {tag} is not part" in _corrupt_message(data)


def test_indefinite_lengths_are_refused() -> None:
    rec = cbor2.dumps(_record())
    assert "indefinite" in _corrupt_message(HEADER + b"\x9f" + rec + b"\xff")


def test_nesting_deeper_than_the_format_is_refused() -> None:
    deep = [[[[[[["x"]]]]]]]
    assert "depth" in _corrupt_message(_chunk_of([_record(payload=deep)]))


def test_an_oversized_chunk_is_refused_before_it_is_decoded() -> None:
    from grite.model.limits import MAX_CHUNK_BYTES

    data = HEADER + b"\x00" * MAX_CHUNK_BYTES
    assert f"more than the {MAX_CHUNK_BYTES} allowed" in _corrupt_message(data)


@pytest.mark.parametrize(
    ("tag", "payload", "expected"),
    [
        (3, ["x" * (1024 * 1024 + 1)], "body: 1048577 characters, more than the 1048576"),
        (4, ["l" * 4097], "label: 4097 characters, more than the 4096"),
        (1, ["t", "b", ["l"] * 1025], "labels: 1025 entries, more than the 1024"),
        (13, ["p", "l", [["n", "k", 1, 2]] * 65537, "s", b"\x00" * 32], "65537 entries"),
        (13, ["p", "l", [["n", "k", -1, 2]], "s", b"\x00" * 32], "line_start must be"),
        (13, ["p", "l", [["n", "k", 1, 2**32]], "s", b"\x00" * 32], "line_end must be"),
        (13, ["p", "l", [["n", "k", True, 2]], "s", b"\x00" * 32], "line_start must be"),
        (3, [{"a": 1}], "expected a text string"),
        (3, [1.5], "expected a text string"),
        (3, [b"bytes"], "expected a text string"),
    ],
)
def test_fields_out_of_bounds_are_refused(tag: int, payload: object, expected: str) -> None:
    assert expected in _corrupt_message(_chunk_of([_record(tag=tag, payload=payload)]))


def test_an_error_names_the_event_it_was_found_in() -> None:
    with pytest.raises(CorruptData) as info:
        decode_chunk(_chunk_of([_record(ts=MAX_TS_MS + 1)]))
    event_id = _record()[0]
    assert isinstance(event_id, bytes)
    assert info.value.details["event_id"] == event_id.hex()
    assert info.value.details["field"] == "ts_unix_ms"
    assert info.value.message.startswith(f"event {event_id.hex()}: ts_unix_ms")


def test_invalid_utf8_text_is_refused() -> None:
    data = _chunk_of([_record()]).replace(b"bhi", b"b\xff\xfe")
    assert "CBOR does not decode" in _corrupt_message(data)


def test_values_at_every_bound_are_accepted() -> None:
    """Everything grite 0.5.3 writes stays readable: the largest values of each field."""
    events = [
        _event(IssueCreated(title="t" * 1024 * 1024, body="b" * 1024 * 1024, labels=[]), ts=0),
        _event(IssueCreated(title="", body="", labels=[f"{i:04d}" * 1024 for i in range(1024)])),
        _event(CommentAdded(body="ü" * 1024 * 1024), ts=MAX_TS_MS, sig=b"\xff" * 64),
        _event(
            ContextUpdated(
                path="p",
                language="l" * 4096,
                symbols=[
                    Symbol(name=str(i), kind="fn", line_start=0, line_end=2**32 - 1)
                    for i in range(65_536)
                ],
                summary="",
                content_hash=bytes(32),
            )
        ),  # fmt: skip
    ]
    assert decode_chunk(encode_chunk(events)) == events
