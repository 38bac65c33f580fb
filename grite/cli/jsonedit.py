"""Format-preserving edits of JSON (and JSONC) settings files, for `grite setup`.

Agents keep their settings in JSON files that people edit by hand (Claude Code's
`.claude/settings.json`, Gemini CLI's `.gemini/settings.json`, `.cursor/mcp.json`,
`opencode.json`, which may carry comments). Loading and dumping them would reformat the whole
file and drop its comments, so edits are made in the text instead: a small parser records where
every value sits, an addition is spliced in after the last item of its container, and a removal
cuts out exactly the text an addition put in, so add-then-remove gives back the original bytes.
No maintained Python library edits JSON while keeping its formatting (tomlkit does it for
TOML only), hence this module. Only what setup needs: add an element to an array, add a member
to an object (creating the objects on the way), and take either out again.

Imports only the standard library.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "JsonEditError",
    "add_element",
    "add_member",
    "is_empty_document",
    "load",
    "remove_element",
    "remove_member",
]


class JsonEditError(ValueError):
    """The text is not JSON, or a value on the path is not an object/array."""


@dataclass
class _Node:
    start: int
    end: int
    value: Any = None
    # Objects: [(key, key_start, node)]; arrays: [(None, start, node)].
    items: list[tuple[str | None, int, _Node]] = field(default_factory=list)
    kind: str = "scalar"  # "object", "array" or "scalar"


_WS = re.compile(r"(?:\s+|//[^\n]*|/\*.*?\*/)*", re.DOTALL)
_NUMBER = re.compile(r"-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][+-]?\d+)?")
_LITERALS = {"true": True, "false": False, "null": None}


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0

    def skip(self) -> None:
        m = _WS.match(self.text, self.pos)
        self.pos = m.end() if m else self.pos

    def fail(self, what: str) -> JsonEditError:
        line = self.text.count("\n", 0, self.pos) + 1
        return JsonEditError(f"{what} at line {line}")

    def value(self) -> _Node:
        self.skip()
        start = self.pos
        ch = self.text[start : start + 1]
        if ch == "{":
            return self.container(start, "}", "object")
        if ch == "[":
            return self.container(start, "]", "array")
        if ch == '"':
            text, self.pos = json.decoder.scanstring(self.text, start + 1)  # type: ignore[attr-defined]
            return _Node(start, self.pos, text)
        m = _NUMBER.match(self.text, start)
        if m:
            self.pos = m.end()
            return _Node(start, self.pos, json.loads(m.group()))
        for word, val in _LITERALS.items():
            if self.text.startswith(word, start):
                self.pos = start + len(word)
                return _Node(start, self.pos, val)
        raise self.fail("expected a JSON value")

    def container(self, start: int, close: str, kind: str) -> _Node:
        node = _Node(start, start, kind=kind)
        self.pos = start + 1
        while True:
            self.skip()
            if self.text.startswith(close, self.pos):
                self.pos += 1
                break
            key: str | None = None
            item_start = self.pos
            if kind == "object":
                if not self.text.startswith('"', self.pos):
                    raise self.fail("expected a member name")
                key, self.pos = json.decoder.scanstring(self.text, self.pos + 1)  # type: ignore[attr-defined]
                self.skip()
                if not self.text.startswith(":", self.pos):
                    raise self.fail("expected ':'")
                self.pos += 1
            child = self.value()
            node.items.append((key, item_start, child))
            self.skip()
            if self.text.startswith(",", self.pos):
                self.pos += 1
            elif not self.text.startswith(close, self.pos):
                raise self.fail(f"expected ',' or '{close}'")
        node.end = self.pos
        node.value = (
            {k: n.value for k, _, n in node.items}
            if kind == "object"
            else [n.value for _, _, n in node.items]
        )
        return node


def _parse(text: str) -> _Node:
    p = _Parser(text)
    node = p.value()
    p.skip()
    if p.pos != len(text):
        raise p.fail("unexpected text after the JSON value")
    return node


def load(text: str) -> Any:
    """The value of a JSON(C) document ({} for an empty one)."""
    return _parse(text).value if text.strip() else {}


def _line_indent(text: str, pos: int) -> str:
    line_start = text.rfind("\n", 0, pos) + 1
    m = re.match(r"[ \t]*", text[line_start:])
    return m.group() if m else ""


def _unit(text: str) -> str:
    indents = [m.group(1) for m in re.finditer(r"\n([ \t]+)\S", text)]
    if not indents:
        return "  "
    return min(indents, key=len)


def _render(value: Any, indent: str, unit: str) -> str:
    width = unit if unit != "\t" else "\t"
    dumped = json.dumps(value, indent=width, ensure_ascii=False)
    return dumped.replace("\n", "\n" + indent)


def _insert(text: str, node: _Node, key: str | None, value: Any) -> str:
    """Append `value` (as member `key` when node is an object) to the container `node`."""
    unit = _unit(text)
    head = "" if key is None else json.dumps(key, ensure_ascii=False) + ": "
    if node.items:
        last = node.items[-1][2]
        if "\n" not in text[node.start : node.end]:  # a one-line container stays one line
            piece = ", " + head + json.dumps(value, ensure_ascii=False)
        else:
            indent = _line_indent(text, node.items[-1][1])
            piece = ",\n" + indent + head + _render(value, indent, unit)
        return text[: last.end] + piece + text[last.end :]
    outer = _line_indent(text, node.start)
    indent = outer + unit
    inner = "\n" + indent + head + _render(value, indent, unit) + "\n" + outer
    return text[: node.start + 1] + inner + text[node.end - 1 :]


def _walk(root: _Node, path: list[str]) -> tuple[list[_Node], _Node | None, int]:
    """Nodes along `path` from the root: (the chain, the last one found, how many keys found)."""
    chain = [root]
    node = root
    for depth, name in enumerate(path):
        if node.kind != "object":
            raise JsonEditError(f"'{'.'.join(path[:depth])}' is not an object")
        child = next((n for k, _, n in node.items if k == name), None)
        if child is None:
            return chain, None, depth
        chain.append(child)
        node = child
    return chain, node, len(path)


def _nest(path: list[str], leaf: Any) -> Any:
    for name in reversed(path):
        leaf = {name: leaf}
    return leaf


def _ensure_doc(text: str) -> str:
    return text if text.strip() else "{}\n"


def add_element(text: str, path: list[str], element: Any) -> str:
    """Append `element` to the array at `path` (created as needed) unless it is there already."""
    text = _ensure_doc(text)
    root = _parse(text)
    chain, node, found = _walk(root, path)
    if node is None:
        parent = chain[-1]
        return _insert(text, parent, path[found], _nest(path[found + 1 :], [element]))
    if node.kind != "array":
        raise JsonEditError(f"'{'.'.join(path)}' is not an array")
    if element in node.value:
        return text
    return _insert(text, node, None, element)


def add_member(text: str, path: list[str], key: str, value: Any) -> str:
    """Add member `key` to the object at `path` (created as needed) unless `key` is there."""
    text = _ensure_doc(text)
    root = _parse(text)
    chain, node, found = _walk(root, path)
    if node is None:
        return _insert(text, chain[-1], path[found], _nest(path[found + 1 :], {key: value}))
    if node.kind != "object":
        raise JsonEditError(f"'{'.'.join(path)}' is not an object")
    if key in node.value:
        return text
    return _insert(text, node, key, value)


def _cut(text: str, node: _Node, index: int) -> str:
    items = node.items
    if len(items) == 1:
        return text[: node.start + 1] + text[node.end - 1 :]
    if index > 0:
        return text[: items[index - 1][2].end] + text[items[index][2].end :]
    return text[: items[0][1]] + text[items[1][1] :]


def _remove_at(text: str, path: list[str], index_of: Any) -> str:
    """Remove the item chosen by `index_of(node)` at `path`, then prune emptied containers."""
    if not text.strip():
        return text
    root = _parse(text)
    chain, node, found = _walk(root, path)
    if node is None:
        return text
    index = index_of(node)
    if index is None:
        return text
    text = _cut(text, node, index)
    # Containers on the path that are empty now held only what was taken out: prune them.
    for depth in range(len(path), 0, -1):
        root = _parse(text)
        chain, node, _ = _walk(root, path[:depth])
        if node is None or node.items:
            break
        parent = chain[-2]
        position = next(i for i, (k, _, _) in enumerate(parent.items) if k == path[depth - 1])
        text = _cut(text, parent, position)
    return text


def remove_element(text: str, path: list[str], element: Any) -> str:
    """Take every element equal to `element` (or, when it is callable, for which it returns
    True) out of the array at `path`; objects left empty on the path go too."""
    match = element if callable(element) else (lambda value: value == element)

    def index_of(node: _Node) -> int | None:
        if node.kind != "array":
            return None
        return next((i for i, (_, _, n) in enumerate(node.items) if match(n.value)), None)

    while True:
        new = _remove_at(text, path, index_of)
        if new == text:
            return text
        text = new


def remove_member(text: str, path: list[str], key: str, value: Any) -> str:
    """Take member `key` out of the object at `path` if it still holds `value`."""

    def index_of(node: _Node) -> int | None:
        if node.kind != "object":
            return None
        return next(
            (i for i, (k, _, n) in enumerate(node.items) if k == key and n.value == value), None
        )

    return _remove_at(text, path, index_of)


def is_empty_document(text: str) -> bool:
    """Whether `text` is only an empty object (what removal leaves of a file it created)."""
    try:
        return not text.strip() or (_parse(text).kind == "object" and not load(text))
    except JsonEditError:
        return False
