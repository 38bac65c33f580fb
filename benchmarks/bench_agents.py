"""Benchmarks for the agent features (issue 6), with real processes and a real daemon.

    python3 benchmarks/bench_agents.py [--queries 100] [--writes 200] [--issues 100]

Runs in a private runtime dir (its own daemon, stopped at the end) on a fresh git repository
holding `--issues` issues, and measures:
- 100 `issue show` queries three ways: one `grite batch` process over one daemon connection;
  100 separate `grite issue show` CLI processes (daemon warm); 100 calls on one grite.Client
  (connection already open). Wall time of each, and ratios to the batch;
- notification latency: from just before a write (issue comment through a grite.Client) to
  the moment a `grite watch --json` process prints its wal_advanced line: median and p99.
Every command and Client call runs with GRITE_DAEMON=require: one the daemon did not serve
fails the run. Prints a Markdown table; timings are wall clock on this machine.
"""

from __future__ import annotations

import argparse
import json
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

import grite  # noqa: E402

GRITE = [sys.executable, "-m", "grite"]


def _env(base: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GRITE_", "XDG_"))}
    env.update(
        XDG_RUNTIME_DIR=base,
        HOME=os.path.join(base, "home"),
        XDG_STATE_HOME=os.path.join(base, "state"),
        XDG_CONFIG_HOME=os.path.join(base, "config"),
        PYTHONPATH=str(Path(__file__).resolve().parents[1]),
        # Strict: a command or Client call the daemon did not serve fails the benchmark.
        GRITE_DAEMON="require",
    )
    os.makedirs(env["HOME"], exist_ok=True)
    return env


def _p99(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(0.99 * (len(ordered) - 1))))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--queries", type=int, default=100)
    parser.add_argument("--writes", type=int, default=200)
    parser.add_argument("--issues", type=int, default=100)
    opts = parser.parse_args()
    base = tempfile.mkdtemp(prefix="gb", dir="/tmp")
    env = _env(base)
    repo = Path(base) / "repo"
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    rows: list[tuple[str, str]] = []
    try:
        with grite.Client(str(repo), environ=env) as g:
            ids = [g.issue_create(f"issue {i}").issue_id for i in range(opts.issues)]
            assert g.served_by == "daemon" and g.fallbacks == 0, "the daemon did not serve"
            targets = [ids[i % len(ids)] for i in range(opts.queries)]

            lines = "".join(json.dumps({"type": "issue_show", "issue": t}) + "\n" for t in targets)
            t0 = time.perf_counter()
            out = subprocess.run(
                [*GRITE, "batch"], cwd=repo, env=env, input=lines, capture_output=True, text=True
            )
            t_batch = time.perf_counter() - t0
            assert len(out.stdout.splitlines()) == opts.queries, out.stderr

            t0 = time.perf_counter()
            for t in targets:
                proc = subprocess.run(
                    [*GRITE, "issue", "show", t, "--json"], cwd=repo, env=env, capture_output=True
                )
                assert proc.returncode == 0
            t_cli = time.perf_counter() - t0

            t0 = time.perf_counter()
            for t in targets:
                g.issue_show(t)
            t_client = time.perf_counter() - t0
            assert g.served_by == "daemon" and g.fallbacks == 0, "the daemon did not serve"

            n = opts.queries
            rows += [
                (f"{n} queries as one `grite batch`", f"{t_batch * 1000:.0f} ms (1.0x)"),
                (
                    f"{n} separate `grite issue show` (daemon warm)",
                    f"{t_cli * 1000:.0f} ms ({t_cli / t_batch:.1f}x batch)",
                ),
                (
                    f"{n} calls on one grite.Client",
                    f"{t_client * 1000:.1f} ms ({t_client / t_batch:.2f}x batch)",
                ),
            ]

            watcher = subprocess.Popen(
                [*GRITE, "watch", "--json"], cwd=repo, env=env, stdout=subprocess.PIPE, text=True
            )
            assert watcher.stdout is not None
            assert json.loads(watcher.stdout.readline())["type"] == "subscribed"
            latencies = []
            for i in range(opts.writes):
                t0 = time.perf_counter()
                head = g.issue_comment(ids[i % len(ids)], f"c{i}").wal_head
                while True:
                    note = json.loads(watcher.stdout.readline())
                    assert "type" in note, f"the watcher failed: {note}"
                    if note["type"] == "wal_advanced" and note["wal_head"] == head:
                        break
                latencies.append(time.perf_counter() - t0)
            watcher.terminate()
            watcher.wait()
            ms = [x * 1000 for x in latencies]
            rows += [
                (
                    f"write -> watcher line, median of {opts.writes}",
                    f"{statistics.median(ms):.1f} ms",
                ),
                (f"write -> watcher line, p99 of {opts.writes}", f"{_p99(ms):.1f} ms"),
            ]
    finally:
        subprocess.run([*GRITE, "daemon", "stop"], env=env, capture_output=True)
        shutil.rmtree(base, ignore_errors=True)
    print(f"grite agent benchmarks — {platform.python_version()}, {platform.machine()}, "
          f"{os.cpu_count()} CPUs\n")  # fmt: skip
    print("| measurement | result |")
    print("|---|---|")
    for name, value in rows:
        print(f"| {name} | {value} |")


if __name__ == "__main__":
    main()
