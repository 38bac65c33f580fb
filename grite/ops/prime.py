"""`grite prime`: one short document with what an agent needs at the start of a session.

The few commands it will use, the ready queue (the first issues of `grite issue ready`, same
order), what is claimed and by whom, the lease locks, the issues changed since this actor's
last prime, and the project's own rules from AGENTS.md. The Markdown is kept within
`max_tokens` estimated tokens (grite.model.requests_prime.estimate_tokens: characters / 4) by
cutting the lists and the rules, never the commands; each cut list says how many it left out
and which command shows them all.

"Changed since the last prime" is per actor: each prime records the WAL head and time in the
actor's directory (grite.storage.agent_state), and the next one lists the issues touched by
WAL commits after that head, which also catches events that `grite sync` brought in with older
timestamps. When the recorded head is gone from the WAL's chain, issues updated after the
recorded time are listed instead. Issue titles come from the WAL, so they are flattened to one
line of printable text before they reach the document.
"""

from __future__ import annotations

import os
import time

import msgspec

from grite.model.agent_docs import project_rules
from grite.model.errors import GriteError, InvalidArgs
from grite.model.leases import conflicts_with
from grite.model.names import handle
from grite.model.projection import IssueSummary
from grite.model.requests_agents import IssueReadyArgs
from grite.model.requests_prime import (
    PrimeArgs,
    PrimeClaim,
    PrimeIssue,
    PrimeLock,
    PrimeResult,
    estimate_tokens,
)
from grite.ops.actors import resolve_actor
from grite.ops.agents import issue_ready
from grite.ops.context import OpContext
from grite.storage.agent_state import PrimeMark, load_prime_mark, read_agents_md, save_prime_mark
from grite.storage.lease_refs import LockStore

__all__ = ["prime"]

_ID_CHARS = 12
_TITLE_CHARS = 80
_MIN_TOKENS = 200
# How many of each list the document starts with, before cutting to the budget.
_CAPS = {"ready": 10, "claimed": 8, "locks": 8, "changed": 8}
_RULES_CHARS = 1200

_COMMANDS = """Commands (add `--json` to parse the output; ids take any unique 4+ hex prefix):
- `grite issue ready --claim` takes the next ready issue for you (lease + assignment)
- `grite issue show ID`, `grite issue comment ID --body TEXT`, `grite issue close ID`
- `grite issue create --title T --body B --label L`, `grite issue list --search TEXT`
- `grite lock acquire path:src/x --ttl 15m` before editing shared files; `grite lock release`
- `grite sync` shares issues through git; run `grite prime` again for a fresh view"""


def _flat(text: str, limit: int = _TITLE_CHARS) -> str:
    """One line of printable text: WAL titles are untrusted (newlines, escapes, Markdown)."""
    clean = "".join(ch if ch.isprintable() else " " for ch in text)
    clean = " ".join(clean.replace("`", "'").split())
    return clean if len(clean) <= limit else clean[: limit - 1] + "…"


def _issue(s: IssueSummary) -> PrimeIssue:
    return PrimeIssue(
        issue_id=s.issue_id.hex(),
        title=s.title,
        state=s.state,
        labels=list(s.labels),
        updated_ts=s.updated_ts,
    )


def _changed_ids(ctx: OpContext, mark: PrimeMark, head: str | None) -> set[bytes] | None:
    """Issues touched by WAL commits after the mark's head; None when that head is gone."""
    if mark.wal_head == head:
        return set()
    try:
        entries = ctx.handle.wal.read_entries(since=mark.wal_head, head=head)
    except GriteError:
        return None  # history rewritten or damaged: the caller falls back to timestamps
    return {e.issue_id for entry in entries for e in entry.events}


