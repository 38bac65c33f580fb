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

__all__ = ["JSON_SCHEMA_VERSION", "Renderer", "json_error", "json_success"]

JSON_SCHEMA_VERSION = 1

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
    return _pretty({"schema_version": JSON_SCHEMA_VERSION, "ok": True, "data": data})


def json_error(err: GriteError) -> str:
    return _pretty(
        {
            "schema_version": JSON_SCHEMA_VERSION,
            "ok": False,
            "error": {"code": err.code, "message": err.message, "details": err.details},
        }
    )


def human_error(err: GriteError) -> str:
    # Messages may quote what came from the WAL or a remote (a lock owner, a bad value).
    # Multi-line: usage errors carry argparse's usage lines after the message.
    return f"error: {printable(err.message, multiline=True)}\n"


class Renderer:
    """Human text for results, for one invocation's time zone and terminal."""

    def __init__(self, tz_name: str | None, columns: int, isatty: bool) -> None:
        self._tz = _zone(tz_name)
        self._columns = columns if isatty else 0

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
                self.when(r.updated_ts),
                ",".join(_p(label) for label in r.labels),
                _p(r.title),
            )
            for r in rows
        ]
        header = ("ID", "STATE", "UPDATED", "LABELS", "TITLE")
        widths = [max(len(header[i]), *(len(c[i]) for c in cells)) for i in range(4)]
        lines = []
        for c in (header, *cells):
            line = "  ".join(c[i].ljust(widths[i]) for i in range(4)) + "  " + c[4]
            if self._columns and len(line) > self._columns:
                line = line[: max(self._columns - 1, 0)] + "…"
            lines.append(line.rstrip())
        return "\n".join(lines) + "\n"

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
            f"{_p(v.title)}",
            f"{v.issue_id} · {v.state} · opened {self.when(v.created_ts)}"
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
