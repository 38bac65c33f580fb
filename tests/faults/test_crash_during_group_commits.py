"""Scenario 1b: the daemon is SIGKILLed again and again while many writers' group commits run.

Twenty writers, each a grite.Client on its own persistent connection, write at once, so the
daemon coalesces their writes into group commits (one WAL commit, many writers' events). The
test plays the service manager: it starts a daemon, lets the writers run for a random moment,
SIGKILLs it once it has served some writes and a random moment more (so often mid-commit:
objects written, ref moved or not, followers waiting), and starts the next. The kills follow the
daemon's progress, not the clock: on a slow machine a fixed pause can kill each daemon before it
serves anything, and then nothing here would test the daemon. A writer whose connection dies
retries the same request (same request id and clock): on a new connection, or in-process when no
daemon is back yet. A write counts as acknowledged only when the Client returned its event ids.
Afterwards every acknowledged event is in the WAL exactly once, nothing is there twice, some
commits did carry several writers' events (the kills did hit group commits), git agrees the ref
is sound, and the view equals a full rebuild.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import grite
from grite.ipc import fallbacks
from grite.model.errors import GriteError
from grite.storage.wal import Wal
from tests.faults.conftest import (
    FaultEnv,
    assert_fsck_clean,
    init_repo,
    observable_state,
    pid_alive,
    rebuilt_state,
    wait_for,
    wal_event_counts,
)

WRITERS = 20
# 300 writes (GRITE_GROUP_FAULT_WRITES for a longer soak): over ten kills land mid-group; CI
# keeps it at 300 to stay in its time budget.
WRITES_PER_WRITER = int(os.environ.get("GRITE_GROUP_FAULT_WRITES", "300")) // WRITERS
MIN_KILLS = 10
# Writes a daemon acknowledges before the killer takes aim at it.
SERVED_BEFORE_KILL = 5
# Seconds the writers keep going for the kills to land (they need about 10 s).
KILLS_WITHIN = 120.0


class _Writer(threading.Thread):
    def __init__(
        self, index: int, repo: Path, env: dict[str, str], enough: threading.Event
    ) -> None:
        super().__init__(name=f"writer-{index}", daemon=True)
        self.index = index
        self.repo = repo
        self.env = env
        self.enough = enough  # set once the killer has landed its kills
        self.acked: list[str] = []
        self.failures: list[str] = []
        self.local = 0
        self.served = 0  # writes the daemon acknowledged

    def run(self) -> None:
        rng = random.Random(self.index)
        with grite.Client(str(self.repo), environ=self.env, timeout=30) as g:
            mine: list[str] = []
            n = 0
            # The quota, and on until the kills have landed: a fast machine writes its quota
            # before ten kills (about 10 s of them), a slow one writes slowly. Bounded in time,
            # not in writes, so the kills always land.
            give_up = time.monotonic() + KILLS_WITHIN
            while n < WRITES_PER_WRITER or (
                not self.enough.is_set() and time.monotonic() < give_up
            ):
                n += 1
                try:
                    if not mine or rng.random() < 0.1:
                        result = g.issue_create(f"w{self.index} #{n}")
                        mine.append(result.issue_id)
                    else:
                        result = g.issue_comment(rng.choice(mine), f"w{self.index} {n}")
                except GriteError as exc:
                    self.failures.append(f"{type(exc).__name__}: {exc.message}")
                    continue
                assert result.event_ids
                self.acked.extend(result.event_ids)
                self.local += g.served_by == "local"
                self.served += g.served_by == "daemon"


def _start_any(fenv: FaultEnv) -> None:
    """Start a daemon, or let one a writer started first serve (ours then exits at once)."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "grite.daemon", "--socket-path", fenv.paths.socket,
         "--idle-timeout", "0"],
        env=fenv.env, cwd="/", stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL, start_new_session=True,
    )  # fmt: skip
    wait_for(lambda: fenv.daemon_pid() is not None or proc.poll() is not None, what="a daemon")


def _served(writers: list[_Writer]) -> int:
    return sum(w.served for w in writers)


def _fallback_causes(fenv: FaultEnv) -> Counter[str]:
    return Counter(f.cause for f in fallbacks.read(fenv.paths.fallback_log))


def _max_events_per_commit(repo: Path) -> int:
    wal = Wal(str(repo / ".git"))
    try:
        return max(len(entry.events) for entry in wal.read_entries())
    finally:
        wal.close()


def test_sigkilled_daemon_mid_group_commit_loses_no_acknowledged_write(
    fault_env: FaultEnv, tmp_path: Path
) -> None:
    repo = init_repo(fault_env)
    fault_env.start_daemon("--idle-timeout", "0")
    enough = threading.Event()
    writers = [_Writer(i, repo, fault_env.env, enough) for i in range(WRITERS)]
    for w in writers:
        w.start()
    rng = random.Random(11)
    kills = 0
    started = time.monotonic()
    while any(w.is_alive() for w in writers):
        pid = fault_env.daemon_pid()
        if pid is None:
            # Nobody brought one back yet (a writer's Client may, or it runs in-process).
            _start_any(fault_env)
            continue
        # Let this daemon serve a few writes (bounded: a writer may finish meanwhile), then a
        # random moment more, so the kill lands among commits in flight.
        before = _served(writers)
        deadline = time.monotonic() + 20.0
        while (
            _served(writers) < before + SERVED_BEFORE_KILL
            and time.monotonic() < deadline
            and any(w.is_alive() for w in writers)
        ):
            time.sleep(0.01)
        time.sleep(rng.uniform(0.0, 0.3))
        if fault_env.daemon_pid() != pid:
            continue
        os.kill(pid, signal.SIGKILL)
        kills += 1
        if kills >= MIN_KILLS:
            enough.set()
        wait_for(lambda p=pid: not pid_alive(p), what="killed daemon gone")  # type: ignore[misc]
    for w in writers:
        w.join()
    elapsed = time.monotonic() - started

    acked = [e for w in writers for e in w.acked]
    failures = [f for w in writers for f in w.failures]
    local = sum(w.local for w in writers)
    causes = _fallback_causes(fault_env)
    print(
        f"\ncrash-during-group-commits: {len(acked)} writes "
        f"acknowledged ({local} in-process), {len(failures)} failed, {kills} kills, "
        f"{elapsed:.1f} s, largest commit {_max_events_per_commit(repo)} events, "
        f"fallbacks by cause {dict(causes)}"
    )
    assert _served(writers) > 0, f"the daemon acknowledged no write (fallbacks: {dict(causes)})"
    assert kills >= MIN_KILLS, f"only {kills} kills in {elapsed:.1f} s"
    counts = wal_event_counts(repo)
    twice = [e for e, n in counts.items() if n > 1]
    assert not twice, f"{len(twice)} events were appended more than once: {twice[:3]}"
    missing = [e for e in acked if counts[e] != 1]
    assert not missing, f"{len(missing)} acknowledged events are not in the WAL: {missing[:3]}"
    assert Counter(acked) == Counter({e: 1 for e in acked}), "an event was acknowledged twice"
    # Every write here is one event: a commit with more is a group commit.
    assert _max_events_per_commit(repo) > 1, "no group commit happened"
    assert_fsck_clean(repo)
    assert not failures, failures[:5]
    assert observable_state(repo) == rebuilt_state(repo, tmp_path)
