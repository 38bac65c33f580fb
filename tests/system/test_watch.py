"""`grite watch`: a real watcher process sees every WAL change of its repository, in order and
without gaps, whoever made it: CLI writes through the daemon, --no-daemon writes by other
processes, a plain `git fetch` that moves refs/grite/wal; and a watcher that reconnects with
--since receives exactly what it missed.
"""

from __future__ import annotations

import json
import queue
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from tests.conftest import git, make_repo
from tests.system.conftest import DaemonEnv

DEADLINE = 15.0


class Watcher:
    """A `grite watch --json` child process whose stdout lines arrive on a queue."""

    def __init__(self, denv: DaemonEnv, repo: Path, *args: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "grite.cli.entry", "watch", "--json", *args],
            cwd=repo,
            env=denv.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.lines: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(line)
        self.lines.put(None)

    def next(self) -> dict[str, Any]:
        try:
            line = self.lines.get(timeout=DEADLINE)
        except queue.Empty:
            raise AssertionError("the watcher printed nothing before the deadline") from None
        assert line is not None, f"the watcher exited: {self.proc.stderr.read()}"  # type: ignore[union-attr]
        return json.loads(line)  # type: ignore[no-any-return]

    def until_head(self, head: str) -> list[dict[str, Any]]:
        """Every notification up to and including the wal_advanced that names `head`."""
        got = []
        while True:
            note = self.next()
            got.append(note)
            if note["type"] == "wal_advanced" and note["wal_head"] == head:
                return got

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGINT)
        assert self.proc.wait(timeout=DEADLINE) == 0
        self.proc.stderr.close()  # type: ignore[union-attr]
        self.proc.stdout.close()  # type: ignore[union-attr]