def _claims(
    ctx: OpContext, summaries: list[IssueSummary], me: str, now_ms: int, label: str | None = None
) -> tuple[list[PrimeClaim], list[PrimeLock]]:
    mine = {me, handle(me, label)}  # `--claim` assigns the handle; grite 0.6 assigned the id
    with LockStore(ctx.paths.git_dir) as store:
        held = [lk.record for lk in store.list() if not lk.record.expired(now_ms)]
    locks = [
        PrimeLock(
            resource=r.resource,
            owner=r.owner,
            expires_unix_ms=r.expires_unix_ms,
            mine=r.owner == me,
        )
        for r in held
    ]
    leases = [r for r in held if r.resource.startswith("issue:")]
    claims = []
    for s in summaries:
        if s.state != "open":
            continue
        resource = f"issue:{s.issue_id.hex()}"
        lease = next((r for r in leases if conflicts_with(r.resource, resource)), None)
        if not s.assignees and lease is None:
            continue
        claims.append(
            PrimeClaim(
                issue_id=s.issue_id.hex(),
                title=s.title,
                assignees=list(s.assignees),
                lease_owner=lease.owner if lease else None,
                lease_expires_unix_ms=lease.expires_unix_ms if lease else None,
                mine=bool(mine & set(s.assignees)) or (lease is not None and lease.owner == me),
            )
        )
    claims.sort(key=lambda c: (not c.mine, c.issue_id))
    locks.sort(key=lambda lk: (not lk.mine, lk.resource))
    return claims, locks


def _when(ts_ms: int) -> str:
    return time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(ts_ms / 1000))


def _more(shown: int, total: int, command: str) -> list[str]:
    return [f"- … {total - shown} more: `{command}`"] if total > shown else []


def _render(r: PrimeResult, repo: str, caps: dict[str, int], rules_chars: int, now: int) -> str:
    me = r.actor
    mine = r.handle or me
    out = [f"# grite: {_flat(repo, 60)} (you are actor `{me[:8]}`)", "", _COMMANDS, ""]
    ready_claimed = {c.issue_id for c in r.claimed}
    out.append(f"## Ready ({r.ready_total}, oldest first)")
    for i in r.ready[: caps["ready"]]:
        tag = " (claimed)" if i.issue_id in ready_claimed else ""
        labels = f" [{', '.join(_flat(x, 20) for x in i.labels[:3])}]" if i.labels else ""
        out.append(f"- `{i.issue_id[:_ID_CHARS]}` {_flat(i.title)}{labels}{tag}")
    if not r.ready:
        out.append("- nothing is ready")
    out += _more(min(caps["ready"], len(r.ready)), r.ready_total, "grite issue ready")
    if r.claimed_total:
        out += ["", f"## Claimed ({r.claimed_total})"]
        for c in r.claimed[: caps["claimed"]]:
            who = ", ".join(
                ("you" if c.mine and a in (me, mine) else _flat(a, 32)) for a in c.assignees[:3]
            )
            if c.lease_owner is not None and c.lease_expires_unix_ms is not None:
                owner = "you" if c.lease_owner == me else c.lease_owner[:8]
                lease = f"lease {owner}, {max(0, c.lease_expires_unix_ms - now) // 1000}s left"
                who = f"{who}; {lease}" if who else lease
            out.append(f"- `{c.issue_id[:_ID_CHARS]}` {_flat(c.title)} ({who})")
        out += _more(min(caps["claimed"], len(r.claimed)), r.claimed_total, "grite lock status")
    if r.locks_total:
        out += ["", f"## Locks ({r.locks_total})"]
        for lk in r.locks[: caps["locks"]]:
            owner = "you" if lk.mine else lk.owner[:8]
            left = max(0, lk.expires_unix_ms - now) // 1000
            out.append(f"- {_flat(lk.resource, 60)}: {owner}, {left}s left")
        out += _more(min(caps["locks"], len(r.locks)), r.locks_total, "grite lock status")
    if r.since_ms is not None:
        out += ["", f"## Changed since your last prime ({_when(r.since_ms)}): {r.changed_total}"]
        for i in r.changed[: caps["changed"]]:
            out.append(f"- `{i.issue_id[:_ID_CHARS]}` [{i.state}] {_flat(i.title)}")
        out += _more(
            min(caps["changed"], len(r.changed)), r.changed_total, "grite issue list --sort updated"
        )
    if r.rules and rules_chars > 0:
        rules = r.rules if len(r.rules) <= rules_chars else r.rules[:rules_chars] + "\n…"
        out += ["", "## Project rules (AGENTS.md)", rules]
        if len(r.rules) > rules_chars:
            out.append(f"(cut; read {r.rules_path} for the rest)")
    return "\n".join(out) + "\n"


