"""The argh command tree. Each command function only turns parsed arguments into an args
Struct (or a LocalCommand for the daemon-control commands); it never does the work itself.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

import argh

from grite.model.requests import (
    ActorCurrentArgs,
    ActorInitArgs,
    ActorListArgs,
    ActorShowArgs,
    ActorUseArgs,
    InitArgs,
    IssueAssigneeArgs,
    IssueAttachArgs,
    IssueCloseArgs,
    IssueCommentArgs,
    IssueCreateArgs,
    IssueDepArgs,
    IssueDepListArgs,
    IssueDepTopoArgs,
    IssueLabelArgs,
    IssueLinkArgs,
    IssueListArgs,
    IssueReopenArgs,
    IssueShowArgs,
    IssueUpdateArgs,
)

__all__ = ["LocalCommand", "build_tree", "group", "leaves"]

_STATES = ("open", "closed", "all")
_LOCK_HELP = "hold the lock issue:<ID> while writing (fails if another actor holds it)"


class LocalCommand:
    """A command that runs in the client process and renders itself (daemon control, setup).

    `run`, when given, is called as `run(invocation, parser, **kwargs, json=, quiet=)` and
    returns (exit status, stdout, stderr); without it the daemon-control modules run it.
    """

    def __init__(
        self, name: str, kwargs: dict[str, Any], run: Callable[..., Any] | None = None
    ) -> None:
        self.name = name
        self.kwargs = kwargs
        self.run = run


# -- top level ------------------------------------------------------------------------------


@argh.arg("--no-agents-md", help="do not create or update AGENTS.md")
def init(*, no_agents_md: bool = False) -> InitArgs:
    """Set up grite in this repository: an actor, the repo config and AGENTS.md."""
    return InitArgs(no_agents_md=no_agents_md)


# -- actor ----------------------------------------------------------------------------------


@argh.named("init")
@argh.arg("--label", help="a human-readable name for the actor")
@argh.arg("--generate-key", help="create an Ed25519 key; this actor's events are signed")
def actor_init(*, label: str | None = None, generate_key: bool = False) -> ActorInitArgs:
    """Create a new actor identity in this repository."""
    return ActorInitArgs(label=label, generate_key=generate_key)


@argh.named("list")
def actor_list() -> ActorListArgs:
    """List the actors of this repository."""
    return ActorListArgs()


@argh.named("show")
@argh.arg("actor_id", nargs="?", default=None, help="actor id (default: the current actor)")
def actor_show(actor_id: str | None) -> ActorShowArgs:
    """Show one actor."""
    return ActorShowArgs(actor_id=actor_id)


@argh.named("current")
def actor_current() -> ActorCurrentArgs:
    """Show the actor this command runs as, and why."""
    return ActorCurrentArgs()


@argh.named("use")
def actor_use(actor_id: str) -> ActorUseArgs:
    """Make ACTOR_ID the repository's default actor."""
    return ActorUseArgs(actor_id=actor_id)


# -- issue ----------------------------------------------------------------------------------


@argh.named("create")
@argh.arg("--title", required=True, help="issue title")
@argh.arg("--body", help="issue body; '-' reads it from standard input")
@argh.arg("--label", action="append", help="a label (repeatable; commas separate labels)")
def issue_create(*, title: str, body: str = "", label: list[str] | None = None) -> IssueCreateArgs:
    """Create an issue."""
    return IssueCreateArgs(title=title, body=body, labels=label or [])


@argh.named("update")
@argh.arg("--title", help="new title")
@argh.arg("--body", help="new body; '-' reads it from standard input")
@argh.arg("--lock", help=_LOCK_HELP)
def issue_update(
    issue: str, *, title: str | None = None, body: str | None = None, lock: bool = False
) -> IssueUpdateArgs:
    """Change an issue's title and/or body."""
    return IssueUpdateArgs(issue=issue, title=title, body=body, lock=lock)


@argh.named("list")
@argh.arg("--state", choices=_STATES, help="which issues (default: open)")
@argh.arg(
    "--label", action="append", help="only issues with this label, in any case (repeatable: all)"
)
@argh.arg("--assignee", help="only issues assigned to this user")
@argh.arg("--search", help="case-insensitive text in title or body")
@argh.arg(
    "--sort",
    choices=("created", "updated", "title"),
    help="order: newest created, last updated, or title A-Z (default: created)",
)
@argh.arg("--reverse", "-r", help="the other way round (created: oldest first)")
@argh.arg("--limit", type=int, help="show at most N issues")
def issue_list(
    *,
    state: str = "open",
    label: list[str] | None = None,
    assignee: str | None = None,
    search: str | None = None,
    sort: str = "created",
    reverse: bool = False,
    limit: int | None = None,
) -> IssueListArgs:
    """List issues, newest first."""
    return IssueListArgs(
        state=state,  # type: ignore[arg-type]
        labels=label or [],
        assignee=assignee,
        search=search,
        sort=sort,  # type: ignore[arg-type]
        limit=limit,
        # The args' "created" order is oldest first (grite 0.5.3's); people want the newest.
        reverse=(sort == "created") != reverse,
    )