def _grite(denv: DaemonEnv, repo: Path, *args: str, local: bool = False) -> dict[str, Any]:
    env = dict(denv.env, GRITE_NO_DAEMON="1") if local else denv.env
    proc = subprocess.run(
        [sys.executable, "-m", "grite.cli.entry", *args, "--json"],
        cwd=repo,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return json.loads(proc.stdout)["data"]  # type: ignore[no-any-return]


def _head(repo: Path) -> str:
    return git(repo, "rev-parse", "refs/grite/wal").stdout.strip()


def _chain(notes: list[dict[str, Any]], start: str | None) -> list[dict[str, Any]]:
    """Check that the wal_advanced notes form one unbroken chain from `start`; return them."""
    advances = [n for n in notes if n["type"] == "wal_advanced"]
    previous = start
    for note in advances:
        assert note["previous"] == previous, (note, previous)
        previous = note["wal_head"]
    return advances


def test_watcher_sees_every_change_in_order_whoever_made_it(
    daemon_env: DaemonEnv, tmp_path: Path
) -> None:
    repo = make_repo(tmp_path / "repo")
    first = _grite(daemon_env, repo, "issue", "create", "--title", "first")
    watcher = Watcher(daemon_env, repo)
    subscribed = watcher.next()
    assert subscribed == {"type": "subscribed", "wal_head": first["wal_head"]}

    # A write through the daemon, then one by another process that bypasses it.
    second = _grite(daemon_env, repo, "issue", "comment", first["issue_id"], "--body", "hi")
    third = _grite(daemon_env, repo, "issue", "create", "--title", "third", local=True)
    # A clone writes; a plain `git fetch` brings its WAL commits here.
    other = tmp_path / "other"
    git(tmp_path, "clone", "-q", str(repo), str(other))
    git(other, "fetch", "-q", "origin", "refs/grite/wal:refs/grite/wal")
    fourth = _grite(daemon_env, other, "issue", "close", first["issue_id"], local=True)
    fifth = _grite(daemon_env, other, "issue", "create", "--title", "fifth", local=True)
    git(repo, "fetch", "-q", str(other), "refs/grite/wal:refs/grite/wal")
    assert _head(repo) == fifth["wal_head"]

    notes = watcher.until_head(fifth["wal_head"])
    watcher.stop()
    advances = _chain(notes, first["wal_head"])
    assert [a["wal_head"] for a in advances] == [
        second["wal_head"],
        third["wal_head"],
        fourth["wal_head"],
        fifth["wal_head"],
    ]
    assert advances[0]["source"] == "local_write"
    assert [a["source"] for a in advances[1:]] == ["external"] * 3
    changed = [n for n in notes if n["type"] == "issue_changed"]
    assert [c["event_id"] for c in changed] == [
        w["event_ids"][0] for w in (second, third, fourth, fifth)
    ]
    assert [c["kind"] for c in changed] == [
        "CommentAdded",
        "IssueCreated",
        "StateChanged",
        "IssueCreated",
    ]
    # Each commit's issue_changed lines come right before its wal_advanced.
    assert [n["type"] for n in notes] == ["issue_changed", "wal_advanced"] * 4


def test_resumed_watcher_receives_exactly_what_it_missed(
    daemon_env: DaemonEnv, tmp_path: Path
) -> None:
    repo = make_repo(tmp_path / "repo")
    created = _grite(daemon_env, repo, "issue", "create", "--title", "one")
    watcher = Watcher(daemon_env, repo)
    resume_at = watcher.next()["wal_head"]
    watcher.stop()
    missed = [
        _grite(daemon_env, repo, "issue", "comment", created["issue_id"], "--body", f"c{i}")
        for i in range(3)
    ]
    resumed = Watcher(daemon_env, repo, "--since", resume_at)
    replay = resumed.until_head(missed[-1]["wal_head"])
    live = resumed.next()
    assert live == {"type": "subscribed", "wal_head": missed[-1]["wal_head"]}
    # Live changes follow the replay with no gap and no repeat.
    after = _grite(daemon_env, repo, "issue", "close", created["issue_id"])
    tail = resumed.until_head(after["wal_head"])
    resumed.stop()
    advances = _chain(replay, resume_at)
    assert [a["wal_head"] for a in advances] == [m["wal_head"] for m in missed]
    assert {a["source"] for a in advances} == {"replay"}
    assert [n["event_id"] for n in replay if n["type"] == "issue_changed"] == [
        m["event_ids"][0] for m in missed
    ]
    assert _chain(tail, missed[-1]["wal_head"])[0]["source"] == "local_write"
    assert len(tail) == 2


def test_watch_since_unknown_head_and_no_daemon_are_errors(
    daemon_env: DaemonEnv, tmp_path: Path
) -> None:
    repo = make_repo(tmp_path / "repo")
    _grite(daemon_env, repo, "issue", "create", "--title", "one")
    proc = daemon_env.run("watch", "--json", "--since", "f" * 40, cwd=str(repo))
    assert proc.returncode == 3, proc.stdout + proc.stderr
    assert json.loads(proc.stdout)["error"]["code"] == "not_found"
    proc = daemon_env.run("watch", "--no-daemon", cwd=str(repo))
    assert proc.returncode == 5
    assert "needs the daemon" in proc.stderr


def test_watcher_outlives_a_daemon_restart(daemon_env: DaemonEnv, tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo")
    created = _grite(daemon_env, repo, "issue", "create", "--title", "one")
    watcher = Watcher(daemon_env, repo)
    assert watcher.next()["type"] == "subscribed"
    assert daemon_env.run("daemon", "stop").returncode == 0
    # Written while no daemon runs: the watcher's reconnection replays it.
    missed = _grite(
        daemon_env, repo, "issue", "comment", created["issue_id"], "--body", "x", local=True
    )
    deadline = time.monotonic() + DEADLINE
    notes = []
    while not any(n.get("wal_head") == missed["wal_head"] for n in notes):
        assert time.monotonic() < deadline
        notes.append(watcher.next())
    watcher.stop()
    assert [n["event_id"] for n in notes if n["type"] == "issue_changed"] == missed["event_ids"]


def test_watcher_sees_what_a_merged_sync_pulls(daemon_env: DaemonEnv, tmp_path: Path) -> None:
    """Issue 16: after a diverged sync the watcher printed `[sync, 0 events]` and never the
    pulled IssueCreated. The merge moves the head off the watcher's chain (the remote's
    commits, then ours re-applied); what arrived is reported, what we had is not repeated."""
    upstream = tmp_path / "up.git"
    git(tmp_path, "init", "-q", "--bare", str(upstream))
    ours = make_repo(tmp_path / "ours")
    git(ours, "remote", "add", "origin", str(upstream))
    base = _grite(daemon_env, ours, "issue", "create", "--title", "base")
    _grite(daemon_env, ours, "sync", "--push")
    theirs = tmp_path / "theirs"
    git(tmp_path, "clone", "-q", str(upstream), str(theirs))
    _grite(daemon_env, theirs, "sync", "--pull", local=True)
    pulled = _grite(daemon_env, theirs, "issue", "create", "--title", "theirs", local=True)
    _grite(daemon_env, theirs, "sync", "--push", local=True)
    mine = _grite(daemon_env, ours, "issue", "comment", base["issue_id"], "--body", "mine")

    watcher = Watcher(daemon_env, ours)
    assert watcher.next() == {"type": "subscribed", "wal_head": mine["wal_head"]}
    _grite(daemon_env, ours, "sync")  # diverged: a merge, through the daemon
    head = _head(ours)
    notes = watcher.until_head(head)
    watcher.stop()
    changed = [n for n in notes if n["type"] == "issue_changed"]
    assert [c["event_id"] for c in changed] == pulled["event_ids"], notes
    assert changed[0]["kind"] == "IssueCreated" and changed[0]["issue_id"] == pulled["issue_id"]
    advances = _chain(notes, mine["wal_head"])
    assert sum(a["events"] for a in advances) == 1
    assert {a["source"] for a in advances} == {"sync"}


def test_external_writes_are_reported_every_time(daemon_env: DaemonEnv, tmp_path: Path) -> None:
    """Issue 16's race: a watcher that sometimes printed only `subscribed` while another
    process wrote. 200 writes by this (non-daemon) process, each at once or after a short
    pause, must each be reported, in order, with no gap; plus the issue's own steps (22
    issues and a dependency written in-process, `issue ready` spawning the daemon, then the
    watcher and one more in-process write) run three times with real processes."""
    from grite.model.events import IssueCreated
    from grite.model.hashing import make_event
    from grite.storage.wal import Wal, append_with_retry

    repo = make_repo(tmp_path / "repo")
    first = _grite(daemon_env, repo, "issue", "create", "--title", "first")
    watcher = Watcher(daemon_env, repo)
    assert watcher.next()["wal_head"] == first["wal_head"]
    actor = bytes(range(16))
    wal = Wal(str(repo / ".git"))
    try:
        previous = first["wal_head"]
        for i in range(200):
            event = make_event(
                issue_id=i.to_bytes(16, "big"),
                actor=actor,
                ts_unix_ms=int(time.time() * 1000),
                kind=IssueCreated(title=f"t{i}", body="", labels=[]),
            )
            head, appended = append_with_retry(wal, actor, [event])
            assert appended and head is not None
            if i % 3 == 0:
                time.sleep(0.15)  # let the poller catch up now and then; else writes batch up
            if i % 10 == 9 or i == 199:
                notes = watcher.until_head(head)
                advances = _chain(notes, previous)
                assert all(a["source"] == "external" for a in advances)
                previous = head
    finally:
        wal.close()
    watcher.stop()

    for round_ in range(3):
        repo = make_repo(tmp_path / f"steps{round_}")
        ids = [
            _grite(daemon_env, repo, "issue", "create", "--title", f"t{k}", local=True)["issue_id"]
            for k in range(22)
        ]
        _grite(daemon_env, repo, "issue", "dep", "add", ids[0], "--target", ids[1], local=True)
        _grite(daemon_env, repo, "issue", "ready")
        watcher = Watcher(daemon_env, repo)
        assert watcher.next()["type"] == "subscribed"
        late = _grite(daemon_env, repo, "issue", "create", "--title", "late", local=True)
        notes = watcher.until_head(late["wal_head"])
        watcher.stop()
        assert [n["event_id"] for n in notes if n["type"] == "issue_changed"][-1:] == (
            late["event_ids"]
        )
