"""`grite watch` lines: lock resources and owners come from refs other clones push."""

from __future__ import annotations

from grite.cli.watch import format_line
from grite.model.notifications import LockChanged


def test_a_hostile_lock_notification_is_printed_escaped() -> None:
    note = LockChanged(resource="repo:\x1b]52;c;x\x07", owner="\u202eevil\rX", expires_ms=1)
    line = format_line(note)
    assert "\x1b" not in line and "\x07" not in line and "\r" not in line
    assert "\u202e" not in line
    assert line == "lock repo:\\x1b]52;c;x\\x07 held by \\u202eevil\\rX until 1"
