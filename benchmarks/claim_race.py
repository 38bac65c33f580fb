"""The cross-clone claim race (issue 17): agents on different clones of one remote, all claiming.

    python3 benchmarks/claim_race.py [--issues 200] [--seconds 40] [--clones 2] [--agents 2]
        [--sync-interval 1] [--transport git|path|file] [--no-daemon] [--workdir DIR] [--json]

Builds a bare remote served by a real `git daemon` on 127.0.0.1 (or reached by path or
file://), `--clones` clones of it, and `--issues` ready issues labelled `agent`. Then, for
`--seconds`, runs `--agents` agent processes per clone, each looping
`grite issue ready --claim --label agent` -> `grite issue comment` -> `grite issue close` with
its own actor, while one process per clone runs `grite sync` every `--sync-interval` seconds.
Every command is the real `grite` CLI in its own process (through the per-user daemon unless
`--no-daemon`). At the end every clone syncs until they agree, and the report counts, from the
merged history:

- claims acknowledged (a `--claim` that exited 0), issues closed, claims per second;
- issues worked by two or more agents (two agents commented "worked by ..."), split into
  pairs across clones and pairs within one clone;
- issues whose claim was acknowledged to more than one agent;
- acknowledged assignment events missing from the merged WAL, or present more than once;
- the median and p90 wall time of one `--claim` command, and (daemon mode) how many claims
  fell back to running in-process.

Prints a summary (or one JSON object with `--json`). Runs in private directories (its own
daemon, stopped at the end, and its own git daemon); `--keep` leaves them for inspection.
The same script is the CI test of issue 17 (tests/system/test_claim_race.py, shortened) and
the engine of benchmarks/bench_claims.py.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
GRITE = [sys.executable, "-m", "grite"]
LABEL = "agent"


def private_env(base: Path, no_daemon: bool) -> dict[str, str]:
    """An environment with its own HOME, XDG dirs and daemon socket (a short /tmp path)."""
    runtime = Path(tempfile.mkdtemp(prefix="gr", dir="/tmp"))
    runtime.chmod(0o700)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GRITE_", "XDG_"))}
    env.update(
        HOME=str(base / "home"),
        XDG_RUNTIME_DIR=str(runtime),
        XDG_STATE_HOME=str(base / "state"),
        XDG_CONFIG_HOME=str(base / "config"),
        GIT_CONFIG_NOSYSTEM="1",
        PYTHONPATH=str(ROOT),
        TZ="UTC",
    )
    if no_daemon:
        env["GRITE_NO_DAEMON"] = "1"
    else:
        env["GRITE_DEBUG"] = "1"  # a command that ran in-process says so on stderr
    (base / "home").mkdir(parents=True, exist_ok=True)
    return env


def run(env: dict[str, str], cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*GRITE, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=120
    )


def run_json(env: dict[str, str], cwd: Path, *args: str) -> dict[str, Any]:
    proc = run(env, cwd, *args, "--json")
    doc = json.loads(proc.stdout) if proc.stdout.startswith("{") else {}
    if proc.returncode != 0 or not doc.get("ok"):
        raise RuntimeError(f"grite {' '.join(args)} failed: {proc.stdout}{proc.stderr}")
    return doc["data"]  # type: ignore[no-any-return]


def git(cwd: Path, *args: str) -> str:
    return subprocess.run(
        ["git", *args], cwd=cwd, capture_output=True, text=True, check=True, timeout=60
    ).stdout


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def git_daemon(base: Path) -> Iterator[int]:
    """A real `git daemon` serving `base` over git:// on 127.0.0.1, push enabled."""
    port = free_port()
    proc = subprocess.Popen(
        [
            "git",
            "daemon",
            "--export-all",
            "--enable=receive-pack",
            f"--base-path={base}",
            "--listen=127.0.0.1",
            f"--port={port}",
            "--reuseaddr",
            str(base),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        # `git daemon` runs git-daemon as a child: a session of its own lets us stop both.
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), 0.2).close()
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("git daemon did not start") from None
                time.sleep(0.02)
        yield port
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(10)


# -- the processes -------------------------------------------------------------------------


