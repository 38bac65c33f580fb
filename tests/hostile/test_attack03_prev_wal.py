"""Attack 3: meta.json's `prev_wal` was trusted. For a parentless commit the reader followed it:
`"..//dev/zero"` became an absolute path and the reader ran out of memory, and a parentless
remote commit whose `prev_wal` named the local head became the new refs/grite/wal, after which
`git gc --prune=now` deleted every local issue.

Now the chain is followed through git parents only; `prev_wal` must equal the first parent (or
be null with none), checked on every read and before a sync moves anything.
"""

from __future__ import annotations

import hashlib
import os
import zlib
from pathlib import Path

from grite.model.events import IssueCreated
from grite.model.hashing import make_event
from tests.conftest import git, wal_head
from tests.hostile.conftest import Victim
from tests.wal_forge import forge_commit, set_ref


def _hijack_event() -> list:  # type: ignore[type-arg]
    return [
        make_event(
            issue_id=os.urandom(16),
            actor=os.urandom(16),
            ts_unix_ms=1_700_000_000_000,
            kind=IssueCreated(title="hijacked", body="", labels=[]),
        )
    ]


def test_a_parentless_remote_commit_naming_our_head_cannot_replace_our_history(
    victim: Victim,
) -> None:
    v = victim
    head, titles = wal_head(v.repo), v.titles()
    bad = v.forge_on_remote(events=_hijack_event(), parents=[], meta_changes={"prev_wal": head})

    error = v.refused("sync")
    assert f"WAL commit {bad} is invalid" in error["message"] and "prev_wal" in error["message"]
    assert error["details"]["remote"] == "origin" and error["details"]["field"] == "prev_wal"
    assert wal_head(v.repo) == head
    # Nothing of ours hangs on a meta.json any more: git's own gc keeps every issue.
    git(v.repo, "gc", "-q", "--prune=now")
    v.assert_unharmed(head, titles)


def test_prev_wal_is_never_followed_as_a_path(victim: Victim) -> None:
    v = victim
    head, titles = wal_head(v.repo), v.titles()
    for prev in ("..//dev/zero", "../../../../etc/passwd", "/dev/zero"):
        # Arriving from the remote: refused.
        bad = v.forge_on_remote(events=_hijack_event(), meta_changes={"prev_wal": prev})
        assert v.refused("sync")["details"]["commit"] == bad
        set_ref(v.remote, head or "")
    # Already stored (a parentless commit, where the old reader followed prev_wal): skipped,
    # read in constant memory, named in a warning.
    bad = forge_commit(v.repo, events=_hijack_event(), meta_changes={"prev_wal": "..//dev/zero"})
    set_ref(v.repo, bad)
    proc = v.run("issue", "list", "--json")
    assert proc.returncode == 0 and f"WAL commit {bad} is invalid" in proc.stderr
    assert "hijacked" not in proc.stdout
    root = forge_commit(
        v.repo, events=_hijack_event(), parents=[], meta_changes={"prev_wal": "..//dev/zero"}
    )
    set_ref(v.repo, root)
    proc = v.run("issue", "list", "--json")
    assert proc.returncode == 0 and f"WAL commit {root} is invalid" in proc.stderr
    set_ref(v.repo, bad)
    v.assert_unharmed(bad, titles)


def _raw_commit(repo: Path, tree_from: str, parent: bytes) -> str:
    """A commit object written byte by byte, with whatever parent line it is given."""
    tree = git(repo, "rev-parse", f"{tree_from}^{{tree}}").stdout.strip()
    body = (
        b"tree " + tree.encode() + b"\nparent " + parent + b"\n"
        b"author m <m@x> 1700000000 +0000\ncommitter m <m@x> 1700000000 +0000\n\nWAL\n"
    )
    obj = b"commit %d\x00" % len(body) + body
    oid = hashlib.sha1(obj).hexdigest()
    path = repo / "objects" if (repo / "objects").is_dir() else repo / ".git" / "objects"
    (path / oid[:2]).mkdir(exist_ok=True)
    (path / oid[:2] / oid[2:]).write_bytes(zlib.compress(obj))
    return oid


def test_a_parent_line_is_never_followed_as_a_path(victim: Victim) -> None:
    v = victim
    head, titles = wal_head(v.repo), v.titles()
    assert head is not None
    bad = _raw_commit(v.remote, head, b"../../../../../../dev/zero")
    set_ref(v.remote, bad)
    error = v.refused("sync")
    assert bad in error["message"] or "cannot read" in error["message"], error
    assert wal_head(v.repo) == head
    stored = _raw_commit(v.repo, head, b"/dev/zero")
    set_ref(v.repo, stored)
    proc = v.run("issue", "list", "--json")
    assert proc.returncode == 0 and "malformed parent line" in proc.stderr
    set_ref(v.repo, head)
    # The object was planted by the test, not by grite: remove it so git fsck judges grite.
    (v.repo / ".git" / "objects" / stored[:2] / stored[2:]).unlink()
    v.assert_unharmed(head, titles)
