"""Attack 9: work that outlives the client's reply deadline must not run twice.

A sync of a very large pull ran longer than the client's 60 s reply deadline: the client gave up,
ran the sync again in-process while the daemon went on, and the user saw "Already up to date".
Now the daemon sends a Progress frame every keepalive interval while a request runs, and the
client's deadline is per frame: the request stays on the daemon, is served once, and the client
shows progress on stderr (on a terminal, or with GRITE_DEBUG). Here the deadline is made short
(GRITE_DAEMON_REPLY_TIMEOUT=0.5, GRITE_DAEMON_KEEPALIVE=0.1) rather than the pull made huge.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from grite.ipc import fallbacks
from grite.ipc.paths import runtime_paths
from tests.conftest import GRITE, Grite, git, make_repo, wal_commit_count

ISSUES = 600


def test_a_sync_longer_than_the_reply_deadline_is_served_once(
    isolated_env: dict[str, str], tmp_path: Path
) -> None:
    remote = tmp_path / "remote.git"
    git(tmp_path, "init", "-q", "--bare", str(remote))
    writer = make_repo(tmp_path / "writer")
    git(writer, "remote", "add", "origin", str(remote))
    lines = "".join(
        json.dumps({"type": "issue_create", "title": f"issue {i}"}) + "\n" for i in range(ISSUES)
    )
    # One process, one commit per issue (no group commit across a batch's sequential writes).
    batch = subprocess.run(
        [*GRITE, "--no-daemon", "batch"], cwd=writer, input=lines, env=isolated_env,
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert batch.returncode == 0, batch.stderr
    Grite(isolated_env, "local").json(writer, "sync", "--push")
    commits = wal_commit_count(writer)

    env = dict(
        isolated_env,
        GRITE_DAEMON_REPLY_TIMEOUT="0.5",
        GRITE_DAEMON_KEEPALIVE="0.1",
        GRITE_DEBUG="1",
    )
    reader = make_repo(tmp_path / "reader")
    git(reader, "remote", "add", "origin", str(remote))
    grite = Grite(env, "daemon")  # strict: a timeout into an in-process rerun fails the test
    grite.json(reader, "issue", "list")  # the daemon runs and knows the repository
    proc = grite.run(reader, "sync", "--pull")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    # It outlived the deadline (more keepalives than fit in it) and stayed on the daemon.
    assert proc.stderr.count("still running") > 0.5 / 0.1, proc.stderr
    assert "daemon not used" not in proc.stderr
    assert f"Pulled {commits}" in proc.stdout or "Pulled" in proc.stdout, proc.stdout
    assert fallbacks.read(runtime_paths(env).fallback_log) == []
    # Each event once: the pulled history is the writer's, and every issue is there once.
    assert wal_commit_count(reader) == commits
    issues = grite.json(reader, "issue", "list", "--state", "all")["issues"]
    assert len(issues) == ISSUES == len({i["issue_id"] for i in issues})
    events = git(reader, "log", "--format=%H", "refs/grite/wal").stdout.split()
    assert len(events) == len(set(events)) == commits
