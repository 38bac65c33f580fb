"""What grite writes into agents' instruction files, and the marked sections that hold it.

grite owns only the text between its markers (`<!-- BEGIN grite -->` ... `<!-- END grite -->` in
Markdown, `# BEGIN grite` ... `# END grite` in TOML); everything outside them is the user's and
is never changed. Adding a section appends it after exactly one newline; removing it takes that
newline back, so add-then-remove gives back the original bytes.

Pure: no I/O; imports nothing of grite but grite.model.
"""

from __future__ import annotations

import re

__all__ = [
    "AGENTS_MD_SECTION",
    "MD_BEGIN",
    "MD_END",
    "PRIME_HINT",
    "TOML_BEGIN",
    "TOML_END",
    "find_section",
    "has_legacy_section",
    "project_rules",
    "remove_section",
    "upsert_section",
]

MD_BEGIN = "<!-- BEGIN grite -->"
MD_END = "<!-- END grite -->"
TOML_BEGIN = "# BEGIN grite (managed by 'grite setup'; 'grite setup --remove' takes it out)"
TOML_END = "# END grite"

# The generic section: `grite init` and `grite setup agents-md` (and codex, opencode) write it.
AGENTS_MD_SECTION = """## Grite

This repository tracks issues with grite; the issues live in git (`refs/grite/wal`).

- Start of a session: `grite prime` (ready queue, claims, locks, what changed).
- Find work: `grite issue ready --json`; take one atomically: `grite issue ready --claim --json`.
- Read one: `grite issue show <id> --json`; search: `grite issue list --search TEXT --json`.
- Record work: `grite issue create --title "..." --body "..." --label <l>`,
  `grite issue comment <id> --body "..."`, `grite issue close <id>`.
- Share it: `grite sync` (pull then push of `refs/grite/*`).
- Always pass `--json` when a program reads the output; ids accept unique prefixes of 4+ hex chars.
- Never edit `.git/grite/` or `refs/grite/*` by hand.
"""

# One line for instruction files whose agent has no session-start hook (Cursor's rule, GEMINI.md).
PRIME_HINT = "At the start of every session, run `grite prime` and follow what it says."

# A legacy, unmarked section (grite 0.5.3's `init`, and ours before markers): the user's now.
_LEGACY_HEADING = re.compile(r"^## Grite[ \t]*$", re.MULTILINE)
_NEXT_H2 = re.compile(r"^## ", re.MULTILINE)


def find_section(text: str, begin: str = MD_BEGIN, end: str = MD_END) -> tuple[int, int] | None:
    """The span of the marked section, from its begin line to the end of its end line.

    Returns:
        (start, stop) offsets into `text`, or None when there is no complete section.
    """
    start = _line_start(text, begin)
    if start is None:
        return None
    stop_line = _line_start(text, end, start)
    if stop_line is None:
        return None
    newline = text.find("\n", stop_line)
    return start, (len(text) if newline < 0 else newline + 1)


def _line_start(text: str, marker: str, pos: int = 0) -> int | None:
    while True:
        i = text.find(marker, pos)
        if i < 0:
            return None
        if (i == 0 or text[i - 1] == "\n") and text[i + len(marker) : i + len(marker) + 1] in (
            "\n",
            "",
        ):
            return i
        pos = i + 1


def _block(body: str, begin: str, end: str) -> str:
    return f"{begin}\n{body.rstrip(chr(10))}\n{end}\n"


def upsert_section(text: str, body: str, begin: str = MD_BEGIN, end: str = MD_END) -> str:
    """`text` with grite's section holding `body`: replaced in place, or appended.

    An appended section follows exactly one added newline (a blank line when the text ended
    with a newline), which `remove_section` takes back.
    """
    span = find_section(text, begin, end)
    block = _block(body, begin, end)
    if span is not None:
        return text[: span[0]] + block + text[span[1] :]
    return (text + "\n" + block) if text else block


def remove_section(text: str, begin: str = MD_BEGIN, end: str = MD_END) -> str:
    """`text` without grite's section (and the newline `upsert_section` put before it)."""
    span = find_section(text, begin, end)
    if span is None:
        return text
    start, stop = span
    if start > 0 and text[start - 1] == "\n" and (start == 1 or text[start - 2] == "\n"):
        start -= 1  # the blank line we added before an appended section
    elif start > 0 and stop == len(text) and text[start - 1] == "\n":
        start -= 1  # appended to text that did not end with a newline
    return text[:start] + text[stop:]


def has_legacy_section(text: str) -> bool:
    """Whether `text` has an unmarked `## Grite` section outside grite's markers."""
    span = find_section(text)
    outside = text if span is None else text[: span[0]] + text[span[1] :]
    return _LEGACY_HEADING.search(outside) is not None


def project_rules(text: str) -> str:
    """The project's own rules in an AGENTS.md: everything but grite's sections, trimmed.

    grite's marked section and an unmarked `## Grite` section (up to the next `## ` heading)
    are left out: what they say, `grite prime` already says.
    """
    span = find_section(text)
    if span is not None:
        text = text[: span[0]] + text[span[1] :]
    legacy = _LEGACY_HEADING.search(text)
    if legacy is not None:
        nxt = _NEXT_H2.search(text, legacy.end())
        text = text[: legacy.start()] + (text[nxt.start() :] if nxt else "")
    lines = [ln.rstrip() for ln in text.strip().splitlines()]
    # A lone top heading ("# Agent instructions") carries no rule.
    if len(lines) == 1 and lines[0].startswith("#"):
        return ""
    return "\n".join(lines)
