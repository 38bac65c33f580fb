"""Attack 3: meta.json's `prev_wal` was trusted. For a parentless commit the reader followed it:
`"..//dev/zero"` became an absolute path and the reader ran out of memory, and a parentless
remote commit whose `prev_wal` named the local head became the new refs/grite/wal, after which
`git gc --prune=now` deleted every local issue.

Now the chain is followed through git parents only; `prev_wal` must equal the first parent (or
be null with none), checked on every read and before a sync moves anything.
"""

from __future__ import annotations

import os

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
