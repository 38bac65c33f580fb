"""Issue operations: create, update, comment, state, labels, assignees, links, attachments,
and the queries list and show. One function per user operation, `(ctx, args) -> result`.
"""

from __future__ import annotations

import msgspec

from grite.model import user_text
from grite.model.errors import GriteError, InvalidArgs
from grite.model.events import (
    AssigneeAdded,
    AssigneeRemoved,
    AttachmentAdded,
    CommentAdded,
    ContextUpdated,
    Event,
    EventKind,
    IssueCreated,
    IssueUpdated,
    LabelAdded,
    LabelRemoved,
    LinkAdded,
    StateChanged,
)
from grite.model.hashing import make_event
from grite.model.ids import ISSUE_ID_LEN, is_hex
from grite.model.names import handle
from grite.model.projection import (
    IssueProjection,
    IssueSummary,
    current_dependencies,
    summarize,
)
from grite.model.requests import (
    AttachmentView,
    CommentView,
    DepEdgeView,
    DependencyView,
    IssueAssigneeArgs,
    IssueAttachArgs,
    IssueCloseArgs,
    IssueCommentArgs,
    IssueCreateArgs,
    IssueCreateResult,
    IssueLabelArgs,
    IssueLinkArgs,
    IssueListArgs,
    IssueListResult,
    IssueReopenArgs,
    IssueRow,
    IssueShowArgs,
    IssueUpdateArgs,
    IssueView,
    IssueWriteResult,
    LinkView,
    ShowEvent,
)
from grite.ops.actors import actor_bytes, actor_labels, event_signer
from grite.ops.context import OpContext
from grite.ops.lease_arbiter import lease_remote
from grite.ops.locks import check_lock_policy, held_for_write
from grite.ops.maint import maybe_snapshot

__all__ = [
    "issue_assignee",
    "issue_attach",
    "issue_close",
    "issue_comment",
    "issue_create",
    "issue_label",
    "issue_link",
    "issue_list",
    "issue_reopen",
    "issue_show",
    "issue_update",
    "row",
    "write_events",
]


def write_events(
    ctx: OpContext, issue_id: bytes, kinds: list[EventKind], action: str, lock: bool = False
) -> IssueWriteResult:
    """Build one event per kind (same timestamp) and append them as one WAL commit.

    Every write passes the lock policy on `issue:<id>` (a new issue too: `repo:` locks of
    other actors cover it), is signed when the actor has a key, and may trigger an automatic
    snapshot afterwards. With `lock` (--lock) it holds `issue:<id>` while it writes.
    """
    handle = ctx.handle  # opened first: the checks below read config through its cache
    actor = actor_bytes(ctx)
    with held_for_write(ctx, issue_id, lock):
        check_lock_policy(ctx, actor, f"issue:{issue_id.hex()}")
        sign = event_signer(ctx)
        events = [
            sign(make_event(issue_id=issue_id, actor=actor, ts_unix_ms=ctx.now_ms, kind=kind))
            for kind in kinds
        ]
        result = handle.append(actor, events)
    maybe_snapshot(ctx)
    return IssueWriteResult(
        action=action,
        issue_id=issue_id.hex(),
        event_ids=[e.event_id.hex() for e in events],
        wal_head=result.wal_head,
        event_id=events[0].event_id.hex(),
    )


def _nonempty(value: str, what: str) -> str:
    if not value.strip():
        raise InvalidArgs(f"{what} must not be empty; pass some text, e.g. --{what} '...'")
    return user_text.free_text(value, f"the {what}")


def _known_spelling(ctx: OpContext, labels: list[str]) -> list[str]:
    """`labels` with each one spelled as the repository already spells it (`Bug` becomes
    `bug` when an issue has `bug`), with a warning, so one label never splits into two."""
    wanted = {label.casefold() for label in labels}
    known: dict[str, str] = {}
    for s in ctx.handle.summaries():
        for label in s.labels:
            if label.casefold() in wanted:
                known.setdefault(label.casefold(), label)
    spelled = []
    for label in labels:
        existing = known.get(label.casefold(), label)
        if existing != label:
            ctx.warnings.append(
                f"using the existing label {existing!r} for {label!r} (labels match "
                "without regard to case)"
            )
        spelled.append(existing)
    return sorted(set(spelled))