@argh.named("show")
def issue_show(issue: str) -> IssueShowArgs:
    """Show one issue with its comments, links and dependencies."""
    return IssueShowArgs(issue=issue)


@argh.named("comment")
@argh.arg("--body", required=True, help="comment text; '-' reads it from standard input")
@argh.arg("--lock", help=_LOCK_HELP)
def issue_comment(issue: str, *, body: str, lock: bool = False) -> IssueCommentArgs:
    """Add a comment to an issue."""
    return IssueCommentArgs(issue=issue, body=body, lock=lock)


@argh.named("close")
@argh.arg("--comment", help="also add this comment (one commit); '-' reads it from stdin")
@argh.arg("--lock", help=_LOCK_HELP)
def issue_close(issue: str, *, comment: str | None = None, lock: bool = False) -> IssueCloseArgs:
    """Close an issue (nothing is written when it is closed already)."""
    return IssueCloseArgs(issue=issue, comment=comment, lock=lock)


@argh.named("reopen")
@argh.arg("--comment", help="also add this comment (one commit); '-' reads it from stdin")
@argh.arg("--lock", help=_LOCK_HELP)
def issue_reopen(issue: str, *, comment: str | None = None, lock: bool = False) -> IssueReopenArgs:
    """Reopen a closed issue (nothing is written when it is open already)."""
    return IssueReopenArgs(issue=issue, comment=comment, lock=lock)


@argh.named("add")
@argh.arg(
    "--label",
    action="append",
    required=True,
    help="label to add (repeatable; commas separate labels)",
)
@argh.arg("--lock", help=_LOCK_HELP)
def label_add(issue: str, *, label: list[str], lock: bool = False) -> IssueLabelArgs:
    """Add labels to an issue."""
    return IssueLabelArgs(issue=issue, add=label, lock=lock)


@argh.named("remove")
@argh.arg("--label", action="append", required=True, help="label to remove (repeatable)")
@argh.arg("--lock", help=_LOCK_HELP)
def label_remove(issue: str, *, label: list[str], lock: bool = False) -> IssueLabelArgs:
    """Remove labels from an issue."""
    return IssueLabelArgs(issue=issue, remove=label, lock=lock)


@argh.named("add")
@argh.arg("--user", action="append", required=True, help="user to assign (repeatable)")
@argh.arg("--lock", help=_LOCK_HELP)
def assignee_add(issue: str, *, user: list[str], lock: bool = False) -> IssueAssigneeArgs:
    """Assign users to an issue."""
    return IssueAssigneeArgs(issue=issue, add=user, lock=lock)


@argh.named("remove")
@argh.arg("--user", action="append", required=True, help="user to unassign (repeatable)")
@argh.arg("--lock", help=_LOCK_HELP)
def assignee_remove(issue: str, *, user: list[str], lock: bool = False) -> IssueAssigneeArgs:
    """Unassign users from an issue."""
    return IssueAssigneeArgs(issue=issue, remove=user, lock=lock)


@argh.named("add")
@argh.arg("--url", required=True, help="the URL")
@argh.arg("--note", help="a note about the link")
@argh.arg("--lock", help=_LOCK_HELP)
def link_add(issue: str, *, url: str, note: str | None = None, lock: bool = False) -> IssueLinkArgs:
    """Attach a URL to an issue."""
    return IssueLinkArgs(issue=issue, url=url, note=note, lock=lock)


@argh.named("add")
@argh.arg("--name", required=True, help="file name")
@argh.arg("--sha256", required=True, help="SHA-256 of the content (64 hex)")
@argh.arg("--mime", required=True, help="media type, e.g. text/plain")
@argh.arg("--lock", help=_LOCK_HELP)
def attachment_add(
    issue: str, *, name: str, sha256: str, mime: str, lock: bool = False
) -> IssueAttachArgs:
    """Record an attachment (by content hash) on an issue."""
    return IssueAttachArgs(issue=issue, name=name, sha256=sha256, mime=mime, lock=lock)


_DEP_HELP = "blocks, depends_on (default) or related_to"


@argh.named("add")
@argh.arg("--target", required=True, help="the other issue")
@argh.arg("--type", dest="dep_type", help=_DEP_HELP)
@argh.arg("--lock", help=_LOCK_HELP)
def dep_add(
    issue: str, *, target: str, dep_type: str = "depends_on", lock: bool = False
) -> IssueDepArgs:
    """Add a dependency: ISSUE <type> TARGET."""
    return IssueDepArgs(issue=issue, target=target, dep_type=dep_type, lock=lock)


@argh.named("remove")
@argh.arg("--target", required=True, help="the other issue")
@argh.arg("--type", dest="dep_type", help=_DEP_HELP)
@argh.arg("--lock", help=_LOCK_HELP)
def dep_remove(
    issue: str, *, target: str, dep_type: str = "depends_on", lock: bool = False
) -> IssueDepArgs:
    """Remove a dependency."""
    return IssueDepArgs(issue=issue, target=target, dep_type=dep_type, remove=True, lock=lock)


