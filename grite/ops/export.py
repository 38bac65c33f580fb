"""`grite export --format json|md [--since TS|EVENT_ID] [-o FILE]` (as grite 0.5.3 writes them:
https://github.com/neul-labs/grite/blob/main/crates/libgrite-core/src/export.rs).

Events come from the WAL (verified on read), issue summaries from the view. JSON is
`{meta, issues, events}` with hex ids, each issue with its body, comments, links and
dependencies, and events sorted by (issue_id, ts, actor, event_id); Markdown lists the issues
with ISO 8601 times (UTC), names, dependencies, links and comments; text from the WAL is escaped there (control
characters shown as `\\x1b` and the like, bodies and comments block-quoted, Markdown markup in
titles and labels escaped), JSON stays exact. `--since` is a moment (grite.model.moments: a date,
a time, a duration before now, or milliseconds; events with a later ts) or a 64-hex event id
(events after that event in WAL order); with it,
only the issues those events touch are listed. The document is returned as text, or written
atomically to `-o FILE`.

Imports storage and model only; never prints or reads the environment.
"""

from __future__ import annotations

import os
import re

import msgspec

from grite.model.display import printable
from grite.model.errors import Environment, InvalidArgs, NotFound
from grite.model.events import Event, EventKind
from grite.model.moments import iso, parse_moment
from grite.model.names import display_name
from grite.model.projection import IssueSummary
from grite.model.requests import DepEdgeView
from grite.model.requests_sync import (
    ExportArgs,
    ExportDocument,
    ExportEvent,
    ExportIssue,
    ExportMeta,
    ExportResult,
)
from grite.ops.context import OpContext
from grite.ops.issues import issue_view
from grite.storage.config import write_atomic

__all__ = ["export", "export_events", "kind_json", "render_json", "render_markdown"]

EXPORT_SCHEMA_VERSION = 1
_EVENT_ID = re.compile(r"[0-9a-fA-F]{64}")
_ENCODER = msgspec.json.Encoder()


def kind_json(kind: EventKind) -> dict[str, dict[str, object]]:
    """The externally tagged JSON form of a kind, bytes as lowercase hex."""
    fields: dict[str, object] = {}
    for name in kind.__struct_fields__:
        value = getattr(kind, name)
        fields[name] = value.hex() if isinstance(value, bytes) else msgspec.to_builtins(value)
    return {type(kind).__name__: fields}


def _event_json(e: Event) -> ExportEvent:
    return ExportEvent(
        event_id=e.event_id.hex(),
        issue_id=e.issue_id.hex(),
        actor=e.actor.hex(),
        ts_unix_ms=e.ts_unix_ms,
        parent=None if e.parent is None else e.parent.hex(),
        kind=kind_json(e.kind),
    )


def _issue_json(ctx: OpContext, s: IssueSummary) -> ExportIssue:
    view = issue_view(ctx, ctx.handle.projection(s.issue_id))  # type: ignore[arg-type]
    return ExportIssue(
        body=view.body,
        comments=view.comments,
        links=view.links,
        dependencies=[
            DepEdgeView(issue_id=d.issue_id, dep_type=d.dep_type, title=d.title, state=d.state)
            for d in view.dependencies
        ],
        issue_id=s.issue_id.hex(),
        title=s.title,
        state=s.state,
        labels=list(s.labels),
        assignees=list(s.assignees),
        created_ts=s.created_ts,
        updated_ts=s.updated_ts,
        comment_count=s.comment_count,
    )


def export_events(events: list[Event], since: str | None, now_ms: int = 0) -> list[Event]:
    """Select the events after `since` from `events` (WAL order).

    Args:
        since: an event id (64 hex: the events after it in WAL order) or a moment
            (grite.model.moments: milliseconds, an ISO date or time, a duration before now).
        now_ms: the request's clock, for durations.

    Raises:
        InvalidArgs: `since` is neither a moment nor a 64-hex event id.
        NotFound: `since` is an event id that is not in the WAL.
    """
    if since is None:
        return events
    text = since.strip()
    if _EVENT_ID.fullmatch(text):
        wanted = bytes.fromhex(text)
        for index, e in enumerate(events):
            if e.event_id == wanted:
                return events[index + 1 :]
        raise NotFound(
            f"event {text.lower()} is not in this repository's WAL; pass an event id from "
            "'grite export --format json', a date or a duration",
            {"since": text},
        )
    cutoff = parse_moment(text, now_ms)
    if cutoff is not None:
        return [e for e in events if e.ts_unix_ms > cutoff]
    raise InvalidArgs(
        f"--since {since!r} is not a time: give a date (2026-12-01), a date and time in UTC "
        "(2026-12-01T10:00, or with an offset), a duration before now (30m, 1h, 2d, 1w), "
        "milliseconds since 1970, or a 64-character event id",
        {"since": since},
    )


def render_json(
    ctx: OpContext, meta: ExportMeta, issues: list[IssueSummary], events: list[Event]
) -> str:
    doc = ExportDocument(
        meta=meta,
        issues=[_issue_json(ctx, s) for s in issues],
        events=[
            _event_json(e)
            for e in sorted(events, key=lambda e: (e.issue_id, e.ts_unix_ms, e.actor, e.event_id))
        ],
    )
    return msgspec.json.format(_ENCODER.encode(doc), indent=2).decode("utf-8") + "\n"