def _fit(r: PrimeResult, repo: str, now: int) -> str:
    """The longest document within the budget: shrink the rules, then the longest list."""
    caps = dict(_CAPS)
    rules_chars = _RULES_CHARS
    budget = max(r.max_tokens, _MIN_TOKENS)
    while True:
        text = _render(r, repo, caps, rules_chars, now)
        if estimate_tokens(text) <= budget:
            return text
        if rules_chars > 0:
            rules_chars = rules_chars // 2 if rules_chars > 150 else 0
            continue
        name = max(caps, key=lambda k: caps[k])
        if caps[name] == 0:
            return text[: budget * 4]  # only the fixed parts are left; cut them
        caps[name] -= 1


def prime(ctx: OpContext, args: PrimeArgs) -> PrimeResult:
    """Build the session-start document for the acting actor; record this prime.

    Raises:
        InvalidArgs: max_tokens below the smallest useful document.
    """
    if args.max_tokens < _MIN_TOKENS:
        raise InvalidArgs(f"--max-tokens must be at least {_MIN_TOKENS}")
    cfg, actor_dir, _source = resolve_actor(ctx)
    me = cfg.actor_id
    head = ctx.handle.refresh()
    summaries = ctx.handle.summaries()
    ready = issue_ready(ctx, IssueReadyArgs()).issues
    claims, locks = _claims(ctx, summaries, me, ctx.now_ms, cfg.label)
    mark = load_prime_mark(actor_dir)
    rid = ctx.request_id.hex()
    if mark is not None and mark.request_id == rid:  # a retry: answer as the first try did
        mark = (
            PrimeMark(wal_head=mark.prev_wal_head, ts_ms=mark.prev_ts_ms)
            if mark.prev_ts_ms is not None
            else None
        )
    changed: list[PrimeIssue] = []
    if mark is not None:
        ids = _changed_ids(ctx, mark, head)
        picked = [
            s
            for s in summaries
            if (s.issue_id in ids if ids is not None else s.updated_ts > mark.ts_ms)
        ]
        picked.sort(key=lambda s: (-s.updated_ts, s.issue_id))
        changed = [_issue(s) for s in picked]
    agents_md = read_agents_md(ctx.paths.repo_root)
    rules = project_rules(agents_md[1]) if agents_md else ""
    ready_issues = [
        PrimeIssue(
            issue_id=x.issue_id,
            title=x.title,
            state=x.state,
            labels=x.labels,
            updated_ts=x.updated_ts,
        )
        for x in ready
    ]
    draft = PrimeResult(
        actor=me,
        handle=handle(me, cfg.label),
        wal_head=head,
        ready=ready_issues[: _CAPS["ready"]],
        ready_total=len(ready_issues),
        claimed=claims[: _CAPS["claimed"]],
        claimed_total=len(claims),
        locks=locks[: _CAPS["locks"]],
        locks_total=len(locks),
        changed=changed[: _CAPS["changed"]],
        changed_total=len(changed),
        since_wal_head=mark.wal_head if mark else None,
        since_ms=mark.ts_ms if mark else None,
        rules=rules,
        rules_path=agents_md[0] if agents_md and rules else None,
        markdown="",
        token_estimate=0,
        max_tokens=args.max_tokens,
        format=args.format,
    )
    text = _fit(draft, os.path.basename(ctx.paths.repo_root), ctx.now_ms)
    if args.record:
        save_prime_mark(
            actor_dir,
            PrimeMark(
                wal_head=head,
                ts_ms=ctx.now_ms,
                request_id=rid,
                prev_wal_head=mark.wal_head if mark else None,
                prev_ts_ms=mark.ts_ms if mark else None,
            ),
        )
    return msgspec.structs.replace(draft, markdown=text, token_estimate=estimate_tokens(text))
