"""Attack 5: under `verify_signatures = "require"` one unsigned event from a remote moved
refs/grite/wal onto itself; then every read and write failed, and the only suggested fix was to
turn verification off.

Now unsigned (or badly signed) remote events are refused when `grite sync` pulls them, so the
ref never moves; one that is already stored is ignored with a warning, never a lockout.
"""

from __future__ import annotations

import os

from grite.model.events import IssueCreated
from grite.model.hashing import make_event
from tests.conftest import wal_head
from tests.hostile.conftest import Victim
from tests.wal_forge import set_ref


def _require(v: Victim) -> str:
    signer = v.ok("actor", "init", "--generate-key")["actor_id"]
    config = v.repo / ".git" / "grite" / "config.toml"
    text = config.read_text() if config.exists() else ""
    config.write_text(text + 'verify_signatures = "require"\n')
    return signer


def test_unsigned_remote_events_are_refused_at_the_gate(victim: Victim) -> None:
    v = victim
    signer = _require(v)
    head = wal_head(v.repo)
    titles = v.titles()
    unsigned = make_event(
        issue_id=os.urandom(16),
        actor=os.urandom(16),
        ts_unix_ms=1_700_000_000_000,
        kind=IssueCreated(title="unsigned", body="", labels=[]),
    )
    bad = v.forge_on_remote(events=[unsigned])
    error = v.refused("sync")
    assert bad in error["message"] and "signature missing" in error["message"]
    assert error["details"]["remote"] == "origin" and error["details"]["commit"] == bad
    assert wal_head(v.repo) == head
    # Not a lockout: the signer reads and writes as before.
    assert v.titles() == titles
    v.ok("--actor", signer, "issue", "create", "--title", "signed")
    v.ok("--actor", signer, "issue", "show", v.issues[0])
    assert "unsigned" not in v.titles()
    # Forged signature bytes (the right length, wrong key) are refused the same way.
    set_ref(v.remote, str(head))
    forged = v.forge_on_remote(
        events=[
            make_event(
                issue_id=os.urandom(16),
                actor=bytes.fromhex(signer),
                ts_unix_ms=1_700_000_000_000,
                kind=IssueCreated(title="forged", body="", labels=[]),
                sig=b"\x01" * 64,
            )
        ]
    )
    error = v.refused("sync", "--pull")
    assert forged in error["message"] and "invalid signature" in error["message"]
