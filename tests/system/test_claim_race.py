"""Claims across clones (issue 17) with real processes against real remotes: every transport,
many processes racing on one remote, and the two-clone agent scenario of the issue.

The scenario is benchmarks/claim_race.py itself (the script that measured the issue's before
and after), shortened: two clones of a bare remote behind a real `git daemon`, two agent
processes per clone looping claim -> comment -> close, each clone syncing every second.
"""

from __future__ import annotations

import getpass
import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.conftest import GRITE, Grite, daemon_pids, git, serve_git_daemon
from tests.system.git_servers import serve_http_backend, serve_sshd

SCENARIO = Path(__file__).resolve().parents[2] / "benchmarks" / "claim_race.py"


def lock_ref(resource: str) -> str:
    return "refs/grite/locks/" + hashlib.sha256(resource.encode()).hexdigest()[:16]


@contextmanager
def serve(transport: str, served: Path, tmp_path: Path) -> Iterator[tuple[str, str | None]]:
    """(URL of served/issues.git over `transport`, core.sshCommand or None)."""
    remote = served / "issues.git"
    if transport == "path":
        yield str(remote), None
    elif transport == "file":
        yield f"file://{remote}", None
    elif transport == "git":
        with serve_git_daemon(served) as port:
            yield f"git://127.0.0.1:{port}/issues.git", None
    elif transport == "http":
        with serve_http_backend(served) as port:
            yield f"http://127.0.0.1:{port}/issues.git", None
    else:
        with serve_sshd(tmp_path / "ssh") as (port, command):
            yield f"ssh://{getpass.getuser()}@127.0.0.1:{port}{remote}", command


def clone(remote: Path, url: str, dest: Path, ssh_command: str | None = None) -> Path:
    git(dest.parent, "clone", "-q", str(remote), str(dest))
    git(dest, "remote", "set-url", "origin", url)
    if ssh_command:
        git(dest, "config", "core.sshCommand", ssh_command)
    return dest


@pytest.mark.parametrize("transport", ["path", "file", "git", "http", "ssh"])
def test_claims_hold_across_clones_over_each_transport(
    grite_local: Grite, tmp_path: Path, transport: str
) -> None:
    served = tmp_path / "served"
    served.mkdir()
    remote = served / "issues.git"
    git(tmp_path, "init", "-q", "--bare", str(remote))
    with serve(transport, served, tmp_path) as (url, ssh_command):
        a = clone(remote, url, tmp_path / "a", ssh_command)
        b = clone(remote, url, tmp_path / "b", ssh_command)
        ids = [grite_local.json(a, "issue", "create", "--title", f"t{i}")["issue_id"] for i in range(2)]  # fmt: skip
        grite_local.json(a, "sync")
        grite_local.json(b, "sync")
        first = grite_local.json(a, "issue", "ready", "--claim")
        second = grite_local.json(b, "issue", "ready", "--claim")
        assert [first["issue"]["issue_id"], second["issue"]["issue_id"]] == ids
        assert first["remote"] == second["remote"] == "origin"
        for got in (first, second):
            ref = lock_ref(got["lease_resource"])
            body = json.loads(git(remote, "show", f"{ref}:lock.json").stdout)
            assert body["owner"] == got["lease_owner"]
        code, _ = grite_local.error(b, "issue", "ready", "--claim")
        assert code == 3
        assert grite_local.json(a, "sync")["rejected_refs"] == []


BARRIER_HOOK = """#!/bin/sh
# Each push logs its commands, then waits (up to 20 s) until a second push is inside the
# remote too, so that two pushes that both saw the lease ref absent reach the ref update.
while read old new ref; do echo "$old $new $ref" >> '{log}'; done
touch '{base}/arrived.'$$
n=0
while [ "$(ls '{base}' | grep -c '^arrived\\.')" -lt 2 ] && [ $n -lt 400 ]; do
  sleep 0.05; n=$((n+1))
done
exit 0
"""


def start(repo: Path, env: dict[str, str], *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [*GRITE, *args, "--json"], cwd=repo, env=env, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True,
    )  # fmt: skip


def finish(procs: list[subprocess.Popen[str]]) -> list[tuple[int, dict[str, object]]]:
    out = []
    for proc in procs:
        stdout, stderr = proc.communicate(timeout=120)
        assert stdout.startswith("{"), stderr
        out.append((proc.returncode, json.loads(stdout)))
    return out


def test_many_processes_on_many_clones_race_on_one_remote(
    grite_local: Grite, tmp_path: Path
) -> None:
    """Eight processes, one per clone, take the same lease through one `git daemon`; a hook
    holds the first push inside the remote until a second one arrives, so the remote's own
    old-value check has to decide between pushes that both saw the ref absent. Then eight
    claimers race for five issues."""
    served = tmp_path / "served"
    served.mkdir()
    remote = served / "issues.git"
    git(tmp_path, "init", "-q", "--bare", str(remote))
    barrier = tmp_path / "barrier"
    barrier.mkdir()
    log = tmp_path / "pushes.log"
    hook = remote / "hooks" / "pre-receive"
    hook.write_text(BARRIER_HOOK.format(log=log, base=barrier))
    hook.chmod(0o755)
    env = grite_local.env
    with serve_git_daemon(served) as port:
        url = f"git://127.0.0.1:{port}/issues.git"
        clones = [clone(remote, url, tmp_path / f"c{i}") for i in range(8)]
        actors = {
            str(grite_local.json(c, "actor", "current")["actor_id"]): i
            for i, c in enumerate(clones)
        }
        results = finish([start(c, env, "lock", "acquire", "path:deploy/") for c in clones])
        winners = [i for i, (code, _doc) in enumerate(results) if code == 0]
        assert len(winners) == 1, results
        assert sorted(code for code, _doc in results) == [0] + [4] * 7
        ref = lock_ref("path:deploy/")
        creates = [ln for ln in log.read_text().splitlines() if ln.endswith(ref)]
        assert len([ln for ln in creates if ln.startswith("0" * 40)]) >= 2, creates
        owner = json.loads(git(remote, "show", f"{ref}:lock.json").stdout)["owner"]
        assert actors[owner] == winners[0]
        assert git(remote, "rev-list", "--count", ref).stdout.strip() == "1"

        hook.unlink()
        ids = [grite_local.json(clones[0], "issue", "create", "--title", f"t{i}")["issue_id"] for i in range(5)]  # fmt: skip
        grite_local.json(clones[0], "sync")
        for proc in [start(c, env, "sync") for c in clones[1:]]:
            assert proc.wait(120) == 0
        results = finish([start(c, env, "issue", "ready", "--claim") for c in clones])
    taken = [doc["data"]["issue"]["issue_id"] for code, doc in results if code == 0]  # type: ignore[index]
    assert sorted(taken) == sorted(ids)
    assert sorted(code for code, _doc in results) == [0] * 5 + [3] * 3