def agent_main(repo: Path, name: str, actor: str, stop_at: float, log: Path) -> None:
    """One agent: claim, comment, close, until the wall clock passes `stop_at`."""
    env = dict(os.environ)
    with open(log, "a", encoding="utf-8") as out:
        while time.time() < stop_at:
            t0 = time.perf_counter()
            proc = run(env, repo, "--actor", actor, "issue", "ready", "--claim", "--label", LABEL,
                       "--json")  # fmt: skip
            took = time.perf_counter() - t0
            if "grite: daemon not used" in proc.stderr:  # printed under GRITE_DEBUG=1
                out.write(json.dumps({"fallback": proc.stderr[-300:]}) + "\n")
            doc = json.loads(proc.stdout) if proc.stdout.startswith("{") else {}
            if proc.returncode == 0 and doc.get("ok"):
                data = doc["data"]
                issue = data["issue"]["issue_id"]
                rec = {"claim": issue, "event_ids": data["event_ids"], "seconds": took}
                out.write(json.dumps(rec) + "\n")
                out.flush()
                body = f"worked by {name}"
                t0 = time.perf_counter()
                done = run(env, repo, "--actor", actor, "issue", "comment", issue, "--body", body)
                t1 = time.perf_counter()
                closed = run(env, repo, "--actor", actor, "issue", "close", issue)
                rec = {"done": issue, "comment": done.returncode, "close": closed.returncode,
                       "work_seconds": [t1 - t0, time.perf_counter() - t1]}  # fmt: skip
                out.write(json.dumps(rec) + "\n")
                out.flush()
                continue
            error = doc.get("error") or {"code": "crash", "message": proc.stderr[-500:]}
            out.write(json.dumps({"miss": error.get("code"), "message": error.get("message"),
                                  "seconds": took}) + "\n")  # fmt: skip
            out.flush()
            time.sleep(0.2)


def syncer_main(repo: Path, interval: float, stop_at: float, log: Path) -> None:
    """`grite sync` every `interval` seconds until `stop_at`."""
    env = dict(os.environ)
    with open(log, "a", encoding="utf-8") as out:
        while time.time() < stop_at:
            t0 = time.monotonic()
            proc = run(env, repo, "sync", "--json")
            took = time.monotonic() - t0
            rec = {"sync": proc.returncode, "seconds": took, "out": proc.stdout[-300:]}
            out.write(json.dumps(rec) + "\n")
            out.flush()
            time.sleep(max(0.0, interval - (time.monotonic() - t0)))


# -- setup, run, tally -----------------------------------------------------------------------


def setup(base: Path, env: dict[str, str], opts: argparse.Namespace, url: str) -> list[Path]:
    clones = []
    for i in range(opts.clones):
        path = base / f"clone{i}"
        git(base, "clone", "-q", url, str(path))
        git(path, "config", "user.email", "race@example.com")
        git(path, "config", "user.name", "race")
        clones.append(path)
    first = clones[0]
    lines = "".join(
        json.dumps({"type": "issue_create", "title": f"task {i}", "labels": [LABEL]}) + "\n"
        for i in range(opts.issues)
    )
    made = subprocess.run([*GRITE, "batch"], cwd=first, env=env, input=lines, text=True,
                          capture_output=True, timeout=300)  # fmt: skip
    if made.returncode != 0 or len(made.stdout.splitlines()) != opts.issues:
        raise RuntimeError(f"creating issues failed: {made.stdout[-500:]}{made.stderr[-500:]}")
    run_json(env, first, "sync")
    for path in clones[1:]:
        run_json(env, path, "sync")
    return clones


def spawn(env: dict[str, str], *args: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, __file__, *args], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip


def race(base: Path, env: dict[str, str], opts: argparse.Namespace, clones: list[Path]) -> None:
    agents: list[tuple[Path, str, str]] = []
    for c, path in enumerate(clones):
        for a in range(opts.agents):
            name = f"c{c}a{a}"
            actor = run_json(env, path, "actor", "init", "--label", name)["actor_id"]
            agents.append((path, name, actor))
    stop_at = time.time() + opts.seconds
    procs = [
        spawn(env, "_agent", str(path), name, actor, str(stop_at), str(base / f"{name}.log"))
        for path, name, actor in agents
    ]
    procs += [
        spawn(
            env,
            "_sync",
            str(path),
            str(opts.sync_interval),
            str(stop_at),
            str(base / f"sync{c}.log"),
        )  # fmt: skip
        for c, path in enumerate(clones)
    ]
    try:
        for proc in procs:
            proc.wait(timeout=opts.seconds + 180)
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGKILL)
                proc.wait()


def converge(env: dict[str, str], clones: list[Path]) -> None:
    """Sync every clone until all WAL heads agree (bounded)."""
    for _ in range(5):
        for path in clones:
            run_json(env, path, "sync")
        heads = {git(p, "rev-parse", "refs/grite/wal").strip() for p in clones}
        if len(heads) == 1:
            return
    raise RuntimeError("the clones did not converge after 5 rounds of sync")