def _labels(ctx: OpContext, values: list[str]) -> list[str]:
    return _known_spelling(ctx, user_text.label_names(values)) if values else []


def _users(values: list[str]) -> list[str]:
    users = []
    for value in values:
        if not value.strip():
            raise InvalidArgs("a user must not be empty; pass e.g. --user alice")
        users.append(user_text.name(value, "a user", "--user"))
    return sorted(set(users))


def issue_create(ctx: OpContext, args: IssueCreateArgs) -> IssueCreateResult:
    title = user_text.one_line(args.title, "the title", "--title")
    body = user_text.free_text(args.body, "the body")
    labels = _labels(ctx, args.labels)
    issue_id = ctx.derive_id(b"issue", ISSUE_ID_LEN)
    kind = IssueCreated(title=title, body=body, labels=labels)
    result = write_events(ctx, issue_id, [kind], "created")
    return IssueCreateResult(
        **msgspec.structs.asdict(_with(result, state="open", title=title)),
        body=kind.body,
        labels=kind.labels,
        created_ts=ctx.now_ms,
        updated_ts=ctx.now_ms,
    )


def _with(result: IssueWriteResult, **changes: object) -> IssueWriteResult:
    return msgspec.structs.replace(result, **changes)


def issue_update(ctx: OpContext, args: IssueUpdateArgs) -> IssueWriteResult:
    if args.title is None and args.body is None:
        raise InvalidArgs("nothing to update: pass --title and/or --body")
    if args.title is not None:
        user_text.one_line(args.title, "the title", "--title")
    if args.body is not None:
        user_text.free_text(args.body, "the body")
    issue_id = ctx.handle.resolve_issue(args.issue)
    kind = IssueUpdated(title=args.title, body=args.body)
    return write_events(ctx, issue_id, [kind], "updated", lock=args.lock)


def issue_comment(ctx: OpContext, args: IssueCommentArgs) -> IssueWriteResult:
    body = _nonempty(args.body, "body")
    issue_id = ctx.handle.resolve_issue(args.issue)
    return write_events(ctx, issue_id, [CommentAdded(body=body)], "commented", lock=args.lock)


def _set_state(
    ctx: OpContext, issue: str, state: str, action: str, comment: str | None, lock: bool
) -> IssueWriteResult:
    """Close or reopen, with an optional comment in the same commit. An issue already in
    `state` gets no StateChanged (and no commit without a comment): event_ids tells."""
    kinds: list[EventKind] = []
    if comment is not None:
        kinds.append(CommentAdded(body=_nonempty(comment, "comment")))
    issue_id = ctx.handle.resolve_issue(issue)
    p = ctx.handle.projection(issue_id)
    if p is None or p.state != state:
        kinds.append(StateChanged(state=state))
    if not kinds:
        return IssueWriteResult(
            action=action,
            issue_id=issue_id.hex(),
            event_ids=[],
            wal_head=ctx.handle.refresh(),
            state=state,
        )
    return _with(write_events(ctx, issue_id, kinds, action, lock=lock), state=state)


def issue_close(ctx: OpContext, args: IssueCloseArgs) -> IssueWriteResult:
    return _set_state(ctx, args.issue, "closed", "closed", args.comment, args.lock)


def issue_reopen(ctx: OpContext, args: IssueReopenArgs) -> IssueWriteResult:
    return _set_state(ctx, args.issue, "open", "reopened", args.comment, args.lock)


def issue_label(ctx: OpContext, args: IssueLabelArgs) -> IssueWriteResult:
    if not args.add and not args.remove:
        raise InvalidArgs("no label given: pass --label NAME")
    issue_id = ctx.handle.resolve_issue(args.issue)
    kinds: list[EventKind] = [LabelAdded(label=x) for x in _labels(ctx, args.add)]
    if args.remove:
        # Remove the issue's own spelling: `--label Bug` removes `bug`.
        p = ctx.handle.projection(issue_id)
        present = {} if p is None else {k.casefold(): k for k, v in p.labels.items() if v.present}
        removed = {present.get(x.casefold(), x) for x in user_text.label_names(args.remove)}
        kinds += [LabelRemoved(label=x) for x in sorted(removed)]
    action = "labeled" if args.add else "unlabeled"
    return write_events(ctx, issue_id, kinds, action, lock=args.lock)


