"""`grite issue ready [--claim]` in both modes: the ready queue and its atomic claim."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from tests.conftest import GRITE, Grite


def _create(grite: Grite, repo: Path, title: str, *labels: str) -> str:
    args = ["issue", "create", "--title", title]
    for label in labels:
        args += ["--label", label]
    return str(grite.json(repo, *args)["issue_id"])


def test_ready_lists_open_unblocked_issues_oldest_first(grite: Grite, git_repo: Path) -> None:
    a = _create(grite, git_repo, "a", "x")
    b = _create(grite, git_repo, "b")
    c = _create(grite, git_repo, "c", "x")
    d = _create(grite, git_repo, "d")
    grite.json(git_repo, "issue", "dep", "add", b, "--target", a)  # b waits for a
    grite.json(git_repo, "issue", "dep", "add", a, "--target", c, "--type", "blocks")
    grite.json(git_repo, "issue", "close", d)
    ready = grite.json(git_repo, "issue", "ready")
    assert [r["issue_id"] for r in ready["issues"]] == [a]
    assert ready["order"] == "created_ts,issue_id"
    grite.json(git_repo, "issue", "close", a)
    assert [r["issue_id"] for r in grite.json(git_repo, "issue", "ready")["issues"]] == [b, c]
    labeled = grite.json(git_repo, "issue", "ready", "--label", "x")
    assert [r["issue_id"] for r in labeled["issues"]] == [c]
    human = grite.run(git_repo, "issue", "ready")
    assert human.returncode == 0 and "2 ready" in human.stdout


def test_claim_takes_each_ready_issue_once_then_reports_none(grite: Grite, git_repo: Path) -> None:
    first = _create(grite, git_repo, "first")
    second = _create(grite, git_repo, "second")
    actor = grite.json(git_repo, "actor", "current")["actor_id"]
    one = grite.json(git_repo, "issue", "ready", "--claim")
    # The handle: git's user.name ("Test") and the id's first 8 hex digits (issue 16).
    assert one["issue"]["issue_id"] == first and one["issue"]["assignees"] == [f"test-{actor[:8]}"]
    assert one["lease_resource"] == f"issue:{first}" and one["lease_owner"] == actor
    locks = grite.run(git_repo, "lock", "status", "--json")
    if locks.returncode == 0:  # the lock commands exist: the lease is visible there
        assert f"issue:{first}" in locks.stdout
    two = grite.json(git_repo, "issue", "ready", "--claim", "--ttl", "10m")
    assert two["issue"]["issue_id"] == second and two["skipped"] == 1
    code, err = grite.error(git_repo, "issue", "ready", "--claim")
    assert code == 3 and err["code"] == "not_found"
    assert "already claimed" in err["message"]


def test_twenty_concurrent_claimers_get_twenty_different_issues(
    grite: Grite, git_repo: Path
) -> None:
    batch = "".join(
        json.dumps({"type": "issue_create", "title": f"t{i}"}) + "\n" for i in range(20)
    )
    made = grite.run(git_repo, "batch", input=batch, check=True)
    assert len(made.stdout.splitlines()) == 20
    procs = [
        subprocess.Popen(
            [*GRITE, "issue", "ready", "--claim", "--json"],
            cwd=git_repo,
            env=grite.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(20)
    ]
    claimed = []
    for proc in procs:
        out, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, out + err
        if grite.mode == "daemon":
            assert "daemon not used" not in err
        claimed.append(json.loads(out)["data"]["issue"]["issue_id"])
    assert len(set(claimed)) == 20
    assert grite.json(git_repo, "issue", "ready")["total"] == 20  # still open, now assigned
    code, _ = grite.error(git_repo, "issue", "ready", "--claim")
    assert code == 3
