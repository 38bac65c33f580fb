"""How people are shown: an actor's label (`Alice Smith <alice@example.com>`, by default git's
user.name and user.email when the actor was created) and its handle, the short name that
`issue ready --claim` assigns and human output prints (`alice-smith-21d88d95`).

The handle ends with the actor id's first 8 hex digits, so two actors of one person (two
agents on one machine share git's identity) never share a handle. JSON output keeps full ids.

Pure: no I/O, imports nothing of grite.
"""

from __future__ import annotations

import re

__all__ = ["display_name", "handle"]

_NOT_SLUG = re.compile(r"[^a-z0-9]+")


def handle(actor_hex: str, label: str | None) -> str:
    """`alice-smith-21d88d95` for label `Alice Smith <a@x.org>`; the 8 hex digits alone when
    the label has no letters or digits to use."""
    short = actor_hex[:8]
    name = (label or "").split("<", 1)[0].strip() or (label or "").strip(" <>").split("@")[0]
    slug = _NOT_SLUG.sub("-", name.casefold()).strip("-")[:24].strip("-")
    return f"{slug}-{short}" if slug else short


def display_name(actor_hex: str, label: str | None) -> str:
    """`Alice Smith (21d88d95)` for a known label (its name part), else the 8 hex digits."""
    name = (label or "").split("<", 1)[0].strip()
    return f"{name} ({actor_hex[:8]})" if name else actor_hex[:8]