def issue_assignee(ctx: OpContext, args: IssueAssigneeArgs) -> IssueWriteResult:
    if not args.add and not args.remove:
        raise InvalidArgs("no user given: pass --user NAME")
    issue_id = ctx.handle.resolve_issue(args.issue)
    kinds: list[EventKind] = [AssigneeAdded(user=x) for x in _users(args.add)]
    kinds += [AssigneeRemoved(user=x) for x in _users(args.remove)]
    action = "assigned" if args.add else "unassigned"
    return write_events(ctx, issue_id, kinds, action, lock=args.lock)


def issue_link(ctx: OpContext, args: IssueLinkArgs) -> IssueWriteResult:
    url = user_text.url(args.url)
    note = None if args.note is None else user_text.one_line(args.note, "the note", "--note")
    issue_id = ctx.handle.resolve_issue(args.issue)
    return write_events(ctx, issue_id, [LinkAdded(url=url, note=note)], "linked", lock=args.lock)


def issue_attach(ctx: OpContext, args: IssueAttachArgs) -> IssueWriteResult:
    digest = args.sha256.strip().lower()
    if len(digest) != 64 or not is_hex(digest):
        raise InvalidArgs(
            f"--sha256 {args.sha256!r} is not a SHA-256: give 64 hex characters "
            "(e.g. from 'sha256sum FILE')",
            {"value": args.sha256},
        )
    name = user_text.name(args.name, "the name", "--name")
    mime = user_text.name(args.mime, "the media type", "--mime")
    issue_id = ctx.handle.resolve_issue(args.issue)
    kind = AttachmentAdded(name=name, sha256=bytes.fromhex(digest), mime=mime)
    return write_events(ctx, issue_id, [kind], "attached", lock=args.lock)


def row(s: IssueSummary) -> IssueRow:
    return IssueRow(
        issue_id=s.issue_id.hex(),
        title=s.title,
        state=s.state,
        labels=s.labels,
        assignees=s.assignees,
        author=s.author.hex(),
        created_ts=s.created_ts,
        updated_ts=s.updated_ts,
        comment_count=s.comment_count,
    )


def issue_list(ctx: OpContext, args: IssueListArgs) -> IssueListResult:
    if args.limit is not None and args.limit < 0:
        raise InvalidArgs("--limit must be 0 or more")
    summaries = ctx.handle.summaries()
    n_open = sum(1 for s in summaries if s.state == "open")
    selected = []
    wanted = user_text.label_filter(args.labels)
    needle = args.search.casefold() if args.search else None
    projection = ctx.handle.projection
    for s in summaries:
        if args.state != "all" and s.state != args.state:
            continue
        if not user_text.has_labels(wanted, s.labels):
            continue
        if args.assignee is not None and args.assignee not in s.assignees:
            continue
        if needle is not None and needle not in s.title.casefold():
            p = projection(s.issue_id)
            if p is None or needle not in p.body.casefold():
                continue
        selected.append(s)
    if args.sort == "updated":
        selected.sort(key=lambda s: (-s.updated_ts, s.issue_id))
    elif args.sort == "title":
        selected.sort(key=lambda s: (s.title.casefold(), s.issue_id))
    else:
        selected.sort(key=lambda s: (s.created_ts, s.issue_id))
    if args.reverse:
        selected.reverse()
    if args.limit is not None:
        selected = selected[: args.limit]
    hint = None
    if not summaries and ctx.handle.refresh() is None:
        hint = _first_use_hint(ctx)
    return IssueListResult(
        hint=hint,
        issues=[row(s) for s in selected],
        total=len(selected),
        open=n_open,
        closed=len(summaries) - n_open,
    )


