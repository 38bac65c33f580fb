"""Text from the WAL made safe to show: the one escaping function every human renderer calls.

Titles, bodies, labels, comments, lock owners and the like are written by whoever can push to a
shared remote, and a terminal obeys what it prints: ESC and CSI sequences erase or rewrite the
screen, OSC 52 writes the clipboard, OSC 8 hides link targets, `\\r` overwrites a line, and
bidirectional overrides (U+202E and kin, see https://trojansource.codes/) reorder what the reader
sees. `printable` shows each such character as a visible escape (`\\x1b`, `\\r`, `\\u202e`), so the
text reads the same on every terminal and can never act on it. JSON output is exact and never
passes through here.

Pure: no I/O, imports nothing of grite.
"""

from __future__ import annotations

import re

__all__ = ["printable"]

# C0 controls, DEL and C1 controls (U+0080-U+009F: a terminal may treat U+009B as CSI), the
# line and paragraph separators, and the bidirectional formatting characters (the embeddings,
# overrides and isolates, plus the implicit marks that can flip punctuation around them).
_UNSAFE_ONE_LINE = re.compile(
    "[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]"
)
# The same, but newline and tab are kept: multi-line fields (bodies, comments) keep their lines.
_UNSAFE_MULTI_LINE = re.compile(
    "[\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]"
)


_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _escape(match: re.Match[str]) -> str:
    char = match.group()
    named = _NAMED.get(char)
    if named is not None:
        return named
    code = ord(char)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def printable(text: str, *, multiline: bool = False) -> str:
    """`text` with every control, separator and bidirectional formatting character escaped.

    Args:
        text: any string that came from the WAL, a ref or another clone.
        multiline: keep newlines and tabs (bodies, comments; a CRLF counts as a newline);
            otherwise they are escaped too, so a one-line field (title, label, owner) can
            never start a line of its own.

    Returns:
        The text unchanged when it holds nothing to escape (the usual case, checked first).
    """
    pattern = _UNSAFE_MULTI_LINE if multiline else _UNSAFE_ONE_LINE
    if pattern.search(text) is None:
        return text
    if multiline:
        text = text.replace("\r\n", "\n")  # a line ending, not an overwrite
    return pattern.sub(_escape, text)
