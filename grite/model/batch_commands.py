"""The commands `grite batch` (and every typed client) may send: each args Struct by its tag,
checked strictly, and described for `grite batch --help` and grite(1).

The description is generated from the Structs themselves (fields, types, defaults), so the
help and the man page cannot drift from what the daemon decodes; tests/unit/model/
test_batch_commands.py keeps the man page's list equal to `mdoc_list()`.

Pure: imports only grite.model.
"""

from __future__ import annotations

import difflib
import types
from typing import Any, Literal, Union, get_args, get_origin

import msgspec

from grite.model import (
    requests,
    requests_agents,
    requests_context,
    requests_locks,
    requests_maint,
    requests_prime,
    requests_sync,
)
from grite.model.errors import InvalidArgs

__all__ = ["COMMANDS", "check", "describe", "mdoc_list"]

_MODULES = (
    requests,
    requests_agents,
    requests_context,
    requests_locks,
    requests_maint,
    requests_prime,
    requests_sync,
)


def _commands() -> dict[str, type[msgspec.Struct]]:
    found: dict[str, type[msgspec.Struct]] = {}
    for module in _MODULES:
        for name in module.__all__:
            value = getattr(module, name)
            if not (isinstance(value, type) and issubclass(value, msgspec.Struct)):
                continue
            tag = value.__struct_config__.tag
            if name.endswith("Args") and isinstance(tag, str):
                found[tag] = value
    return dict(sorted(found.items()))


# Every command type, by its "type" tag.
COMMANDS: dict[str, type[msgspec.Struct]] = _commands()


def _type_text(tp: Any) -> str:
    origin = get_origin(tp)
    if origin is Literal:
        return "|".join(str(a) for a in get_args(tp))
    if origin in (Union, types.UnionType):
        return " or ".join(_type_text(a) for a in get_args(tp))
    if origin is list:
        return f"list of {_type_text(get_args(tp)[0])}"
    if tp is type(None):
        return "null"
    return getattr(tp, "__name__", str(tp))


def _fields(struct: type[msgspec.Struct]) -> list[tuple[str, str, str | None]]:
    """(name, type, default shown; None when required) of each field."""
    out = []
    for f in msgspec.structs.fields(struct):
        if f.required:
            shown = None
        elif f.default_factory is not msgspec.NODEFAULT:
            shown = msgspec.json.encode(f.default_factory()).decode()
        else:
            shown = msgspec.json.encode(f.default).decode()
        out.append((f.encode_name, _type_text(f.type), shown))
    return out


def describe() -> str:
    """Every command type with its keys, one block each (for `grite batch --help`)."""
    lines = []
    for tag, struct in COMMANDS.items():
        keys = [
            f"{name} ({kind}, required)" if shown is None else f"{name} ({kind}, default {shown})"
            for name, kind, shown in _fields(struct)
        ]
        lines.append(f"  {tag}")
        lines += [f"      {key}" for key in keys] or ["      (no keys)"]
    return "\n".join(lines) + "\n"


def _roff(text: str) -> str:
    return text.replace("\\", "\\e").replace('"', "\\(dq")


def mdoc_list() -> str:
    """The same list as mdoc source, for grite(1)'s BATCH COMMANDS section."""
    lines = [".Bl -tag -width Ds"]
    for tag, struct in COMMANDS.items():
        lines.append(f".It Li {tag}")
        fields = _fields(struct)
        if not fields:
            lines.append("No keys.")
        for name, kind, shown in fields:
            need = "required" if shown is None else f"default {_roff(shown)}"
            lines.append(f".Li {name} Pq {_roff(kind)} , {need}")
            lines.append(".br")
        if fields:
            lines.pop()
    lines.append(".El")
    return "\n".join(lines) + "\n"


def check(number: int, doc: object) -> msgspec.Struct:
    """The args Struct of one batch line, or an error naming the line and the key.

    Raises:
        InvalidArgs: not an object with a known "type", an unknown key, or a value of the
            wrong type.
    """
    hint = "run 'grite batch --help' for every type and its keys"
    if not isinstance(doc, dict) or not isinstance(doc.get("type"), str):
        raise InvalidArgs(
            f'line {number} is not a command: give an object with a "type", e.g. '
            f'{{"type": "issue_show", "issue": "abcd"}}; {hint}',
            {"line": number},
        )
    tag = doc["type"]
    struct = COMMANDS.get(tag)
    if struct is None:
        close = difflib.get_close_matches(tag, COMMANDS, n=1)
        guess = f' (did you mean "{close[0]}"?)' if close else ""
        raise InvalidArgs(
            f'line {number}: unknown command type "{tag}"{guess}; {hint}',
            {"line": number, "type": tag},
        )
    names = [f.encode_name for f in msgspec.structs.fields(struct)]
    for key in doc:
        if key != "type" and key not in names:
            close = difflib.get_close_matches(str(key), names, n=1)
            guess = f' (did you mean "{close[0]}"?)' if close else ""
            known = ", ".join(names) or "none"
            raise InvalidArgs(
                f'line {number}: unknown key "{key}" for {tag}{guess}; its keys are: {known}',
                {"line": number, "type": tag, "key": key},
            )
    try:
        return msgspec.convert(doc, struct)  # type: ignore[no-any-return]
    except msgspec.ValidationError as exc:
        raise InvalidArgs(f"line {number}: {tag}: {exc}; {hint}", {"line": number}) from exc