@argh.named("list")
@argh.arg("--reverse", help="list the issues that depend on ISSUE instead")
def dep_list(issue: str, *, reverse: bool = False) -> IssueDepListArgs:
    """List an issue's dependencies (or dependents)."""
    return IssueDepListArgs(issue=issue, reverse=reverse)


@argh.named("topo")
@argh.arg("--state", choices=_STATES, help="which issues (default: open)")
@argh.arg("--label", action="append", help="only issues with this label (repeatable)")
def dep_topo(*, state: str = "open", label: list[str] | None = None) -> IssueDepTopoArgs:
    """Issues in dependency order: what must be done first comes first."""
    return IssueDepTopoArgs(state=state, labels=label or [])  # type: ignore[arg-type]


# -- daemon ---------------------------------------------------------------------------------


@argh.named("start")
@argh.arg("--idle-timeout", type=int, help="exit after N idle seconds (0: never)")
@argh.arg("--foreground", help="run in this terminal instead of the background")
def daemon_start(*, idle_timeout: int | None = None, foreground: bool = False) -> LocalCommand:
    """Start the daemon (normally it starts by itself)."""
    return LocalCommand("start", {"idle_timeout": idle_timeout, "foreground": foreground})


@argh.named("status")
def daemon_status() -> LocalCommand:
    """Ask the daemon how it is doing."""
    return LocalCommand("status", {})


@argh.named("stop")
def daemon_stop() -> LocalCommand:
    """Ask the daemon to finish its work and exit."""
    return LocalCommand("stop", {})


@argh.named("restart")
@argh.arg("--idle-timeout", type=int, help="exit after N idle seconds (0: never)")
def daemon_restart(*, idle_timeout: int | None = None) -> LocalCommand:
    """Stop, then start the daemon."""
    return LocalCommand("restart", {"idle_timeout": idle_timeout})


@argh.named("install")
@argh.arg("--dry-run", help="print what would be written and run")
def daemon_install(*, dry_run: bool = False) -> LocalCommand:
    """Install the socket-activated user service (systemd or launchd)."""
    return LocalCommand("install", {"dry_run": dry_run})


@argh.named("uninstall")
@argh.arg("--dry-run", help="print what would be removed and run")
def daemon_uninstall(*, dry_run: bool = False) -> LocalCommand:
    """Remove the user service installed by 'grite daemon install'."""
    return LocalCommand("uninstall", {"dry_run": dry_run})


def group(
    sub: argparse._SubParsersAction,  # type: ignore[type-arg]
    name: str,
    help_text: str,
    parents: list[argparse.ArgumentParser],
) -> argparse._SubParsersAction:  # type: ignore[type-arg]
    parser = sub.add_parser(name, help=help_text, description=help_text, parents=parents)
    return parser.add_subparsers(title="commands", metavar="COMMAND", required=True)


def leaves(
    sub: argparse._SubParsersAction,  # type: ignore[type-arg]
    funcs: list[Callable[..., Any]],
    parents: list[argparse.ArgumentParser],
) -> None:
    for func in funcs:
        name = getattr(func, "argh_name", None) or func.__name__.replace("_", "-")
        doc = (func.__doc__ or "").strip()
        parser = sub.add_parser(name, help=doc, description=doc, parents=parents)
        argh.set_default_command(parser, func)


def build_tree(
    root: argparse.ArgumentParser, parents: list[argparse.ArgumentParser]
) -> tuple[argparse._SubParsersAction, argparse._SubParsersAction]:  # type: ignore[type-arg]
    """Attach the core commands to `root`; `parents` carry the global flags to each leaf.

    Returns:
        The top-level and `issue` subparsers, where command areas add theirs.
    """
    top = root.add_subparsers(title="commands", metavar="COMMAND", required=True)
    leaves(top, [init], parents)
    leaves(
        group(top, "actor", "manage actor identities", parents),
        [actor_init, actor_list, actor_show, actor_current, actor_use],
        parents,
    )
    issue = group(top, "issue", "create, query and change issues", parents)
    leaves(
        issue,
        [
            issue_create,
            issue_update,
            issue_list,
            issue_show,
            issue_comment,
            issue_close,
            issue_reopen,
        ],
        parents,
    )
    leaves(
        group(issue, "label", "add or remove labels", parents), [label_add, label_remove], parents
    )
    leaves(
        group(issue, "assignee", "add or remove assignees", parents),
        [assignee_add, assignee_remove],
        parents,
    )
    leaves(group(issue, "link", "attach URLs", parents), [link_add], parents)
    leaves(group(issue, "attachment", "record attachments", parents), [attachment_add], parents)
    leaves(
        group(issue, "dep", "dependencies between issues", parents),
        [dep_add, dep_remove, dep_list, dep_topo],
        parents,
    )
    leaves(
        group(top, "daemon", "control the background daemon", parents),
        [
            daemon_start,
            daemon_status,
            daemon_stop,
            daemon_restart,
            daemon_install,
            daemon_uninstall,
        ],
        parents,
    )
    return top, issue
