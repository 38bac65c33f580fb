"""Benchmarks for the core (issue 2), in-process, excluding interpreter start.

    python3 benchmarks/bench_core.py [--issues 10000] [--catchup-events 20000]

Measures, each on a fresh real git repository in a temp dir:
- `issue create`: one WAL commit through the real operation (median of 200);
- catching the view up from an empty view: events/s, for a WAL of one event per commit (what
  agents write) and of 100 events per commit (what a sync or a batch writes);
- catch-up of an empty view when a snapshot sits 100 commits below the head (a fresh clone);
- `grite rebuild --from-snapshot` with a snapshot at the head of a one-event-per-commit WAL;
- `issue list` over N issues once the view is current: warm handle (the daemon's case) and a
  fresh handle per command (the --no-daemon case), median of 20.
Prints a Markdown table; timings are wall clock on this machine.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from grite.cli.app import run_invocation  # noqa: E402
from grite.model.events import IssueCreated  # noqa: E402
from grite.model.hashing import make_event  # noqa: E402
from grite.model.invocation import Invocation  # noqa: E402
from grite.ops.repo_handle import RepoHandle  # noqa: E402
from grite.storage.repo import discover_repo  # noqa: E402
from grite.storage.wal import Wal, append_with_retry  # noqa: E402

ACTOR = bytes.fromhex("42" * 16)


def _repo(root: Path, name: str) -> Path:
    path = root / name
    path.mkdir()
    subprocess.run(["git", "init", "-q", str(path)], check=True)
    return path


def _inv(repo: Path, *argv: str) -> Invocation:
    return Invocation(
        argv=list(argv), cwd=str(repo), env={}, request_id=os.urandom(16),
        now_ms=time.time_ns() // 10**6,
    )  # fmt: skip


def _fill(repo: Path, n: int, per_commit: int) -> None:
    wal = Wal(str(repo / ".git"))
    batch = []
    for i in range(n):
        batch.append(
            make_event(
                issue_id=os.urandom(16), actor=ACTOR, ts_unix_ms=1_700_000_000_000 + i,
                kind=IssueCreated(title=f"issue number {i}", body="body text", labels=["bench"]),
            )
        )  # fmt: skip
        if len(batch) == per_commit:
            append_with_retry(wal, ACTOR, batch)
            batch = []
    if batch:
        append_with_retry(wal, ACTOR, batch)


def bench_create(root: Path) -> float:
    repo = _repo(root, "create")
    run_invocation(_inv(repo, "init"))
    times = []
    for i in range(200):
        t = time.perf_counter()
        out = run_invocation(_inv(repo, "issue", "create", "--title", f"t{i}"))
        times.append(time.perf_counter() - t)
        assert out.exit_code == 0, out
    return statistics.median(times) * 1000


def bench_catchup(root: Path, events: int, per_commit: int) -> float:
    repo = _repo(root, f"catchup{per_commit}")
    _fill(repo, events, per_commit)
    handle = RepoHandle.open(discover_repo(str(repo)))
    t = time.perf_counter()
    handle.refresh()
    dt = time.perf_counter() - t
    assert len(handle.summaries()) == events
    handle.close()
    return events / dt


def bench_catchup_with_snapshot(root: Path, events: int) -> float:
    """Catch-up of an empty view (a fresh clone) when a snapshot sits near the WAL head: the
    view is seeded from the snapshot, then reads only the commits after it."""
    repo = _repo(root, "seeded")
    _fill(repo, events, 1)
    out = run_invocation(_inv(repo, "snapshot", "create", "--json"))
    assert out.exit_code == 0, out
    _fill(repo, 100, 1)  # a little WAL after the snapshot, as in real use
    shutil.rmtree(repo / ".git" / "grite" / "view")
    handle = RepoHandle.open(discover_repo(str(repo)))
    t = time.perf_counter()
    handle.refresh()
    dt = time.perf_counter() - t
    assert len(handle.summaries()) == events + 100
    handle.close()
    return (events + 100) / dt


def bench_snapshot_rebuild(root: Path, events: int) -> float:
    """`grite rebuild --from-snapshot` on a one-event-per-commit WAL with a snapshot at its head."""
    repo = _repo(root, "snapshot")
    _fill(repo, events, 1)
    out = run_invocation(_inv(repo, "snapshot", "create", "--json"))
    assert out.exit_code == 0, out
    t = time.perf_counter()
    out = run_invocation(_inv(repo, "rebuild", "--from-snapshot", "--json"))
    dt = time.perf_counter() - t
    assert out.exit_code == 0 and '"from_snapshot": "refs/grite/snapshots/' in out.stdout, out
    return events / dt


def bench_list(root: Path, issues: int) -> tuple[float, float]:
    repo = _repo(root, "list")
    _fill(repo, issues, 500)
    run_invocation(_inv(repo, "issue", "list"))  # bring the view up to date
    warm = RepoHandle.open(discover_repo(str(repo)))

    class Warm:
        def get(self, paths: object) -> RepoHandle:
            return warm

    run_invocation(_inv(repo, "issue", "list", "--json"), Warm())
    warm_times, cold_times = [], []
    for _ in range(20):
        t = time.perf_counter()
        out = run_invocation(_inv(repo, "issue", "list", "--json"), Warm())
        warm_times.append(time.perf_counter() - t)
        assert out.exit_code == 0 and out.stdout.count('"issue_id"') == issues
        t = time.perf_counter()
        out = run_invocation(_inv(repo, "issue", "list", "--json"))
        cold_times.append(time.perf_counter() - t)
    warm.close()
    return statistics.median(warm_times) * 1000, statistics.median(cold_times) * 1000


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--issues", type=int, default=10_000)
    ap.add_argument("--catchup-events", type=int, default=20_000)
    args = ap.parse_args()
    root = Path(tempfile.mkdtemp(prefix="grite-bench-"))
    try:
        create_ms = bench_create(root)
        rate1 = bench_catchup(root, args.catchup_events // 4, 1)
        rate100 = bench_catchup(root, args.catchup_events, 100)
        rate_snap = bench_snapshot_rebuild(root, args.catchup_events // 4)
        rate_seeded = bench_catchup_with_snapshot(root, args.catchup_events // 4)
        warm_ms, cold_ms = bench_list(root, args.issues)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    print(
        f"Machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"
    )
    print()
    print("| measurement | result | target |")
    print("|---|---|---|")
    print(f"| `issue create` (one WAL commit), median of 200 | {create_ms:.1f} ms | < 10 ms |")
    print(
        f"| view catch-up from empty, 1 event per commit | {rate1:,.0f} events/s | >= 20,000 events/s |"
    )
    print(
        f"| view catch-up from empty, 100 events per commit | {rate100:,.0f} events/s | >= 20,000 events/s |"
    )
    print(
        "| view catch-up from empty with a snapshot near the head (fresh clone), 1 event per "
        f"commit | {rate_seeded:,.0f} events/s | >= 20,000 events/s |"
    )
    print(
        f"| `rebuild --from-snapshot`, 1 event per commit | {rate_snap:,.0f} events/s "
        "| >= 20,000 events/s |"
    )
    print(
        f"| `issue list --json` over {args.issues:,} issues, warm handle | {warm_ms:.1f} ms | < 50 ms |"
    )
    print(
        f"| `issue list --json` over {args.issues:,} issues, fresh handle | {cold_ms:.1f} ms | < 50 ms |"
    )


if __name__ == "__main__":
    main()
