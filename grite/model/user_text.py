"""The rules for text a user types into a write: one-line fields, free text, labels, URLs.

Checked when a command is given, before anything is written, so a mistake gets an error that
says what to change and nothing reaches the WAL. (What other clones wrote is checked at decode
against grite.model.limits and escaped at display by grite.model.display; these rules are
stricter because the user can still fix their command.)

Labels: a comma separates labels (`--label bug,p1` is two, as in `gh issue create`), so a
label never contains one; case is kept as written, and grite.ops matches labels without
regard to case.

Pure: no I/O, imports nothing of grite but the error and limits modules.
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit

from grite.model.errors import InvalidArgs
from grite.model.limits import MAX_NAME_CHARS, MAX_TEXT_CHARS

__all__ = ["free_text", "has_labels", "label_filter", "label_names", "name", "one_line", "url"]

# Controls that have no place in a one-line field: C0 (newline and tab included), DEL, C1, and
# the line and paragraph separators.
_LINE_BREAKING = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")
_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*")
# Schemes whose URLs name a host: such a URL without one is a typo.
_HOST_SCHEMES = frozenset({"http", "https", "ftp", "ftps", "ssh", "git", "ws", "wss"})


def _sized(value: str, what: str, limit: int) -> str:
    if len(value) > limit:
        raise InvalidArgs(
            f"{what} is {len(value):,} characters long; the limit is {limit:,}. Put large "
            "content in a file and record it with 'grite issue attachment add' or link it "
            "with 'grite issue link add'",
            {"field": what, "length": len(value), "limit": limit},
        )
    if "\x00" in value:
        raise InvalidArgs(
            f"{what} contains a NUL byte; grite stores text, so remove it (binary content "
            "belongs in a file recorded with 'grite issue attachment add')",
            {"field": what},
        )
    return value


def one_line(value: str, what: str, flag: str, limit: int = MAX_TEXT_CHARS) -> str:
    """A field shown on one line (a title, a note): non-empty, no line breaks or controls.

    Raises:
        InvalidArgs: empty, too long, or holding a newline or another control character.
    """
    _sized(value, what, limit)
    if not value.strip():
        raise InvalidArgs(f"{what} must not be empty; pass some text, e.g. {flag} '...'")
    bad = _LINE_BREAKING.search(value)
    if bad is not None:
        char = {"\n": "a newline", "\r": "a carriage return", "\t": "a tab"}.get(
            bad.group(), f"the control character U+{ord(bad.group()):04X}"
        )
        raise InvalidArgs(
            f"{what} contains {char}; it is shown on one line, so give it as one line "
            "(longer text belongs in --body)",
            {"field": what},
        )
    return value


def name(value: str, what: str, flag: str) -> str:
    """A short name (label, user, attachment name, MIME type): trimmed and one line."""
    return one_line(value.strip(), what, flag, MAX_NAME_CHARS)


def free_text(value: str, what: str) -> str:
    """A multi-line field (body, comment): any lines, within the size limit, no NUL."""
    return _sized(value, what, MAX_TEXT_CHARS)


def label_names(values: list[str]) -> list[str]:
    """Labels as given (`--label bug,p1 --label docs`): split at commas, trimmed, checked.

    Raises:
        InvalidArgs: a label (or the whole value) is empty, or one is not a valid name.
    """
    labels: list[str] = []
    for value in values:
        pieces = [p.strip() for p in value.split(",")]
        if not any(pieces):
            raise InvalidArgs("a label must not be empty; pass e.g. --label bug")
        labels += [name(p, "a label", "--label") for p in pieces if p]
    return labels


def url(value: str) -> str:
    """A link's URL: absolute (a scheme, and a host for web-like schemes), one word.

    Raises:
        InvalidArgs: not such a URL.
    """
    text = value.strip()
    one_line(text, "the URL", "--url")
    scheme, _, rest = text.partition(":")
    valid = bool(_SCHEME.fullmatch(scheme)) and bool(rest) and not any(c.isspace() for c in text)
    if valid and scheme.lower() in _HOST_SCHEMES:
        try:
            valid = bool(urlsplit(text).hostname)
        except ValueError:
            valid = False
    if not valid:
        raise InvalidArgs(
            f"--url {value!r} is not a URL: give an absolute one, such as "
            "https://example.com/ci/1 (a scheme, and for web links a host)",
            {"value": value},
        )
    return text


def label_filter(values: list[str]) -> frozenset[str]:
    """The labels a query asks for (`--label Bug,p1`), case-folded for has_labels."""
    return frozenset(label.casefold() for label in label_names(values)) if values else frozenset()


def has_labels(wanted: frozenset[str], labels: list[str]) -> bool:
    """True when `labels` has every label of `wanted` (from label_filter), in any case."""
    return not wanted or wanted.issubset(label.casefold() for label in labels)
