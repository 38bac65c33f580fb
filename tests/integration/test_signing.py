"""Ed25519 signing on real repositories: keys from `actor init --generate-key`, signed events
in the WAL that verify with the actor's public key, and `verify_signatures = require` refusing
unsigned events on read (ignored, named in a warning, never a lockout) and unsigned writers
before anything is written."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from grite.model.events import IssueCreated
from grite.model.hashing import make_event
from grite.storage.wal import Wal, append_with_retry
from tests.conftest import Grite, wal_head


def _require(repo: Path) -> None:
    config = repo / ".git" / "grite" / "config.toml"
    text = config.read_text() if config.exists() else ""
    config.write_text(text + 'verify_signatures = "require"\n')


def test_signed_events_round_trip(grite: Grite, git_repo: Path) -> None:
    actor = grite.json(git_repo, "actor", "init", "--generate-key", "--label", "signer")
    assert len(actor["public_key"]) == 64 and actor["key_scheme"] == "ed25519"
    key_file = Path(actor["data_dir"]) / "signing_key"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600 and len(key_file.read_text()) == 64
    who = ("--actor", actor["actor_id"])
    issue = grite.json(git_repo, *who, "issue", "create", "--title", "signed")["issue_id"]
    grite.json(git_repo, *who, "issue", "comment", issue, "--body", "also signed")
    events = [e for entry in Wal(str(git_repo / ".git")).read_entries() for e in entry.events]
    public = Ed25519PublicKey.from_public_bytes(bytes.fromhex(actor["public_key"]))
    assert len(events) == 2
    for event in events:
        assert event.sig is not None and len(event.sig) == 64
        public.verify(event.sig, event.event_id)  # raises when invalid
    _require(git_repo)
    assert grite.json(git_repo, *who, "issue", "show", issue)["title"] == "signed"
    report = grite.json(git_repo, "doctor")
    sig = next(c for c in report["checks"] if c["id"] == "signatures")
    assert sig["status"] == "ok"


def test_require_refuses_unsigned_events(grite: Grite, git_repo: Path) -> None:
    signer = grite.json(git_repo, "actor", "init", "--generate-key")["actor_id"]
    grite.json(git_repo, "--actor", signer, "issue", "create", "--title", "signed")
    _require(git_repo)
    # An unsigned writer is refused before anything reaches the WAL.
    plain = grite.json(git_repo, "actor", "init")["actor_id"]
    before = wal_head(git_repo)
    code, err = grite.error(git_repo, "--actor", plain, "issue", "create", "--title", "x")
    assert code == 2 and "signing key" in err["message"] and wal_head(git_repo) == before
    # An unsigned event that arrives anyway (e.g. fetched) is refused on read.
    actor = os.urandom(16)
    event = make_event(
        issue_id=os.urandom(16),
        actor=actor,
        ts_unix_ms=1000,
        kind=IssueCreated(title="unsigned", body="", labels=[]),
    )
    head, _ = append_with_retry(Wal(str(git_repo / ".git")), actor, [event])
    assert head is not None
    # Ignored, named in a warning; never a lockout: reads and signed writes go on.
    proc = grite.run(git_repo, "--actor", signer, "issue", "list", "--json")
    assert proc.returncode == 0, proc.stderr
    assert head in proc.stderr and "signature missing" in proc.stderr
    assert "unsigned" not in proc.stdout and "signed" in proc.stdout
    grite.json(git_repo, "--actor", signer, "issue", "create", "--title", "after")
    report = grite.json(git_repo, "--actor", signer, "doctor")
    sig = next(c for c in report["checks"] if c["id"] == "signatures")
    assert sig["status"] == "warn" and "signature missing" in sig["message"]
    assert "ignored" in sig["message"]
    view = next(c for c in report["checks"] if c["id"] == "view")
    assert view["status"] == "ok", view