def run_scenario(tmp_path: Path, *args: str) -> dict[str, object]:
    proc = subprocess.run(
        [sys.executable, str(SCENARIO), "--json", "--workdir", str(tmp_path), *args],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    report: dict[str, object] = json.loads(proc.stdout)
    return report


@pytest.mark.parametrize("mode", ["daemon", "in-process"])
def test_two_clones_of_agents_never_work_the_same_issue(tmp_path: Path, mode: str) -> None:
    """Issue 17's scenario, shortened. Before the remote decided claims, the same script
    found two agents on most issues closed (108 of 115 in the issue's 40 s run)."""
    seconds = "12" if mode == "daemon" else "8"
    extra = ["--no-daemon"] if mode == "in-process" else []
    report = run_scenario(tmp_path, "--issues", "40", "--seconds", seconds, *extra)
    assert report["claims_acknowledged"], report  # the agents did work
    assert report["issues_worked_by_two_or_more_agents"] == 0, report
    assert report["issues_claim_acknowledged_twice"] == 0, report
    assert report["acknowledged_events_missing"] == 0, report
    assert report["acknowledged_events_duplicated"] == 0, report
    assert report["issues_closed"] == report["claims_acknowledged"], report
    assert set(report["claim_misses"]) <= {"not_found"}, report  # type: ignore[arg-type]
    assert report["claims_run_in_process_despite_the_daemon"] == 0, report


CLAIM_LOOP = """
import json, subprocess, sys
out = open(sys.argv[1], "a")
while True:
    p = subprocess.run([sys.executable, "-m", "grite", "issue", "ready", "--claim", "--json"],
                       capture_output=True, text=True)
    doc = json.loads(p.stdout) if p.stdout.startswith("{") else {}
    if doc.get("ok"):
        out.write(json.dumps(doc["data"]) + "\\n"); out.flush()
    elif (doc.get("error") or {}).get("code") == "not_found":
        break
"""


def test_claims_survive_the_daemon_being_killed(
    isolated_env: dict[str, str], tmp_path: Path
) -> None:
    """Six claim loops on two clones go through the daemon, which is SIGKILLed again and
    again; a claim cut off retries in-process with its request id and resumes its own lease.
    Every acknowledged claim has its own issue, its lease on the remote, and its assignment
    in the merged WAL exactly once."""
    grite = Grite(isolated_env, "local")
    remote = tmp_path / "remote.git"
    git(tmp_path, "init", "-q", "--bare", str(remote))
    a = clone(remote, str(remote), tmp_path / "a")
    b = clone(remote, str(remote), tmp_path / "b")
    lines = "".join(json.dumps({"type": "issue_create", "title": f"t{i}"}) + "\n" for i in range(24))  # fmt: skip
    grite.run(a, "batch", input=lines, check=True)
    grite.json(a, "sync")
    grite.json(b, "sync")
    env = {k: v for k, v in isolated_env.items() if k != "GRITE_NO_DAEMON"}
    logs = [tmp_path / f"loop{i}.log" for i in range(6)]
    loops = [
        subprocess.Popen([sys.executable, "-c", CLAIM_LOOP, str(log)], cwd=(a, b)[i % 2], env=env)
        for i, log in enumerate(logs)
    ]
    kills = 0
    while any(p.poll() is None for p in loops):
        acked = sum(len(x.read_text().splitlines()) for x in logs if x.exists())
        if acked >= 4 * (kills + 1) and kills < 4:
            for pid in daemon_pids(isolated_env["XDG_RUNTIME_DIR"]):
                os.kill(pid, signal.SIGKILL)
                kills += 1
        time.sleep(0.05)
    assert all(p.returncode == 0 for p in loops)
    assert kills >= 2
    claims = [json.loads(line) for x in logs for line in x.read_text().splitlines()]
    issues = [c["issue"]["issue_id"] for c in claims]
    assert len(issues) == len(set(issues)) == 24
    for _ in range(2):
        grite.json(a, "sync")
        grite.json(b, "sync")
    events = json.loads(grite.run(a, "export", "--format", "json", check=True).stdout)["events"]
    count: dict[str, int] = {}
    for e in events:
        count[e["event_id"]] = count.get(e["event_id"], 0) + 1
    for c in claims:
        assert [count.get(e, 0) for e in c["event_ids"]] == [1] * len(c["event_ids"]), c
        body = json.loads(git(remote, "show", f"{lock_ref(c['lease_resource'])}:lock.json").stdout)
        assert body["owner"] == c["lease_owner"]
