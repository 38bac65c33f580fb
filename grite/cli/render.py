"""Rendering of results: the JSON envelope and human text. The only code that formats output;
it returns strings, and whichever side executes the command sends them to the terminal.

Times are shown in the client's time zone (its TZ, forwarded with the invocation), so the output
is the same whether the daemon or the client process renders it. Every string that came from
the WAL, a ref or another clone goes through grite.model.display.printable (`_p`) before it is
shown: human output can never act on the terminal. JSON output is exact.
"""

from __future__ import annotations

from datetime import datetime, timezone, tzinfo
from typing import Any

import msgspec

from grite.cli import envelope
from grite.model.display import printable
from grite.model.errors import GriteError
from grite.model.names import display_name
from grite.model.requests import (
    ActorInfo,
    ActorListResult,
    ActorUseResult,
    DepListResult,
    DepTopoResult,
    DepWriteResult,
    InitResult,
    IssueListResult,
    IssueRow,
    IssueView,
    IssueWriteResult,
)

__all__ = [
    "JSON_SCHEMA_VERSION",
    "Renderer",
    "color_wanted",
    "json_error",
    "json_success",
    "relative",
]

JSON_SCHEMA_VERSION = envelope.JSON_SCHEMA_VERSION

_ACTION_TEXT = {
    "created": "Created issue",
    "updated": "Updated issue",
    "commented": "Commented on issue",
    "closed": "Closed issue",
    "reopened": "Reopened issue",
    "labeled": "Updated labels of issue",
    "unlabeled": "Updated labels of issue",
    "assigned": "Updated assignees of issue",
    "unassigned": "Updated assignees of issue",
    "linked": "Added a link to issue",
    "attached": "Added an attachment to issue",
}


def _p(text: str | None) -> str:
    """A one-line field, safe to print."""
    return printable(text or "")


def _pm(text: str) -> str:
    """A multi-line field (body, comment), safe to print; its lines are kept."""
    return printable(text, multiline=True)


def _pretty(value: Any) -> str:
    return msgspec.json.format(msgspec.json.encode(value), indent=2).decode("utf-8") + "\n"


def json_success(data: Any) -> str:
    return envelope.encode(envelope.success(data), pretty=True)


def json_error(err: GriteError) -> str:
    return envelope.encode(envelope.failure(err), pretty=True)


def human_error(err: GriteError) -> str:
    # Messages may quote what came from the WAL or a remote (a lock owner, a bad value).
    # Multi-line: usage errors carry argparse's usage lines after the message.
    return f"error: {printable(err.message, multiline=True)}\n"


# SGR colours (ECMA-48): only ever around text grite chose or escaped with printable().
_RESET = "\x1b[0m"
_STYLE = {
    "header": "\x1b[1m",  # bold
    "title": "\x1b[1m",
    "id": "\x1b[33m",  # yellow, as git colours commit ids
    "open": "\x1b[32m",  # green
    "closed": "\x1b[35m",  # magenta
    "label": "\x1b[36m",  # cyan
    "date": "\x1b[2m",  # dim
}


def color_wanted(choice: str, env: dict[str, str], isatty: bool) -> bool:
    """Whether to colour: `--color always|never`, else (auto) on a terminal unless NO_COLOR
    is set and not empty (https://no-color.org) or TERM is dumb."""
    if choice == "always":
        return True
    if choice == "never":
        return False
    return isatty and not env.get("NO_COLOR") and env.get("TERM") != "dumb"


def relative(ts_ms: int, now_ms: int) -> str:
    """`just now`, `5 minutes ago`, `3 days ago`, `in 2 hours` (clock skew)."""
    delta = (now_ms - ts_ms) // 1000
    ahead = delta < 0
    seconds = abs(delta)
    if seconds < 45:
        return "just now"
    for unit, size in (("year", 31_536_000), ("month", 2_592_000), ("week", 604_800),
                       ("day", 86_400), ("hour", 3_600), ("minute", 60)):  # fmt: skip
        if seconds >= size or unit == "minute":
            n = max(1, round(seconds / size))
            text = f"{n} {unit}{'' if n == 1 else 's'}"
            return f"in {text}" if ahead else f"{text} ago"
    return "just now"  # pragma: no cover (the loop always returns)


