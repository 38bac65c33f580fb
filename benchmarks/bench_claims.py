"""Claim throughput and latency across clones vs within one clone (issue 17).

    python3 benchmarks/bench_claims.py [--issues 150] [--agents 4] [--seconds 30]
        [--workdir DIR]

One bare remote behind a real `git daemon` on 127.0.0.1, two clones of it, and `--agents`
agent processes, each with its own actor and one `grite.Client` (through the per-user daemon;
a run that fell back in-process fails). Each agent calls `claim()` in a loop until no issue
is left or `--seconds` pass, timing every call. Three configurations, in the same run, each
on its own fresh set of `--issues` issues:

- one clone, `claim(local=True)`: the clone-local claim (the baseline, as before issue 17);
- one clone, claims decided on the remote;
- two clones (agents split between them), claims decided on the remote.

Prints claims per second (all agents together), the median and p90 latency of one claim,
and the ratios of the remote configurations to the baseline: the rate ratio (target >= 0.70
for two clones) and the latency added per claim. Timings are wall clock on this machine.
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
from benchmarks.claim_race import GRITE, git, git_daemon, private_env, run_json  # noqa: E402
from grite.model.errors import NotFound  # noqa: E402


def agent_main(repo: str, actor: str, label: str, local: bool, stop_at: float, out: str) -> None:
    """One agent: claim until nothing is left or the clock passes `stop_at`; writes its
    latencies and the time its last claim returned to `out`."""
    latencies = []
    end = time.time()
    with grite.Client(repo, actor=actor, environ=dict(os.environ)) as g:
        while time.time() < stop_at:
            t0 = time.perf_counter()
            try:
                g.claim(labels=[label], local=local)
            except NotFound:
                break
            latencies.append(time.perf_counter() - t0)
            end = time.time()
        via_daemon = g.via_daemon
    doc = {"latencies": latencies, "via_daemon": via_daemon, "end": end}
    Path(out).write_text(json.dumps(doc))


def configuration(
    base: Path,
    env: dict[str, str],
    repos: list[Path],
    label: str,
    local: bool,
    opts: argparse.Namespace,
) -> dict[str, float]:
    agents = []
    for i in range(opts.agents):
        repo = repos[i % len(repos)]
        actor = run_json(env, repo, "actor", "init", "--label", f"{label}-{i}")["actor_id"]
        agents.append((repo, actor, base / f"{label}-{i}.json"))
    start = time.time() + 2.0  # every agent has started (and imported grite) by then
    stop_at = start + opts.seconds
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                __file__,
                "_agent",
                str(repo),
                actor,
                label,
                str(int(local)),
                str(start),
                str(stop_at),
                str(out),
            ],
            env=env,
        )  # fmt: skip
        for repo, actor, out in agents
    ]
    for proc in procs:
        if proc.wait(timeout=opts.seconds + 120) != 0:
            raise RuntimeError(f"an agent of {label} failed")
    results = [json.loads(out.read_text()) for _repo, _actor, out in agents]
    if not all(r["via_daemon"] for r in results):
        raise RuntimeError(f"{label}: an agent ran in-process; the benchmark needs the daemon")
    latencies = sorted(x for r in results for x in r["latencies"])
    ends = [r["end"] for r in results]
    elapsed = max(ends) - start
    return {
        "claims": len(latencies),
        "rate": len(latencies) / elapsed,
        "median_ms": statistics.median(latencies) * 1000,
        "p90_ms": latencies[int(0.9 * (len(latencies) - 1))] * 1000,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--issues", type=int, default=150)
    parser.add_argument("--agents", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--workdir", help="where to make the repositories (default: TMPDIR)")
    opts = parser.parse_args()
    workdir = Path(opts.workdir or tempfile.gettempdir())
    workdir.mkdir(parents=True, exist_ok=True)
    base = Path(tempfile.mkdtemp(prefix="bench-claims-", dir=workdir))
    env = private_env(base, no_daemon=False)
    env.pop("GRITE_DEBUG", None)
    served = base / "served"
    served.mkdir()
    git(served, "init", "-q", "--bare", "issues.git")
    configs = [("one clone, --local", "one-local", True, 1),
               ("one clone, remote decides", "one-remote", False, 1),
               ("two clones, remote decides", "two-remote", False, 2)]  # fmt: skip
    rows: dict[str, dict[str, float]] = {}
    try:
        with git_daemon(served) as port:
            url = f"git://127.0.0.1:{port}/issues.git"
            repos = [base / "a", base / "b"]
            for repo in repos:
                git(base, "clone", "-q", url, str(repo))
            lines = "".join(
                json.dumps({"type": "issue_create", "title": f"{label} {i}", "labels": [label]})
                + "\n"
                for _name, label, _local, _n in configs
                for i in range(opts.issues)
            )
            made = subprocess.run([*GRITE, "batch"], cwd=repos[0], env=env, input=lines,
                                  text=True, capture_output=True, timeout=600)  # fmt: skip
            if made.returncode != 0:
                raise RuntimeError(made.stderr[-2000:])
            run_json(env, repos[0], "sync")
            run_json(env, repos[1], "sync")
            for name, label, local, clones in configs:
                rows[name] = configuration(base, env, repos[:clones], label, local, opts)
    finally:
        subprocess.run([*GRITE, "daemon", "stop"], env=env, capture_output=True, timeout=60)
        shutil.rmtree(env["XDG_RUNTIME_DIR"], ignore_errors=True)
        shutil.rmtree(base, ignore_errors=True)
    baseline = rows[configs[0][0]]
    print(f"grite claim benchmark — {platform.python_version()}, {platform.machine()}, "
          f"{os.cpu_count()} CPUs, {opts.agents} agents, {opts.issues} issues per row, "
          "git daemon on 127.0.0.1\n")  # fmt: skip
    print("| configuration | claims | claims/s | vs one clone --local | median claim | p90 claim "
          "| added per claim (median) |")  # fmt: skip
    print("|---|---|---|---|---|---|---|")
    for name, row in rows.items():
        ratio = row["rate"] / baseline["rate"]
        added = row["median_ms"] - baseline["median_ms"]
        print(f"| {name} | {row['claims']:.0f} | {row['rate']:.1f} | {ratio:.2f}x | "
              f"{row['median_ms']:.1f} ms | {row['p90_ms']:.1f} ms | "
              f"{added:+.1f} ms ({row['median_ms'] / baseline['median_ms']:.2f}x) |")  # fmt: skip


if __name__ == "__main__":
    if sys.argv[1:2] == ["_agent"]:
        repo, actor, label, local, start, stop_at, out = sys.argv[2:]
        time.sleep(max(0.0, float(start) - time.time()))  # start all agents together
        agent_main(repo, actor, label, local == "1", float(stop_at), out)
    else:
        main()
