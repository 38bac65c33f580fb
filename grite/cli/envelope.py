"""The JSON envelope every `--json` output and every `grite batch` line is wrapped in.

    {"schema_version": 1, "ok": true, "data": ...}
    {"schema_version": 1, "ok": false, "error": {"code": ..., "message": ..., "details": {...}}}

One builder for every command (the CLI's renderer, `grite batch`, `grite watch --json`,
`grite daemon install|uninstall|status --json`), so the shape cannot drift between them.
"""

from __future__ import annotations

from typing import Any

import msgspec

from grite.model.errors import GriteError

__all__ = ["JSON_SCHEMA_VERSION", "encode", "failure", "success"]

JSON_SCHEMA_VERSION = 1

_encoder = msgspec.json.Encoder()


def success(data: Any) -> dict[str, Any]:
    """The envelope of a result (any value msgspec encodes: Structs, dicts, lists)."""
    return {"schema_version": JSON_SCHEMA_VERSION, "ok": True, "data": data}


def failure(err: GriteError) -> dict[str, Any]:
    """The envelope of an error: its stable code, its message and its details."""
    return {
        "schema_version": JSON_SCHEMA_VERSION,
        "ok": False,
        "error": {"code": err.code, "message": err.message, "details": err.details},
    }


def encode(envelope: dict[str, Any], *, pretty: bool = False) -> str:
    """One envelope as text ending in a newline: one line, or indented for a terminal."""
    raw = _encoder.encode(envelope)
    if pretty:
        raw = msgspec.json.format(raw, indent=2)
    return raw.decode("utf-8") + "\n"
