"""Identifiers: 16-byte actor and issue ids, 32-byte event ids, all shown as lowercase hex.

Pure: random bytes come in as arguments (see `new_id`'s caller), nothing here touches I/O.
"""

from __future__ import annotations

import re

from grite.model.errors import InvalidArgs

__all__ = [
    "ACTOR_ID_LEN",
    "EVENT_ID_LEN",
    "ISSUE_ID_LEN",
    "MIN_PREFIX_LEN",
    "check_prefix",
    "id_from_hex",
    "id_to_hex",
    "is_hex",
]

ACTOR_ID_LEN = 16
ISSUE_ID_LEN = 16
EVENT_ID_LEN = 32
MIN_PREFIX_LEN = 4

_HEX = re.compile(r"[0-9a-fA-F]*")


def is_hex(text: str) -> bool:
    return _HEX.fullmatch(text) is not None


def id_to_hex(raw: bytes) -> str:
    return raw.hex()


def id_from_hex(text: str, length: int, what: str = "id") -> bytes:
    """Parse a full hex id of `length` bytes.

    Raises:
        InvalidArgs: the text is not exactly 2*length hex characters.
    """
    if len(text) != 2 * length or not is_hex(text):
        raise InvalidArgs(
            f"invalid {what} {text!r}: expected {2 * length} hex characters",
            {"value": text},
        )
    return bytes.fromhex(text)


def check_prefix(prefix: str, what: str = "issue id") -> str:
    """Validate an id prefix as typed by a user and return it lowercased.

    Raises:
        InvalidArgs: non-hex characters or fewer than MIN_PREFIX_LEN of them.
    """
    if not is_hex(prefix) or not prefix:
        raise InvalidArgs(
            f"invalid {what} {prefix!r}: use hex characters (0-9, a-f); "
            "run 'grite issue list' to see ids",
            {"value": prefix},
        )
    if len(prefix) < MIN_PREFIX_LEN:
        raise InvalidArgs(
            f"{what} prefix {prefix!r} is too short: give at least {MIN_PREFIX_LEN} hex characters",
            {"value": prefix},
        )
    return prefix.lower()
