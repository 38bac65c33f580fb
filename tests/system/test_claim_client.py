"""`grite.Client.claim()` and `grite watch` with a grite remote (issue 17): claims that hold
across clones through the daemon and in-process, and leases of other clones announced to a
watcher once a fetch brought them.
"""

from __future__ import annotations

from pathlib import Path

import pytest

import grite
from grite.model.errors import Environment
from grite.model.notifications import LockChanged, Subscribed
from grite.model.requests_sync import SyncArgs, SyncResult
from tests.conftest import git, serve_git_daemon
from tests.system.conftest import DaemonEnv


def clones(tmp_path: Path, url: str, remote: Path) -> tuple[Path, Path]:
    out = []
    for name in ("a", "b"):
        git(tmp_path, "clone", "-q", str(remote), str(tmp_path / name))
        git(tmp_path / name, "remote", "set-url", "origin", url)
        out.append(tmp_path / name)
    return out[0], out[1]


@pytest.mark.parametrize("daemon", [True, False], ids=["daemon", "local"])
def test_client_claims_hold_across_clones(
    daemon_env: DaemonEnv, tmp_path: Path, daemon: bool
) -> None:
    served = tmp_path / "served"
    served.mkdir()
    remote = served / "issues.git"
    git(tmp_path, "init", "-q", "--bare", str(remote))
    env = daemon_env.env
    with serve_git_daemon(served) as port:
        a, b = clones(tmp_path, f"git://127.0.0.1:{port}/issues.git", remote)
        with (
            grite.Client(str(a), daemon=daemon, environ=env) as ga,
            grite.Client(str(b), daemon=daemon, environ=env) as gb,
        ):
            ids = [ga.issue_create(f"t{i}").issue_id for i in range(3)]
            ga.call(SyncArgs(), SyncResult)
            gb.call(SyncArgs(), SyncResult)
            x, y = ga.claim(), gb.claim()
            assert [x.issue.issue_id, y.issue.issue_id] == ids[:2]
            assert x.remote == y.remote == "origin"
            assert x.lease_owner != y.lease_owner
            # A local claim knows the leases of other clones as of the last fetch.
            gb.call(SyncArgs(pull=True), SyncResult)
            z = gb.claim(local=True)
            assert z.issue.issue_id == ids[2] and z.remote is None
            assert ga.via_daemon is daemon and gb.via_daemon is daemon
    # The git daemon is gone: the claim fails, names --local, and takes nothing.
    with grite.Client(str(a), daemon=daemon, environ=env) as ga:
        ga.issue_create("t3")
        with pytest.raises(Environment) as info:
            ga.claim()
        assert "--local" in info.value.message and info.value.exit_code == 5
        assert ga.via_daemon is daemon
    assert bool(daemon_env.daemon_pids()) is daemon


def test_watch_announces_a_lease_taken_by_another_clone_after_a_fetch(
    daemon_env: DaemonEnv, tmp_path: Path
) -> None:
    remote = tmp_path / "remote.git"
    git(tmp_path, "init", "-q", "--bare", str(remote))
    a, b = clones(tmp_path, str(remote), remote)
    env = daemon_env.env
    with grite.Client(str(a), daemon=False, environ=env) as ga:
        issue = ga.issue_create("shared").issue_id
        ga.call(SyncArgs(), SyncResult)
    with grite.Client(str(b), environ=env) as gb:
        gb.call(SyncArgs(), SyncResult)
        stream = gb.watch(timeout=30)
        assert isinstance(next(stream), Subscribed)
        with grite.Client(str(a), daemon=False, environ=env) as ga:
            taken = ga.claim()
        assert taken.issue.issue_id == issue
        gb.call(SyncArgs(pull=True), SyncResult)  # b fetches: the lease reaches its refs
        assert gb.via_daemon
        note = next(n for n in stream if isinstance(n, LockChanged))
        assert note.resource == f"issue:{issue}"
        assert (note.owner, note.expires_ms) == (taken.lease_owner, taken.lease_expires_unix_ms)
        stream.close()
