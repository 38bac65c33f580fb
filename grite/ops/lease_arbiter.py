"""Who decides a lease: the repository's grite remote, or (with `--local`, or when there is
no remote at all) this clone.

The grite remote is `[sync] remote` in `.git/grite/config.toml`, else `origin`. When git
config defines it, `issue ready --claim` and `lock acquire|renew|release|gc` take their lease
decisions there (grite.storage.lease_remote), so that agents on different clones exclude each
other. A repository without that remote keeps leases in its own refs, as before: it has no
one to coordinate with (a `[sync] remote` naming a remote git does not know is an error,
not a quiet fallback). A remote that cannot be reached is an error naming `--local`: a lease
taken silently in one clone would let another clone's agent take the same work.

Imports storage and model only; never prints or reads the environment.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from grite.model.errors import Environment, NotFound
from grite.ops.context import OpContext
from grite.storage.lease_refs import LockStore
from grite.storage.lease_remote import LeaseBook, RemoteLockBook, has_remote
from grite.storage.sync import RemoteUnreachable

__all__ = ["DEFAULT_REMOTE", "configured_remote", "lease_remote", "open_leases", "remote_of"]

DEFAULT_REMOTE = "origin"


def configured_remote(ctx: OpContext) -> str | None:
    """`[sync] remote` from the repository config, if set."""
    cfg = ctx.repo_config()
    return cfg.sync.remote if cfg.sync is not None and cfg.sync.remote else None


def lease_remote(ctx: OpContext) -> str | None:
    """The remote that arbitrates leases, or None when the repository has none.

    Raises:
        NotFound: `[sync] remote` names a remote that git config does not define.
    """
    named = configured_remote(ctx)
    remote = named or DEFAULT_REMOTE
    if has_remote(ctx.paths.git_dir, remote):
        return remote
    if named is None:
        return None
    raise NotFound(
        f"[sync] remote = {named!r} in {ctx.paths.grite_dir}/config.toml names a remote git "
        f"does not know; add it with 'git remote add {named} URL', or fix the setting "
        "(pass --local to use this clone's leases only)",
        {"remote": named},
    )


@contextmanager
def open_leases(ctx: OpContext, *, local: bool, doing: str) -> Iterator[LeaseBook]:
    """The lease book for one operation: the remote's, or this clone's.

    Args:
        ctx: the operation's context.
        local: the user asked for this clone's leases only (`--local`).
        doing: what the operation does, for the error message ("claim an issue").

    Raises:
        Environment: the remote cannot be reached (the message names `--local`).
        NotFound: `[sync] remote` names an unknown remote.
    """
    remote = None if local else lease_remote(ctx)
    if remote is None:
        with LockStore(ctx.paths.git_dir) as store:
            yield store
        return
    try:
        with RemoteLockBook(ctx.paths.git_dir, ctx.paths.repo_root, remote) as book:
            yield book
    except RemoteUnreachable as exc:
        raise Environment(
            f"cannot {doing}: {exc.message}. Leases are decided on remote {remote!r} so that "
            "other clones see them: retry when it is reachable, or add --local to use this "
            "clone's leases only (other clones learn of them at 'grite sync')",
            {**exc.details, "local_hint": "--local"},
        ) from exc


def remote_of(book: LeaseBook) -> str | None:
    """The remote that decided, for results (None: this clone)."""
    return book.remote if isinstance(book, RemoteLockBook) else None