class Renderer:
    """Human text for results, for one invocation's time zone and terminal. On a terminal,
    tables show relative times (`5 minutes ago`, from the client's clock `now_ms`); with
    `color`, SGR colours."""

    def __init__(
        self,
        tz_name: str | None,
        columns: int,
        isatty: bool,
        *,
        color: bool = False,
        now_ms: int | None = None,
    ) -> None:
        self._tz = _zone(tz_name)
        self._columns = columns if isatty else 0
        self._color = color
        self._now_ms = now_ms if isatty else None

    def paint(self, text: str, style: str) -> str:
        """`text` in a colour of _STYLE when colouring, else as it is."""
        if not self._color or not text:
            return text
        return f"{_STYLE[style]}{text}{_RESET}"

    def table_time(self, ts_ms: int) -> str:
        """A time in a table: relative on a terminal, else as `when` writes it."""
        if self._now_ms is not None:
            return relative(ts_ms, self._now_ms)
        return self.when(ts_ms)

    def when(self, ts_ms: int) -> str:
        try:
            dt = datetime.fromtimestamp(ts_ms / 1000, tz=timezone.utc).astimezone(self._tz)
        except (OverflowError, ValueError, OSError):
            # Out of what a date can show (the WAL's bounds keep events inside it; a lock or
            # a request may not be): the raw milliseconds, never a failure.
            return f"{ts_ms} ms"
        return dt.strftime("%Y-%m-%d %H:%M")

    def render(self, result: Any) -> str:
        if isinstance(result, IssueWriteResult):
            if not result.event_ids and result.state is not None:
                return f"Issue {result.issue_id} is already {result.state}; nothing written\n"
            text = _ACTION_TEXT.get(result.action, result.action.capitalize())
            return f"{text} {result.issue_id}\n"
        if isinstance(result, IssueListResult):
            return self._list(result)
        if isinstance(result, IssueView):
            return self._show(result)
        if isinstance(result, DepWriteResult):
            verb = "Added" if result.action == "added" else "Removed"
            return (
                f"{verb} dependency {result.issue_id[:12]} {result.dep_type} {result.target[:12]}\n"
            )
        if isinstance(result, DepListResult):
            if not result.deps:
                what = "depends on" if result.direction == "dependencies" else "is needed by"
                return f"Issue {result.issue_id[:12]} {what} nothing\n"
            return "".join(
                f"{d.dep_type:<10}  {d.issue_id[:12]}  {d.state or '?':<6}  {_p(d.title) or '?'}\n"
                for d in result.deps
            )
        if isinstance(result, DepTopoResult):
            return self._table(result.issues) or "No issues\n"
        if isinstance(result, InitResult):
            lines = [
                f"Initialized grite with actor {result.actor_id}"
                if result.action == "created"
                else f"Already initialized with actor {result.actor_id}"
            ]
            if result.agents_md_path:
                lines.append(f"AGENTS.md {result.agents_md_action}: {result.agents_md_path}")
            return "\n".join(lines) + "\n"
        if isinstance(result, ActorListResult):
            if not result.actors:
                return "No actors; run 'grite actor init' to create one\n"
            return "".join(
                f"{_p(a.actor_id)}  {_p(a.label) or '-'}{'  (default)' if a.is_default else ''}\n"
                for a in result.actors
            )
        if isinstance(result, ActorInfo):
            lines = [f"Actor {_p(result.actor_id)}"]
            if result.label:
                lines.append(f"  label: {_p(result.label)}")
            if result.created_ts:
                lines.append(f"  created: {self.when(result.created_ts)}")
            if result.data_dir:
                lines.append(f"  data dir: {_p(result.data_dir)}")
            if result.source:
                lines.append(f"  source: {_p(result.source)}")
            if result.public_key:
                lines.append(f"  public key: {_p(result.public_key)} ({_p(result.key_scheme)})")
            return "\n".join(lines) + "\n"
        if isinstance(result, ActorUseResult):
            return f"Default actor is now {result.default_actor}\n"
        return _pretty(result)

    def _table(self, rows: list[IssueRow]) -> str:
        if not rows:
            return ""
        cells = [
            (
                r.issue_id[:12],
                r.state,
                self.table_time(r.updated_ts),
                ",".join(_p(label) for label in r.labels),
                _p(r.title),
            )
            for r in rows
        ]
        header = ("ID", "STATE", "UPDATED", "LABELS", "TITLE")
        widths = [max(len(header[i]), *(len(c[i]) for c in cells)) for i in range(4)]
        lines = [self._row(header, widths, header=True)]
        lines += [self._row(c, widths) for c in cells]
        return "\n".join(lines) + "\n"

    def _row(self, c: tuple[str, ...], widths: list[int], header: bool = False) -> str:
        prefix = "  ".join(c[i].ljust(widths[i]) for i in range(4)) + "  "
        title = c[4]
        if self._columns and len(prefix) + len(title) > self._columns:
            title = title[: max(self._columns - 1 - len(prefix), 0)] + "…"
        plain = (prefix + title).rstrip()
        if not self._color:
            return plain
        if header:
            return self.paint(plain, "header")
        styles = ("id", c[1] if c[1] in ("open", "closed") else "label", "date", "label")
        # Colour each padded cell's text, keeping its padding outside the colour.
        parts = [self.paint(c[i], styles[i]) + " " * (widths[i] - len(c[i])) for i in range(4)]
        return ("  ".join(parts) + "  " + title).rstrip()

    def _list(self, result: IssueListResult) -> str:
        if not result.issues:
            hint = f"Hint: {_p(result.hint)}\n" if result.hint else ""
            return (
                f"No matching issues ({result.open} open, {result.closed} closed in total)\n" + hint
            )
        footer = f"\n{result.total} shown ({result.open} open, {result.closed} closed in total)\n"
        return self._table(result.issues) + footer

    def _show(self, v: IssueView) -> str:
        out = [
            self.paint(_p(v.title), "title"),
            f"{self.paint(v.issue_id, 'id')} · {self.paint(v.state, v.state if v.state in _STYLE else 'label')}"
            f" · opened {self.when(v.created_ts)}"
            f" by {_p(display_name(v.author, v.author_label))}"
            f" · updated {self.when(v.updated_ts)}",
        ]
        if v.labels:
            out.append(f"Labels: {', '.join(_p(x) for x in v.labels)}")
        if v.assignees:
            shown = (v.assignee_handles.get(x, x) for x in v.assignees)
            out.append(f"Assignees: {', '.join(_p(x) for x in shown)}")
        out.append("")
        out.append(_pm(v.body) if v.body else "(no description)")
        if v.comments:
            out += ["", f"Comments ({len(v.comments)}):"]
            for c in v.comments:
                who = _p(display_name(c.actor, c.actor_label))
                out.append(f"  {who} at {self.when(c.ts_unix_ms)}:")
                out += [f"    {line}" for line in _pm(c.body).split("\n")]
        if v.links:
            out += ["", "Links:"]
            out += [f"  {_p(x.url)}" + (f"  ({_p(x.note)})" if x.note else "") for x in v.links]
        if v.attachments:
            out += ["", "Attachments:"]
            out += [f"  {_p(a.name)}  {_p(a.mime)}  sha256:{a.sha256}" for a in v.attachments]
        if v.dependencies:
            out += ["", "Dependencies:"]
            out += [
                f"  {d.dep_type} {d.issue_id[:12]} [{d.state or '?'}] {_p(d.title) or '?'}"
                for d in v.dependencies
            ]
        if v.dependents:
            out += ["", "Dependents:"]
            out += [
                f"  {d.issue_id[:12]} {d.dep_type} this [{d.state or '?'}] {_p(d.title) or '?'}"
                for d in v.dependents
            ]
        return "\n".join(out) + "\n"


def _zone(name: str | None) -> tzinfo | None:
    if name:
        try:
            from zoneinfo import ZoneInfo  # stdlib; only loaded when TZ is set

            return ZoneInfo(name.lstrip(":"))
        except Exception:  # an unknown TZ falls back to the machine's zone, as libc does
            return None
    # None makes astimezone() use the machine's local zone (same machine for daemon and client).
    return None