def _quote(text: str) -> str:
    """Multi-line text from the WAL as a block quote: whatever it holds (headings, `---`, a
    fake `### issue`) stays inside the quote, and nothing in it can act on a terminal."""
    safe = printable(text, multiline=True)
    return "\n".join(f"> {line}" if line else ">" for line in safe.split("\n"))


_MD_SPECIAL = re.compile(r"([\\`*_\[\]<>|#])")


def _inline(text: str) -> str:
    """One-line text from the WAL (title, label, assignee) on one line, with the characters
    that start Markdown links, HTML, code or tables escaped."""
    return _MD_SPECIAL.sub(r"\\\1", printable(text))


def render_markdown(ctx: OpContext, generated_ts: int, issues: list[IssueSummary]) -> str:
    parts = ["# grite Export\n\n", f"Generated: {iso(generated_ts)}\n\n"]
    if not issues:
        parts.append("No issues found.\n")
        return "".join(parts)
    parts.append("## Issues\n\n")
    for s in issues:
        v = issue_view(ctx, ctx.handle.projection(s.issue_id))  # type: ignore[arg-type]
        parts.append(f"### {_inline(s.title)} [{s.state}]\n\n")
        parts.append(f"**ID:** `{s.issue_id.hex()}`\n\n")
        author = _inline(display_name(v.author, v.author_label))
        parts.append(
            f"**Opened:** {iso(s.created_ts)} by {author} · **Updated:** {iso(s.updated_ts)}\n\n"
        )
        if s.labels:
            parts.append(f"**Labels:** {', '.join(_inline(x) for x in s.labels)}\n\n")
        if s.assignees:
            shown = (v.assignee_handles.get(x, x) for x in s.assignees)
            parts.append(f"**Assignees:** {', '.join(_inline(x) for x in shown)}\n\n")
        if v.dependencies:
            parts.append("**Depends on:**\n\n")
            parts += [
                f"- {d.dep_type.replace('_', ' ')} `{d.issue_id[:12]}` "
                f"{_inline(d.title or '?')} [{d.state or '?'}]\n"
                for d in v.dependencies
            ]
            parts.append("\n")
        if v.links:
            parts.append("**Links:**\n\n")
            parts += [
                f"- <{_inline(x.url)}>" + (f" ({_inline(x.note)})" if x.note else "") + "\n"
                for x in v.links
            ]
            parts.append("\n")
        parts.append(f"**Comments:** {s.comment_count}\n\n")
        if v.body:
            parts.append(f"{_quote(v.body)}\n\n")
        if v.comments:
            parts.append("#### Comments\n\n")
            for c in v.comments:
                who = _inline(display_name(c.actor, c.actor_label))
                parts.append(f"> **{who}** at {iso(c.ts_unix_ms)}:\n{_quote(c.body)}\n\n")
        parts.append("---\n\n")
    return "".join(parts)


def export(ctx: OpContext, args: ExportArgs) -> ExportResult:
    """Export issues and events as JSON or Markdown, to the result or to `args.output`.

    Raises:
        InvalidArgs: bad `--since`, or an unknown format.
        NotFound: `--since` names an event that is not in the WAL.
        Environment: the output file cannot be written.
    """
    if args.format not in ("json", "md"):
        raise InvalidArgs(f"unknown export format {args.format!r}; use --format json or md")
    handle = ctx.handle
    head = handle.refresh()
    # The same events the view holds: invalid commits and, under verify_signatures = require,
    # unsigned ones are left out (the warnings say so).
    entries, _refused = handle.verifier.split(handle.wal.read_entries(head=head))
    events = export_events([e for entry in entries for e in entry.events], args.since, ctx.now_ms)
    summaries = handle.summaries()
    if args.since is not None:
        touched = {e.issue_id for e in events}
        summaries = [s for s in summaries if s.issue_id in touched]
    summaries.sort(key=lambda s: (s.created_ts, s.issue_id))
    if args.format == "json":
        meta = ExportMeta(
            schema_version=EXPORT_SCHEMA_VERSION,
            generated_ts=ctx.now_ms,
            event_count=len(events),
            wal_head=head,
        )
        content = render_json(ctx, meta, summaries, events)
    else:
        content = render_markdown(ctx, ctx.now_ms, summaries)
    output_path = None
    if args.output is not None:
        base = args.cwd or ctx.paths.repo_root
        output_path = os.path.abspath(os.path.join(base, args.output))
        try:
            write_atomic(
                output_path, content.encode("utf-8"), remedy="choose an output path you can write"
            )
        except OSError as exc:
            raise Environment(
                f"cannot write {output_path}: {exc.strerror or exc}; choose another -o path",
                {"path": output_path},
            ) from exc
    return ExportResult(
        format=args.format,
        output_path=output_path,
        event_count=len(events),
        issue_count=len(summaries),
        wal_head=head,
        content=None if output_path is not None else content,
    )
