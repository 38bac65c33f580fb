"""Command area: lock (`grite lock acquire|renew|release|status|gc`).

An area module provides `register(top, issue, parents)`, which adds its argh commands to the
top-level and `issue` subparsers; and `RENDERERS`, mapping result Structs to human text.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

import argh

from grite.cli.commands import group, leaves
from grite.cli.render import Renderer
from grite.model.display import printable
from grite.model.requests_locks import (
    LockAcquireArgs,
    LockGcArgs,
    LockGcResult,
    LockReleaseArgs,
    LockReleaseResult,
    LockRenewArgs,
    LockResult,
    LockStatusArgs,
    LockStatusResult,
)

__all__ = ["RENDERERS", "register"]

_RESOURCE_HELP = "what to lock: repo:NAME, path:PATH or issue:ID"
_TTL_HELP = "lease length: seconds (300) or 30s, 15m, 2h, 1d (default 300s)"
_LOCAL_HELP = (
    "this clone's leases only, without asking the grite remote "
    "(other clones learn of them at 'grite sync')"
)


@argh.named("acquire")
@argh.arg("resource", help=_RESOURCE_HELP)
@argh.arg("--ttl", help=_TTL_HELP)
@argh.arg("--local", help=_LOCAL_HELP)
def lock_acquire(resource: str, *, ttl: str | None = None, local: bool = False) -> LockAcquireArgs:
    """Take a lease lock (refreshes it when you already hold it)."""
    return LockAcquireArgs(resource=resource, ttl=ttl, local=local)


@argh.named("renew")
@argh.arg("resource", help=_RESOURCE_HELP)
@argh.arg("--ttl", help=_TTL_HELP)
@argh.arg("--local", help=_LOCAL_HELP)
def lock_renew(resource: str, *, ttl: str | None = None, local: bool = False) -> LockRenewArgs:
    """Extend a lease lock you hold."""
    return LockRenewArgs(resource=resource, ttl=ttl, local=local)


@argh.named("release")
@argh.arg("resource", help=_RESOURCE_HELP)
@argh.arg("--local", help=_LOCAL_HELP)
def lock_release(resource: str, *, local: bool = False) -> LockReleaseArgs:
    """Release a lease lock you hold (or one that expired)."""
    return LockReleaseArgs(resource=resource, local=local)


@argh.named("status")
def lock_status() -> LockStatusArgs:
    """List the lease locks of this repository."""
    return LockStatusArgs()


@argh.named("gc")
@argh.arg("--local", help=_LOCAL_HELP)
def lock_gc(*, local: bool = False) -> LockGcArgs:
    """Delete expired lease locks (never a live one)."""
    return LockGcArgs(local=local)


def _on(remote: str | None) -> str:
    return f" on {remote}" if remote else ""


def _lock(r: Renderer, x: LockResult) -> str:
    verb = {"acquired": "Acquired", "refreshed": "Refreshed", "renewed": "Renewed"}[x.action]
    until = f"until {r.when(x.expires_unix_ms)} ({x.ttl_seconds}s)"
    return f"{verb} lock on {printable(x.resource)}{_on(x.remote)} {until}\n"


def _release(_r: Renderer, x: LockReleaseResult) -> str:
    if x.released:
        return f"Released lock on {printable(x.resource)}{_on(x.remote)}\n"
    return f"No lock on {printable(x.resource)}{_on(x.remote)}\n"


def _status(r: Renderer, x: LockStatusResult) -> str:
    if not x.locks:
        return f"No locks (policy: {x.policy})\n"
    lines = []
    for lk in x.locks:
        state = "expired" if lk.expired else f"{lk.time_remaining_seconds}s left"
        # Resources and owners come from lock refs, which other clones push.
        who = "you" if lk.mine else printable(lk.owner[:8])
        lines.append(
            f"{printable(lk.resource)}  {who}  until {r.when(lk.expires_unix_ms)}  ({state})"
        )
    return "\n".join(lines) + f"\n{x.total} lock(s) (policy: {printable(x.policy)})\n"


def _gc(_r: Renderer, x: LockGcResult) -> str:
    return f"Removed {x.removed} expired lock(s){_on(x.remote)}, kept {x.kept}\n"


RENDERERS: dict[type, Callable[[Any, Any], str]] = {
    LockResult: _lock,
    LockReleaseResult: _release,
    LockStatusResult: _status,
    LockGcResult: _gc,
}


def register(
    top: argparse._SubParsersAction,  # type: ignore[type-arg]
    issue: argparse._SubParsersAction,  # type: ignore[type-arg]
    parents: list[argparse.ArgumentParser],
) -> None:
    """Add `grite lock ...`."""
    leaves(
        group(top, "lock", "lease locks on repo:, path: and issue: resources", parents),
        [lock_acquire, lock_renew, lock_release, lock_status, lock_gc],
        parents,
    )
