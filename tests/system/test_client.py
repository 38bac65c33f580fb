"""`grite.Client`: typed round trips through a real daemon and in-process, same results."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

import grite
from grite.ipc.transport import DaemonRequired
from grite.model.errors import NotFound
from grite.model.notifications import IssueChanged, Subscribed, WalAdvanced
from grite.model.requests import IssueView, IssueWriteResult
from grite.model.requests_agents import IssueClaimResult
from tests.conftest import make_repo
from tests.system.conftest import DaemonEnv


def _strict(denv: DaemonEnv) -> dict[str, str]:
    """The environment of a daemon-path test: any fallback is an error naming its cause."""
    return dict(denv.env, GRITE_DAEMON="require")


@pytest.mark.parametrize("daemon", [True, False], ids=["daemon", "local"])
def test_client_round_trip(daemon_env: DaemonEnv, tmp_path: Path, daemon: bool) -> None:
    repo = make_repo(tmp_path / "repo")
    with grite.Client(str(repo), daemon=daemon, environ=_strict(daemon_env)) as g:
        assert g.via_daemon is daemon
        a = g.issue_create("first", body="b", labels=["x"])
        b = g.issue_create("second")
        assert isinstance(a, IssueWriteResult)
        g.dep_add(b.issue_id, a.issue_id)
        assert [r.issue_id for r in g.issue_ready().issues] == [a.issue_id]
        claimed = g.claim()
        assert isinstance(claimed, IssueClaimResult) and claimed.issue.issue_id == a.issue_id
        g.issue_comment(a.issue_id, "done")
        g.issue_close(a.issue_id)
        view = g.issue_show(a.issue_id[:8])
        assert isinstance(view, IssueView)
        assert view.state == "closed" and [c.body for c in view.comments] == ["done"]
        assert view.assignees == [claimed.assignee]
        assert g.issue_list(state="all").total == 2
        with pytest.raises(NotFound) as info:
            g.issue_show("abcdef")
        assert info.value.code == "not_found" and info.value.exit_code == 3
        assert g.via_daemon is daemon
        assert g.served_by == ("daemon" if daemon else "local") and g.fallbacks == 0
    assert bool(daemon_env.daemon_pids()) is daemon


def _served(denv: DaemonEnv) -> int:
    status = json.loads(denv.run("daemon", "status", "--json").stdout)["data"]
    return int(status["requests_served"])


def test_fifty_client_calls_are_all_answered_by_the_daemon(
    daemon_env: DaemonEnv, tmp_path: Path
) -> None:
    repo = make_repo(tmp_path / "repo")
    with grite.Client(str(repo), environ=_strict(daemon_env)) as g:
        issue = g.issue_create("one").issue_id
        before = _served(daemon_env)
        for _ in range(25):
            assert g.issue_show(issue).title == "one"
            assert g.issue_list().total == 1
        assert g.served_by == "daemon" and g.fallbacks == 0
        # The daemon counted every call (plus the status request itself): none ran here.
        assert _served(daemon_env) == before + 50 + 1
    status = json.loads(daemon_env.run("daemon", "status", "--json").stdout)["data"]
    assert status["fallbacks_24h"] == 0


def test_strict_client_raises_naming_the_cause_instead_of_falling_back(
    daemon_env: DaemonEnv, tmp_path: Path
) -> None:
    repo = make_repo(tmp_path / "repo")
    # A runtime directory another user could write to is refused: the daemon cannot serve.
    os.makedirs(daemon_env.paths.runtime_dir, mode=0o700)
    os.chmod(daemon_env.paths.runtime_dir, 0o777)
    with grite.Client(str(repo), environ=_strict(daemon_env)) as g:
        with pytest.raises(DaemonRequired) as info:
            g.issue_list()
        assert info.value.cause == "unsafe_runtime_dir"
        assert info.value.code == "environment" and "GRITE_DAEMON=require" in info.value.message
    # Without the strict mode the same call runs here, and the fallback is recorded.
    with grite.Client(str(repo), environ=dict(daemon_env.env, GRITE_DAEMON="auto")) as g:
        assert g.issue_list().total == 0
        assert g.served_by == "local" and g.fallbacks == 1
    os.chmod(daemon_env.paths.runtime_dir, 0o700)
    status = json.loads(daemon_env.run("daemon", "status", "--json").stdout)["data"]
    assert status["fallbacks_24h"] == 1
    assert status["recent_fallbacks"][0]["cause"] == "unsafe_runtime_dir"
    assert status["recent_fallbacks"][0]["client"] == "client"


def test_client_falls_back_in_process_when_the_daemon_dies(
    daemon_env: DaemonEnv, tmp_path: Path
) -> None:
    repo = make_repo(tmp_path / "repo")
    with grite.Client(str(repo), environ=dict(daemon_env.env, GRITE_DAEMON="auto")) as g:
        created = g.issue_create("one")
        assert g.served_by == "daemon"
        for pid in daemon_env.daemon_pids():
            os.kill(pid, signal.SIGKILL)
        # The socket is dead now: this call runs in-process, with the same result.
        assert g.issue_show(created.issue_id).title == "one"
        assert g.served_by == "local" and g.fallbacks == 1


def test_client_watch_yields_typed_notifications(daemon_env: DaemonEnv, tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo")
    with grite.Client(str(repo), environ=_strict(daemon_env)) as g:
        first = g.issue_create("one")
        stream = g.watch(timeout=15)
        assert next(stream) == Subscribed(wal_head=first.wal_head)
        written = g.issue_comment(first.issue_id, "hello")
        changed = next(stream)
        assert isinstance(changed, IssueChanged) and changed.event_id == written.event_ids[0]
        advanced = next(stream)
        assert isinstance(advanced, WalAdvanced)
        assert (advanced.wal_head, advanced.previous) == (written.wal_head, first.wal_head)
        stream.close()
    with (
        grite.Client(str(repo), daemon=False) as local,
        pytest.raises(grite.model.errors.Environment),
    ):
        next(local.watch())


def test_kept_replies_never_hide_a_write_by_another_process(
    daemon_env: DaemonEnv, tmp_path: Path
) -> None:
    repo = make_repo(tmp_path / "repo")
    local = dict(daemon_env.env, GRITE_NO_DAEMON="1")
    with grite.Client(str(repo), environ=_strict(daemon_env)) as g:
        issue = g.issue_create("one").issue_id
        for _ in range(5):
            assert g.issue_show(issue).comments == []
        kept = json.loads(daemon_env.run("daemon", "status", "--json").stdout)["data"]
        assert kept["kept_replies_served"] >= 4  # answered from memory, on the daemon's loop
        # Another process writes without the daemon; the very next read must see it.
        proc = subprocess.run(
            [sys.executable, "-m", "grite", "issue", "comment", issue, "--body", "hi"],
            cwd=repo, env=local, capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
        assert proc.returncode == 0, proc.stderr
        assert [c.body for c in g.issue_show(issue).comments] == ["hi"]
        assert g.issue_list().issues[0].issue_id == issue
        assert g.served_by == "daemon" and g.fallbacks == 0
