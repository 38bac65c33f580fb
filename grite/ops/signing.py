"""Signing of the events an actor writes, and the write-side of `verify_signatures`.

`event_signer(ctx)` returns the function write_events passes each new event through: it adds
the Ed25519 signature when the acting actor has a key, and refuses up front (nothing written)
when the repository requires signatures and the actor has none.
"""

from __future__ import annotations

from collections.abc import Callable

import msgspec

from grite.model.errors import InvalidArgs
from grite.model.events import Event
from grite.ops.actors import resolve_actor
from grite.ops.context import OpContext
from grite.storage.config import effective_verify_policy
from grite.storage.signing import load_signing_seed, sign_event_id

__all__ = ["event_signer"]


def _unchanged(event: Event) -> Event:
    return event


def event_signer(ctx: OpContext) -> Callable[[Event], Event]:
    """The signer for events written by the acting actor.

    Raises:
        InvalidArgs: verify_signatures = require and the actor has no signing key.
    """
    cfg, directory, _source = resolve_actor(ctx)
    seed = load_signing_seed(directory)
    policy, problem = effective_verify_policy(ctx.repo_config())
    if problem is not None:
        ctx.warn_once(problem)
    if seed is None:
        if policy == "require":
            raise InvalidArgs(
                f"this repository requires signed events (verify_signatures = require) and "
                f"actor {cfg.actor_id} has no signing key; create a signing actor with "
                "'grite actor init --generate-key' and act as it (--actor ID or "
                "'grite actor use ID'); nothing was written",
                {"actor_id": cfg.actor_id},
            )
        return _unchanged

    def sign(event: Event) -> Event:
        return msgspec.structs.replace(event, sig=sign_event_id(seed, event.event_id))

    return sign