def tally(base: Path, env: dict[str, str], opts: argparse.Namespace, clones: list[Path]) -> dict[str, Any]:  # fmt: skip
    claims: list[dict[str, Any]] = []
    misses: dict[str, int] = {}
    fallbacks = 0
    for log in sorted(base.glob("c*a*.log")):
        agent = log.stem
        for line in log.read_text().splitlines():
            rec = json.loads(line)
            if "claim" in rec:
                claims.append({**rec, "agent": agent})
            elif "miss" in rec:
                misses[rec["miss"]] = misses.get(rec["miss"], 0) + 1
            elif "fallback" in rec:
                fallbacks += 1
    export = json.loads(run(env, clones[0], "export", "--format", "json").stdout)
    events = export["events"]
    seen: dict[str, int] = {}
    for e in events:
        seen[e["event_id"]] = seen.get(e["event_id"], 0) + 1
    workers: dict[str, set[str]] = {}
    for e in events:
        body = (e.get("kind") or {}).get("CommentAdded", {}).get("body")
        if isinstance(body, str) and body.startswith("worked by "):
            workers.setdefault(e["issue_id"], set()).add(body[len("worked by ") :])
    double = {i: sorted(w) for i, w in workers.items() if len(w) > 1}
    cross = {i: w for i, w in double.items() if len({a.split("a")[0] for a in w}) > 1}
    per_issue: dict[str, int] = {}
    for c in claims:
        per_issue[c["claim"]] = per_issue.get(c["claim"], 0) + 1
    ack_ids = [eid for c in claims for eid in c["event_ids"]]
    closed = sum(1 for i in export["issues"] if i.get("state") == "closed")
    secs = sorted(c["seconds"] for c in claims)
    return {
        "clones": opts.clones,
        "agents_per_clone": opts.agents,
        "issues": opts.issues,
        "seconds": opts.seconds,
        "transport": opts.transport,
        "daemon": not opts.no_daemon,
        "claims_acknowledged": len(claims),
        "claims_per_second": len(claims) / opts.seconds,
        "issues_closed": closed,
        "issues_worked_by_two_or_more_agents": len(double),
        "of_which_across_clones": len(cross),
        "of_which_within_one_clone": len(double) - len(cross),
        "issues_claim_acknowledged_twice": sum(1 for n in per_issue.values() if n > 1),
        "acknowledged_events_missing": sum(1 for x in ack_ids if seen.get(x, 0) == 0),
        "acknowledged_events_duplicated": sum(1 for x in ack_ids if seen.get(x, 0) > 1),
        "claim_misses": misses,
        "claims_run_in_process_despite_the_daemon": fallbacks,
        "claim_seconds_median": statistics.median(secs) if secs else None,
        "claim_seconds_p90": secs[int(0.9 * (len(secs) - 1))] if secs else None,
        "double_worked_examples": dict(list(double.items())[:5]),
    }


def scenario(opts: argparse.Namespace) -> dict[str, Any]:
    workdir = Path(opts.workdir or tempfile.gettempdir())
    workdir.mkdir(parents=True, exist_ok=True)
    base = Path(tempfile.mkdtemp(prefix="claim-race-", dir=workdir))
    env = private_env(base, opts.no_daemon)
    served = base / "served"
    served.mkdir()
    git(served, "init", "-q", "--bare", "issues.git")
    try:
        with git_daemon(served) as port:
            url = {
                "git": f"git://127.0.0.1:{port}/issues.git",
                "path": str(served / "issues.git"),
                "file": f"file://{served / 'issues.git'}",
            }[opts.transport]
            clones = setup(base, env, opts, url)
            race(base, env, opts, clones)
            converge(env, clones)
            report = tally(base, env, opts, clones)
            report["workdir"] = str(base)
            return report
    finally:
        subprocess.run([*GRITE, "daemon", "stop"], env=env, capture_output=True, timeout=60)
        shutil.rmtree(env["XDG_RUNTIME_DIR"], ignore_errors=True)
        if not opts.keep:
            shutil.rmtree(base, ignore_errors=True)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    p.add_argument("--issues", type=int, default=200)
    p.add_argument("--seconds", type=float, default=40.0)
    p.add_argument("--clones", type=int, default=2)
    p.add_argument("--agents", type=int, default=2, help="agents per clone")
    p.add_argument("--sync-interval", type=float, default=1.0)
    p.add_argument("--transport", choices=("git", "path", "file"), default="git")
    p.add_argument("--no-daemon", action="store_true", help="every command in-process")
    p.add_argument("--workdir", help="where to make the repositories (default: TMPDIR)")
    p.add_argument("--keep", action="store_true", help="keep the repositories and logs")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    return p


def main(argv: list[str]) -> int:
    if argv[:1] == ["_agent"]:
        repo, name, actor, stop_at, log = argv[1:]
        agent_main(Path(repo), name, actor, float(stop_at), Path(log))
        return 0
    if argv[:1] == ["_sync"]:
        repo, interval, stop_at, log = argv[1:]
        syncer_main(Path(repo), float(interval), float(stop_at), Path(log))
        return 0
    opts = parser().parse_args(argv)
    report = scenario(opts)
    if opts.json:
        print(json.dumps(report))
    else:
        for key, value in report.items():
            print(f"{key}: {value}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
