"""Scenario 2: an in-process writer (`grite --no-daemon issue create`) is SIGKILLed mid-append,
again and again. The ref must always name a sound commit chain, and a `refs/grite/wal.lock`
left by a dead writer must be recovered (grite.storage.ref_lock) without losing a live lock.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from grite.model.errors import Environment
from grite.model.events import IssueCreated
from grite.model.hashing import make_event
from grite.storage.wal import Wal, append_with_retry
from tests.faults.conftest import (
    GRITE,
    FaultEnv,
    assert_fsck_clean,
    git,
    init_repo,
    wal_event_counts,
)

KILLS = 15


def _lock(repo: Path) -> Path:
    return repo / ".git" / "refs" / "grite" / "wal.lock"


def _assert_ref_sound(repo: Path) -> None:
    head = git(repo, "rev-parse", "--verify", "refs/grite/wal").stdout.strip()
    assert git(repo, "cat-file", "-t", head).stdout.strip() == "commit"
    wal_event_counts(repo)  # every commit reads and verifies


def test_sigkilled_in_process_writers_never_corrupt_the_ref(fault_env: FaultEnv) -> None:
    repo = init_repo(fault_env)
    env = dict(fault_env.env, GRITE_NO_DAEMON="1")
    argv = [*GRITE, "issue", "create", "--title", "t", "--json"]
    started = time.monotonic()
    done = subprocess.run(argv, cwd=repo, env=env, capture_output=True, check=True)
    full = time.monotonic() - started  # one whole command: the kills land inside it
    rng = random.Random(3)
    killed = completed = leftovers = 0
    upper = 1.1 * full
    # Kill until KILLS writers died mid-command; a writer that finished first (the machine got
    # faster than the measured run) narrows the window for the next ones.
    for _ in range(3 * KILLS):
        if killed >= KILLS:
            break
        proc = subprocess.Popen(argv, cwd=repo, env=env, stdout=subprocess.PIPE)
        time.sleep(rng.uniform(0.3 * upper, upper))  # fault injection, not synchronisation
        proc.send_signal(signal.SIGKILL)
        out, _ = proc.communicate()
        if proc.returncode == -signal.SIGKILL:
            killed += 1
        else:
            completed += 1
            upper *= 0.7
            assert proc.returncode == 0 and b'"ok": true' in out
        _assert_ref_sound(repo)
        if _lock(repo).exists():
            # Left by the dead writer; age it as the clock would (the next writer breaks a
            # lock older than 10 s), so the test does not wait.
            leftovers += 1
            past = time.time() - 60
            os.utime(_lock(repo), (past, past))
    print(f"\nkilled-writer: {killed} killed, {completed} completed, {leftovers} locks left")
    assert killed >= KILLS
    proc = subprocess.run(argv, cwd=repo, env=env, capture_output=True, text=True, timeout=30)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert not _lock(repo).exists()
    assert done.returncode == 0
    _assert_ref_sound(repo)
    assert_fsck_clean(repo)


_HOLDER = """
import sys, time
from dulwich.file import GitFile
f = GitFile(sys.argv[1], "wb")  # takes <ref>.lock exactly as a ref update does
f.write(b"0" * 40 + b"\\n")
print("locked", flush=True)
time.sleep(600)
"""


def test_lock_left_by_a_killed_holder_is_broken_once_stale(fault_env: FaultEnv) -> None:
    repo = init_repo(fault_env)
    fault_env.local(repo, "issue", "create", "--title", "before")
    before = git(repo, "rev-parse", "refs/grite/wal").stdout.strip()
    ref = repo / ".git" / "refs" / "grite" / "wal"
    holder = subprocess.Popen(
        [sys.executable, "-c", _HOLDER, str(ref)], stdout=subprocess.PIPE, text=True
    )
    assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
    holder.kill()
    holder.wait()
    assert _lock(repo).exists()
    past = time.time() - 30
    os.utime(_lock(repo), (past, past))
    data = fault_env.local(repo, "issue", "create", "--title", "after")
    assert not _lock(repo).exists()
    assert git(repo, "rev-parse", "refs/grite/wal^").stdout.strip() == before
    assert data["wal_head"] == git(repo, "rev-parse", "refs/grite/wal").stdout.strip()
    assert_fsck_clean(repo)


def _event(n: int) -> list:  # type: ignore[type-arg]
    kind = IssueCreated(title=f"t{n}", body="", labels=[])
    return [
        make_event(
            issue_id=bytes([n]) * 16,
            actor=b"\x01" * 16,
            ts_unix_ms=1_700_000_000_000 + n,
            kind=kind,
        )
    ]


def test_fresh_lock_is_never_broken(fault_env: FaultEnv) -> None:
    repo = init_repo(fault_env)
    fault_env.local(repo, "issue", "create", "--title", "before")
    _lock(repo).write_bytes(b"")
    wal = Wal(str(repo / ".git"))
    try:
        with pytest.raises(Environment, match="wal.lock"):
            append_with_retry(wal, b"\x01" * 16, _event(1), max_wait_seconds=0.3)
        assert _lock(repo).exists(), "a fresh lock (maybe a live writer) was removed"
        # Once it is older than the threshold it counts as abandoned.
        head, appended = append_with_retry(
            wal, b"\x01" * 16, _event(2), max_wait_seconds=5, stale_lock_seconds=0.2
        )
    finally:
        wal.close()
    assert appended and head == git(repo, "rev-parse", "refs/grite/wal").stdout.strip()
    assert not _lock(repo).exists()
    assert_fsck_clean(repo)


def _leave_lock(ref: Path) -> Path:
    """Take `<ref>.lock` in a process that is then SIGKILLed; age the lock past the threshold."""
    ref.parent.mkdir(parents=True, exist_ok=True)
    holder = subprocess.Popen(
        [sys.executable, "-c", _HOLDER, str(ref)], stdout=subprocess.PIPE, text=True
    )
    assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
    holder.kill()
    holder.wait()
    lock = ref.with_name(ref.name + ".lock")
    past = time.time() - 30
    os.utime(lock, (past, past))
    return lock


def test_locks_left_on_lease_and_tracking_refs_do_not_stop_sync_or_claims(
    fault_env: FaultEnv, tmp_path: Path
) -> None:
    """A process killed while moving a lease ref or recording what the remote holds (the CI
    failure of stop 18: `sync` said FileLocked forever) leaves `.lock` files; the next sync and
    claim break them once abandoned and carry on."""
    remote = tmp_path / "remote.git"
    git(tmp_path, "init", "-q", "--bare", str(remote))
    repo = init_repo(fault_env)
    git(repo, "remote", "add", "origin", str(remote))
    for n in range(2):
        fault_env.local(repo, "issue", "create", "--title", f"t{n}")
    fault_env.local(repo, "sync")
    claimed = fault_env.local(repo, "issue", "ready", "--claim")["issue"]["issue_id"]
    lease = git(repo, "for-each-ref", "--format=%(refname)", "refs/grite/locks/").stdout.split()
    assert len(lease) == 1
    dot_git = repo / ".git"
    locks = [
        _leave_lock(dot_git / lease[0]),
        _leave_lock(dot_git / lease[0].replace("refs/grite/", "refs/grite/remotes/origin/")),
        _leave_lock(dot_git / "refs/grite/remotes/origin/wal"),
    ]
    fault_env.local(repo, "issue", "create", "--title", "t2")
    fault_env.local(repo, "sync")
    other = fault_env.local(repo, "issue", "ready", "--claim")["issue"]["issue_id"]
    assert other != claimed
    fault_env.local(repo, "lock", "release", f"issue:{claimed}")
    fault_env.local(repo, "sync")
    assert not [lock for lock in locks if lock.exists()]
    assert git(repo, "for-each-ref", lease[0]).stdout == ""
    assert (
        git(remote, "rev-parse", "refs/grite/wal").stdout
        == git(repo, "rev-parse", "refs/grite/wal").stdout
    )
    assert_fsck_clean(repo)
