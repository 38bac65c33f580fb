"""The 14 event kinds of grite 0.5.3 and the Event that carries one of them.

Each kind knows its numeric tag and its CBOR payload layout (https://github.com/neul-labs/grite/blob/main/crates/libgrite-core/src/types/event.rs); the
layouts are part of the on-disk format and are shared by hashing and the chunk codec. Byte
fields hold raw bytes; hex is only for display. Pure: no I/O, no clock, no randomness.
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

import msgspec

from grite.model.errors import CorruptData
from grite.model.limits import (
    MAX_LABELS,
    MAX_LINE_NUMBER,
    MAX_NAME_CHARS,
    MAX_SYMBOLS,
    MAX_TEXT_CHARS,
)

__all__ = [
    "DEP_TYPES",
    "AssigneeAdded",
    "AssigneeRemoved",
    "AttachmentAdded",
    "CommentAdded",
    "ContextUpdated",
    "DependencyAdded",
    "DependencyRemoved",
    "Event",
    "EventKind",
    "IssueCreated",
    "IssueUpdated",
    "LabelAdded",
    "LabelRemoved",
    "LinkAdded",
    "ProjectContextUpdated",
    "StateChanged",
    "Symbol",
    "kind_from_payload",
]

DEP_TYPES = ("blocks", "depends_on", "related_to")
DepType = Literal["blocks", "depends_on", "related_to"]
State = Literal["open", "closed"]


class _Kind(msgspec.Struct, frozen=True, kw_only=True, tag=True):
    TAG: ClassVar[int]

    def payload(self) -> list[Any]:
        """The CBOR payload array, exactly as hashed and stored."""
        raise NotImplementedError


class IssueCreated(_Kind, frozen=True, kw_only=True):
    TAG: ClassVar[int] = 1
    title: str
    body: str
    labels: list[str]

    def payload(self) -> list[Any]:
        return [self.title, self.body, sorted(self.labels)]


class IssueUpdated(_Kind, frozen=True, kw_only=True):
    TAG: ClassVar[int] = 2
    title: str | None = None
    body: str | None = None

    def payload(self) -> list[Any]:
        return [self.title, self.body]


class CommentAdded(_Kind, frozen=True, kw_only=True):
    TAG: ClassVar[int] = 3
    body: str

    def payload(self) -> list[Any]:
        return [self.body]


class LabelAdded(_Kind, frozen=True, kw_only=True):
    TAG: ClassVar[int] = 4
    label: str

    def payload(self) -> list[Any]:
        return [self.label]


class LabelRemoved(_Kind, frozen=True, kw_only=True):
    TAG: ClassVar[int] = 5
    label: str

    def payload(self) -> list[Any]:
        return [self.label]


class StateChanged(_Kind, frozen=True, kw_only=True):
    TAG: ClassVar[int] = 6
    state: State

    def payload(self) -> list[Any]:
        return [self.state]


class LinkAdded(_Kind, frozen=True, kw_only=True):
    TAG: ClassVar[int] = 7
    url: str
    note: str | None = None

    def payload(self) -> list[Any]:
        return [self.url, self.note]


class AssigneeAdded(_Kind, frozen=True, kw_only=True):
    TAG: ClassVar[int] = 8
    user: str

    def payload(self) -> list[Any]:
        return [self.user]


class AssigneeRemoved(_Kind, frozen=True, kw_only=True):
    TAG: ClassVar[int] = 9
    user: str

    def payload(self) -> list[Any]:
        return [self.user]


class AttachmentAdded(_Kind, frozen=True, kw_only=True):
    TAG: ClassVar[int] = 10
    name: str
    sha256: bytes
    mime: str

    def payload(self) -> list[Any]:
        return [self.name, self.sha256, self.mime]


class DependencyAdded(_Kind, frozen=True, kw_only=True):
    TAG: ClassVar[int] = 11
    target: bytes
    dep_type: DepType

    def payload(self) -> list[Any]:
        return [self.target, self.dep_type]


class DependencyRemoved(_Kind, frozen=True, kw_only=True):
    TAG: ClassVar[int] = 12
    target: bytes
    dep_type: DepType

    def payload(self) -> list[Any]:
        return [self.target, self.dep_type]


class Symbol(msgspec.Struct, frozen=True, kw_only=True):
    name: str
    kind: str
    line_start: int
    line_end: int


class ContextUpdated(_Kind, frozen=True, kw_only=True):
    TAG: ClassVar[int] = 13
    path: str
    language: str
    symbols: list[Symbol]
    summary: str
    content_hash: bytes

    def payload(self) -> list[Any]:
        symbols = sorted(self.symbols, key=lambda s: (s.name, s.kind))
        return [
            self.path,
            self.language,
            [[s.name, s.kind, s.line_start, s.line_end] for s in symbols],
            self.summary,
            self.content_hash,
        ]


class ProjectContextUpdated(_Kind, frozen=True, kw_only=True):
    TAG: ClassVar[int] = 14
    key: str
    value: str

    def payload(self) -> list[Any]:
        return [self.key, self.value]


EventKind = (
    IssueCreated
    | IssueUpdated
    | CommentAdded
    | LabelAdded
    | LabelRemoved
    | StateChanged
    | LinkAdded
    | AssigneeAdded
    | AssigneeRemoved
    | AttachmentAdded
    | DependencyAdded
    | DependencyRemoved
    | ContextUpdated
    | ProjectContextUpdated
)


class Event(msgspec.Struct, frozen=True, kw_only=True):
    """One immutable fact about one issue. `event_id` is the BLAKE2b-256 of its preimage."""

    event_id: bytes
    issue_id: bytes
    actor: bytes
    ts_unix_ms: int
    parent: bytes | None = None
    kind: EventKind
    sig: bytes | None = None

    @property
    def version(self) -> tuple[int, bytes, bytes]:
        """Last-writer-wins order: (ts, actor, event_id), compared lexicographically."""
        return (self.ts_unix_ms, self.actor, self.event_id)


def _expect(payload: list[Any], n: int, name: str) -> None:
    if not isinstance(payload, list) or len(payload) != n:
        raise CorruptData(f"{name} expects {n} fields")


def _str(value: Any, name: str, limit: int = MAX_TEXT_CHARS) -> str:
    if not isinstance(value, str):
        raise CorruptData(f"{name}: expected a text string")
    if len(value) > limit:
        raise CorruptData(f"{name}: {len(value)} characters, more than the {limit} allowed")
    return value


def _name(value: Any, name: str) -> str:
    return _str(value, name, MAX_NAME_CHARS)


def _opt_str(value: Any, name: str) -> str | None:
    return None if value is None else _str(value, name)


def _bytes(value: Any, n: int, name: str) -> bytes:
    if not isinstance(value, bytes) or len(value) != n:
        raise CorruptData(f"{name}: expected {n} bytes")
    return value


def _line(value: Any, name: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= MAX_LINE_NUMBER:
        raise CorruptData(f"Symbol: {name} must be an integer from 0 to {MAX_LINE_NUMBER}")
    return value


def _array(value: Any, limit: int, name: str) -> list[Any]:
    if not isinstance(value, list):
        raise CorruptData(f"{name} must be an array")
    if len(value) > limit:
        raise CorruptData(f"{name}: {len(value)} entries, more than the {limit} allowed")
    return value


def _dep_type(value: Any) -> DepType:
    if value not in DEP_TYPES:
        raise CorruptData(f"invalid dependency type: {value!r}")
    return value  # type: ignore[no-any-return]


def kind_from_payload(tag: int, p: Any) -> EventKind:
    """Decode a kind from its numeric tag and CBOR payload, every field type- and range-checked
    (grite.model.limits: text at most MAX_TEXT_CHARS, names MAX_NAME_CHARS, MAX_LABELS labels,
    MAX_SYMBOLS symbols).

    Raises:
        CorruptData: unknown tag, wrong arity, wrong field types or a field out of bounds.
    """
    if tag == 1:
        _expect(p, 3, "IssueCreated")
        labels = _array(p[2], MAX_LABELS, "IssueCreated: labels")
        return IssueCreated(
            title=_str(p[0], "title"),
            body=_str(p[1], "body"),
            labels=[_name(x, "label") for x in labels],
        )
    if tag == 2:
        _expect(p, 2, "IssueUpdated")
        return IssueUpdated(title=_opt_str(p[0], "title"), body=_opt_str(p[1], "body"))
    if tag == 3:
        _expect(p, 1, "CommentAdded")
        return CommentAdded(body=_str(p[0], "body"))
    if tag == 4:
        _expect(p, 1, "LabelAdded")
        return LabelAdded(label=_name(p[0], "label"))
    if tag == 5:
        _expect(p, 1, "LabelRemoved")
        return LabelRemoved(label=_name(p[0], "label"))
    if tag == 6:
        _expect(p, 1, "StateChanged")
        if p[0] not in ("open", "closed"):
            raise CorruptData(f"invalid state: {p[0]!r}")
        return StateChanged(state=p[0])
    if tag == 7:
        _expect(p, 2, "LinkAdded")
        return LinkAdded(url=_str(p[0], "url"), note=_opt_str(p[1], "note"))
    if tag == 8:
        _expect(p, 1, "AssigneeAdded")
        return AssigneeAdded(user=_name(p[0], "user"))
    if tag == 9:
        _expect(p, 1, "AssigneeRemoved")
        return AssigneeRemoved(user=_name(p[0], "user"))
    if tag == 10:
        _expect(p, 3, "AttachmentAdded")
        return AttachmentAdded(
            name=_name(p[0], "name"), sha256=_bytes(p[1], 32, "sha256"), mime=_name(p[2], "mime")
        )
    if tag in (11, 12):
        cls = DependencyAdded if tag == 11 else DependencyRemoved
        _expect(p, 2, cls.__name__)
        return cls(target=_bytes(p[0], 16, "target"), dep_type=_dep_type(p[1]))
    if tag == 13:
        _expect(p, 5, "ContextUpdated")
        symbols = []
        for s in _array(p[2], MAX_SYMBOLS, "ContextUpdated: symbols"):
            _expect(s, 4, "Symbol")
            symbols.append(
                Symbol(
                    name=_name(s[0], "name"),
                    kind=_name(s[1], "kind"),
                    line_start=_line(s[2], "line_start"),
                    line_end=_line(s[3], "line_end"),
                )
            )
        return ContextUpdated(
            path=_str(p[0], "path"),
            language=_name(p[1], "language"),
            symbols=symbols,
            summary=_str(p[3], "summary"),
            content_hash=_bytes(p[4], 32, "content_hash"),
        )
    if tag == 14:
        _expect(p, 2, "ProjectContextUpdated")
        return ProjectContextUpdated(key=_name(p[0], "key"), value=_str(p[1], "value"))
    raise CorruptData(f"unknown kind tag: {tag}")