def _first_use_hint(ctx: OpContext) -> str | None:
    """For an empty WAL in a clone with a remote: where the issues may be. A plain `git clone`
    fetches branches and tags, never refs/grite/*, so a fresh clone looks empty until then.
    (Asking the remote whether it has any would make `issue list` wait on the network.)"""
    try:
        remote = lease_remote(ctx)
    except GriteError:
        return None
    if remote is None:
        return None
    return (
        f"this clone has no grite history yet; if {remote!r} has issues, fetch them with "
        "'grite sync --pull'"
    )


def _edge(ctx: OpContext, issue_id: bytes, dep_type: str) -> DepEdgeView:
    p = ctx.handle.projection(issue_id)
    return DepEdgeView(
        issue_id=issue_id.hex(),
        dep_type=dep_type,
        title=None if p is None else p.title,
        state=None if p is None else p.state,
    )


def dependents_of(ctx: OpContext, issue_id: bytes) -> list[tuple[bytes, str]]:
    """(source, dep_type) of every current edge that points at `issue_id`."""
    return ctx.handle.dependents(issue_id)


def issue_view(ctx: OpContext, p: IssueProjection) -> IssueView:
    labels = actor_labels(ctx)
    assignees = sorted(k for k, v in p.assignees.items() if v.present)
    return IssueView(
        author_label=labels.get(p.author.hex()),
        assignee_handles={a: handle(a, labels.get(a)) for a in assignees if _is_actor_id(a)},
        issue_id=p.issue_id.hex(),
        title=p.title,
        body=p.body,
        state=p.state,
        labels=sorted(k for k, v in p.labels.items() if v.present),
        assignees=assignees,
        author=p.author.hex(),
        created_ts=p.created_ts,
        updated_ts=p.updated_ts,
        comments=[
            CommentView(
                event_id=c.event_id.hex(),
                actor=c.actor.hex(),
                ts_unix_ms=c.ts_unix_ms,
                body=c.body,
                actor_label=labels.get(c.actor.hex()),
            )
            for c in p.comments
        ],
        links=[
            LinkView(
                event_id=x.event_id.hex(),
                actor=x.actor.hex(),
                ts_unix_ms=x.ts_unix_ms,
                url=x.url,
                note=x.note,
            )
            for x in p.links
        ],
        attachments=[
            AttachmentView(
                event_id=a.event_id.hex(),
                actor=a.actor.hex(),
                ts_unix_ms=a.ts_unix_ms,
                name=a.name,
                sha256=a.sha256.hex(),
                mime=a.mime,
            )
            for a in p.attachments
        ],
        dependencies=[
            DependencyView(
                **msgspec.structs.asdict(_edge(ctx, d.target, d.dep_type)), target=d.target.hex()
            )
            for d in current_dependencies(p)
        ],
        dependents=[_edge(ctx, src, t) for src, t in dependents_of(ctx, p.issue_id)],
        event_count=p.event_count,
        comment_count=len(p.comments),
        issue=row(summarize(p)),
        events=[_show_event(e) for e in p.events],
    )


def _is_actor_id(text: str) -> bool:
    return len(text) == 32 and is_hex(text)


def _json_value(value: object) -> object:
    # serde writes [u8; N] as an array of integers; 0.5.3's `issue show` prints kinds so.
    if isinstance(value, bytes):
        return list(value)
    if isinstance(value, list):
        return [_json_value(v) for v in value]
    if isinstance(value, dict):
        return {k: _json_value(v) for k, v in value.items()}
    return value


def _show_event(e: Event) -> ShowEvent:
    fields = msgspec.structs.asdict(e.kind)
    if isinstance(e.kind, ContextUpdated):
        fields["symbols"] = [msgspec.structs.asdict(s) for s in e.kind.symbols]
    return ShowEvent(
        event_id=e.event_id.hex(),
        issue_id=e.issue_id.hex(),
        actor=e.actor.hex(),
        ts_unix_ms=e.ts_unix_ms,
        parent=None if e.parent is None else e.parent.hex(),
        kind={type(e.kind).__name__: _json_value(fields)},  # type: ignore[dict-item]
    )


def issue_show(ctx: OpContext, args: IssueShowArgs) -> IssueView:
    issue_id = ctx.handle.resolve_issue(args.issue)
    p = ctx.handle.projection(issue_id)
    assert p is not None  # resolve_issue only returns created issues
    return issue_view(ctx, p)
