"""Claims and lease locks decided on the grite remote (issue 17), with real clones of a real
bare remote, checked with the real `git` CLI on the remote itself.

Each CLI test runs in both modes (in-process and through the daemon). Leases other than the
ones grite takes are written into the remote with git plumbing, in grite 0.5.3's format.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
from pathlib import Path
from typing import Any

from tests.conftest import Grite, assert_fsck_clean, git, serve_git_daemon

FOREIGN = "ee" * 16  # an actor of some other clone
HOUR_MS = 3600 * 1000


def lock_ref(resource: str) -> str:
    return "refs/grite/locks/" + hashlib.sha256(resource.encode()).hexdigest()[:16]


def plant_lease(
    repo: Path, resource: str, owner: str, expires_ms: int, parent: str | None = None
) -> str:
    """Store a lease commit as grite 0.5.3 writes it (no ref is moved); its id."""
    body = {"owner": owner, "nonce": "0" * 8, "expires_unix_ms": expires_ms, "resource": resource}

    def run(*args: str, stdin: str = "") -> str:
        env = {
            **os.environ,
            "GIT_AUTHOR_NAME": "grite",
            "GIT_AUTHOR_EMAIL": "grit@localhost",
            "GIT_COMMITTER_NAME": "grite",
            "GIT_COMMITTER_EMAIL": "grit@localhost",
        }
        return subprocess.run(
            ["git", *args], cwd=repo, input=stdin, capture_output=True, text=True, check=True,
            env=env,
        ).stdout.strip()  # fmt: skip

    blob = run("hash-object", "-w", "--stdin", stdin=json.dumps(body, indent=2))
    tree = run("mktree", stdin=f"100644 blob {blob}\tlock.json\n")
    return run("commit-tree", tree, "-m", f"Lock: {resource}", *(["-p", parent] if parent else []))


def remote_lease(remote: Path, resource: str) -> dict[str, Any] | None:
    proc = git(remote, "show", f"{lock_ref(resource)}:lock.json", check=False)
    return json.loads(proc.stdout) if proc.returncode == 0 else None


def two_clones(grite: Grite, tmp_path: Path, issues: int, url: str | None = None) -> Any:
    """A bare remote, clones a and b, `issues` ready issues created in a and synced to both."""
    remote = tmp_path / "remote.git"
    if not remote.exists():
        git(tmp_path, "init", "-q", "--bare", str(remote))
    clones = []
    for name in ("a", "b"):
        git(tmp_path, "clone", "-q", url or str(remote), str(tmp_path / name))
        clones.append(tmp_path / name)
    a, b = clones
    ids = [
        grite.json(a, "issue", "create", "--title", f"task {i}", "--label", "agent")["issue_id"]
        for i in range(issues)
    ]
    grite.json(a, "sync")
    grite.json(b, "sync")
    return remote, a, b, ids


def actor_of(grite: Grite, repo: Path) -> str:
    return str(grite.json(repo, "actor", "current")["actor_id"])


def claim(grite: Grite, repo: Path, *args: str) -> dict[str, Any]:
    return grite.json(repo, "issue", "ready", "--claim", *args)


def test_clones_claim_different_issues_without_syncing(grite: Grite, tmp_path: Path) -> None:
    remote, a, b, ids = two_clones(grite, tmp_path, 3)
    first = claim(grite, a)
    assert first["issue"]["issue_id"] == ids[0] and first["remote"] == "origin"
    lease = remote_lease(remote, f"issue:{ids[0]}")
    assert lease is not None and lease["owner"] == actor_of(grite, a)
    # b has not synced since: only the remote knows of a's lease, and b respects it.
    second = claim(grite, b)
    assert second["issue"]["issue_id"] == ids[1] and second["remote"] == "origin"
    assert remote_lease(remote, f"issue:{ids[1]}")["owner"] == actor_of(grite, b)  # type: ignore[index]
    human = grite.run(a, "issue", "ready", "--claim", check=True)
    assert f"Claimed issue {ids[2]}" in human.stdout and "on origin" in human.stdout
    code, err = grite.error(b, "issue", "ready", "--claim")
    assert code == 3 and err["code"] == "not_found"
    assert_fsck_clean(remote)


def test_remote_lease_is_written_in_the_0_5_3_format(grite: Grite, tmp_path: Path) -> None:
    remote, a, _b, ids = two_clones(grite, tmp_path, 1)
    got = claim(grite, a, "--ttl", "10m")
    resource = f"issue:{ids[0]}"
    ref = lock_ref(resource)
    commit = git(remote, "rev-parse", ref).stdout.strip()
    assert git(remote, "ls-tree", "--name-only", commit).stdout == "lock.json\n"
    raw = git(remote, "show", f"{commit}:lock.json").stdout
    body = json.loads(raw)
    assert list(body) == ["owner", "nonce", "expires_unix_ms", "resource"]
    assert raw == json.dumps(body, indent=2)
    assert body["resource"] == resource and body["expires_unix_ms"] == got["lease_expires_unix_ms"]
    header = git(remote, "cat-file", "-p", commit).stdout
    assert "\nauthor grite <grit@localhost> " in header and "parent" not in header
    assert header.rstrip().endswith(f"Lock: {resource}")
    # The clone keeps the same commit under its own ref and as the remote's tracking ref.
    assert git(a, "rev-parse", ref).stdout.strip() == commit
    tracking = ref.replace("refs/grite/", "refs/grite/remotes/origin/")
    assert git(a, "rev-parse", tracking).stdout.strip() == commit
    assert_fsck_clean(remote)


def test_lock_acquire_renew_release_are_decided_on_the_remote(grite: Grite, tmp_path: Path) -> None:
    remote, a, b, _ids = two_clones(grite, tmp_path, 1)
    got = grite.json(a, "lock", "acquire", "repo:deploy", "--ttl", "10m")
    assert got["action"] == "acquired" and got["remote"] == "origin"
    assert remote_lease(remote, "repo:deploy")["owner"] == actor_of(grite, a)  # type: ignore[index]
    code, err = grite.error(b, "lock", "acquire", "path:src/")
    assert code == 4 and err["code"] == "conflict" and actor_of(grite, a) in err["message"]
    code, _err = grite.error(b, "lock", "renew", "repo:deploy")
    assert code == 4
    code, _err = grite.error(b, "lock", "release", "repo:deploy")
    assert code == 4
    renewed = grite.json(a, "lock", "renew", "repo:deploy", "--ttl", "20m")
    assert renewed["action"] == "renewed"
    commit = git(remote, "rev-parse", lock_ref("repo:deploy")).stdout.strip()
    assert git(remote, "rev-parse", f"{commit}^").returncode == 0  # a child of the first lease
    released = grite.json(a, "lock", "release", "repo:deploy")
    assert released == {"resource": "repo:deploy", "released": True, "remote": "origin"}
    assert remote_lease(remote, "repo:deploy") is None
    assert grite.json(b, "lock", "acquire", "repo:deploy")["action"] == "acquired"
    # --local leaves the remote alone.
    mine = grite.json(a, "lock", "acquire", "path:docs/", "--local")
    assert "remote" not in mine and remote_lease(remote, "path:docs/") is None


def test_an_expired_lease_on_the_remote_is_taken_over_by_compare_and_swap(
    grite: Grite, tmp_path: Path
) -> None:
    remote, _a, b, ids = two_clones(grite, tmp_path, 2)
    resource = f"issue:{ids[0]}"
    stale = plant_lease(remote, resource, FOREIGN, expires_ms=1)
    git(remote, "update-ref", lock_ref(resource), stale)
    live = plant_lease(remote, "repo:other", FOREIGN, expires_ms=2**52)
    git(remote, "update-ref", lock_ref("repo:other"), live)
    code, err = grite.error(b, "lock", "acquire", "repo:other")
    assert code == 4 and FOREIGN in err["message"]
    got = claim(grite, b)
    assert got["issue"]["issue_id"] == ids[0]  # the oldest: its lease had expired
    commit = git(remote, "rev-parse", lock_ref(resource)).stdout.strip()
    assert git(remote, "rev-parse", f"{commit}^").stdout.strip() == stale
    assert remote_lease(remote, resource)["owner"] == actor_of(grite, b)  # type: ignore[index]


def test_lock_gc_removes_only_expired_leases_on_the_remote(grite: Grite, tmp_path: Path) -> None:
    remote, a, b, _ids = two_clones(grite, tmp_path, 1)
    grite.json(a, "lock", "acquire", "path:src/", "--ttl", "1h")
    stale = plant_lease(remote, "path:old/", FOREIGN, expires_ms=1)
    git(remote, "update-ref", lock_ref("path:old/"), stale)
    result = grite.json(b, "lock", "gc")
    assert result == {"removed": 1, "kept": 1, "remote": "origin"}
    assert remote_lease(remote, "path:old/") is None
    assert remote_lease(remote, "path:src/")["owner"] == actor_of(grite, a)  # type: ignore[index]


def test_unreachable_remote_is_an_error_that_names_local(grite: Grite, tmp_path: Path) -> None:
    _remote, a, _b, ids = two_clones(grite, tmp_path, 1)
    git(a, "remote", "set-url", "origin", str(tmp_path / "gone.git"))
    before = git(a, "for-each-ref", "refs/grite/locks").stdout
    for args in (("issue", "ready", "--claim"), ("lock", "acquire", "repo:x")):
        code, err = grite.error(a, *args)
        assert code == 5 and err["code"] == "environment"
        assert "--local" in err["message"] and "cannot reach remote 'origin'" in err["message"]
    assert git(a, "for-each-ref", "refs/grite/locks").stdout == before
    assert grite.json(a, "issue", "show", ids[0])["assignees"] == []
    local = claim(grite, a, "--local")
    assert local["issue"]["issue_id"] == ids[0] and local["remote"] is None
    human = grite.run(a, "issue", "ready", "--claim", "--local")
    assert human.returncode == 3  # the only issue is claimed: nothing silently went remote
    code, err = grite.error(a, "issue", "ready", "--local")
    assert code == 2 and "--claim" in err["message"]


def test_a_repository_without_a_remote_claims_in_its_own_refs(grite: Grite, git_repo: Path) -> None:
    x = grite.json(git_repo, "issue", "create", "--title", "x")["issue_id"]
    got = claim(grite, git_repo)
    assert got["issue"]["issue_id"] == x and got["remote"] is None
    assert git(git_repo, "rev-parse", lock_ref(f"issue:{x}")).returncode == 0
    assert "remote" not in grite.json(git_repo, "lock", "acquire", "repo:y")


def test_sync_remote_setting_names_the_arbiter(grite: Grite, tmp_path: Path) -> None:
    _remote, a, _b, ids = two_clones(grite, tmp_path, 2)
    up = tmp_path / "up.git"
    git(tmp_path, "init", "-q", "--bare", str(up))
    git(a, "remote", "add", "up", str(up))
    config = a / ".git" / "grite" / "config.toml"
    config.write_text(config.read_text() + '\n[sync]\nremote = "up"\n')
    got = claim(grite, a)
    assert got["remote"] == "up" and remote_lease(up, f"issue:{ids[0]}") is not None
    assert remote_lease(tmp_path / "remote.git", f"issue:{ids[0]}") is None
    assert grite.json(a, "sync")["remote"] == "up"  # also the default of `grite sync`
    config.write_text(config.read_text().replace('"up"', '"nowhere"'))
    code, err = grite.error(a, "issue", "ready", "--claim")
    assert code == 3 and "nowhere" in err["message"] and "git remote add" in err["message"]


def test_leases_of_other_clones_reach_lock_status_at_sync(grite: Grite, tmp_path: Path) -> None:
    remote, a, b, ids = two_clones(grite, tmp_path, 1)
    claim(grite, a)
    resource = f"issue:{ids[0]}"
    assert grite.json(b, "lock", "status")["total"] == 0
    synced = grite.json(b, "sync")
    assert synced["rejected_refs"] == []
    status = grite.json(b, "lock", "status")
    assert [(x["resource"], x["owner"], x["mine"]) for x in status["locks"]] == [
        (resource, actor_of(grite, a), False)
    ]
    # a releases on the remote; b's copy goes at its next sync, and b never pushes it back.
    grite.json(a, "lock", "release", resource)
    assert grite.json(b, "sync")["rejected_refs"] == []
    assert grite.json(b, "lock", "status")["total"] == 0
    assert remote_lease(remote, resource) is None


def race_hook(remote: Path, ref: str, commit: str) -> Path:
    """A pre-receive hook that, on the next push only, sets `ref` to `commit` first: as if
    another clone's push landed between the remote's advertisement and our update."""
    marker = remote / "raced"
    hook = remote / "hooks" / "pre-receive"
    hook.write_text(
        "#!/bin/sh\n"
        f"if [ ! -e '{marker}' ]; then touch '{marker}'; "
        # git forbids ref updates from the quarantine of incoming objects; ours is not there.
        f"env -u GIT_QUARANTINE_PATH git update-ref {ref} {commit}; fi\n"
        "exit 0\n"
    )
    hook.chmod(0o755)
    return marker


def test_the_remote_itself_checks_the_old_value(grite: Grite, tmp_path: Path) -> None:
    """Between the remote advertising a lease ref and updating it, another clone's lease
    lands: the remote refuses our update, and the claim moves on to the next issue, over
    git:// with a real `git daemon` and `git receive-pack`."""
    served = tmp_path / "served"
    served.mkdir()
    remote = served / "issues.git"
    git(tmp_path, "init", "-q", "--bare", str(remote))
    with serve_git_daemon(served) as port:
        _r, a, b, ids = two_clones(grite, tmp_path, 2, f"git://127.0.0.1:{port}/issues.git")
        resource = f"issue:{ids[0]}"
        theirs = plant_lease(remote, resource, FOREIGN, expires_ms=2**52)
        marker = race_hook(remote, lock_ref(resource), theirs)
        got = claim(grite, b)
        assert marker.exists()
        assert got["issue"]["issue_id"] == ids[1]
        assert git(remote, "rev-parse", lock_ref(resource)).stdout.strip() == theirs
        assert grite.json(b, "issue", "show", ids[0])["assignees"] == []
        # The same for a lock: the other lease wins, and acquire says who holds it.
        marker.unlink()
        theirs = plant_lease(remote, "path:deploy/", FOREIGN, expires_ms=2**52)
        marker = race_hook(remote, lock_ref("path:deploy/"), theirs)
        code, err = grite.error(a, "lock", "acquire", "path:deploy/")
        assert marker.exists()
        assert code == 4 and FOREIGN in err["message"]


def test_remote_lock_refs_that_are_not_leases_for_their_name_are_not_mirrored(
    grite: Grite, tmp_path: Path
) -> None:
    """A remote (hostile, or damaged) that files a repo-wide lease under another resource's
    ref name, or garbage under a lock ref, does not get it into this clone's locks: the lock
    policy and `lock status` never see it; a claim treats the issue's unreadable lease as
    expired and replaces it (on the remote, by compare-and-swap)."""
    remote, _a, b, ids = two_clones(grite, tmp_path, 1)
    resource = f"issue:{ids[0]}"
    misfiled = plant_lease(remote, "repo:global", FOREIGN, expires_ms=2**52)
    git(remote, "update-ref", lock_ref("path:src/"), misfiled)
    blob = subprocess.run(
        ["git", "hash-object", "-w", "--stdin"], cwd=remote, input="not a lease",
        capture_output=True, text=True, check=True,
    ).stdout.strip()  # fmt: skip
    tree = subprocess.run(
        ["git", "mktree"], cwd=remote, input=f"100644 blob {blob}\tlock.json\n",
        capture_output=True, text=True, check=True,
    ).stdout.strip()  # fmt: skip
    garbage = git(remote, "commit-tree", tree, "-m", "junk").stdout.strip()
    git(remote, "update-ref", lock_ref(resource), garbage)
    grite.json(b, "sync")
    assert git(b, "for-each-ref", "refs/grite/locks").stdout == ""
    assert grite.json(b, "lock", "status")["total"] == 0
    config = b / ".git" / "grite" / "config.toml"
    config.write_text('lock_policy = "require"\n' + config.read_text())
    grite.json(b, "issue", "comment", ids[0], "--body", "not blocked")
    got = claim(grite, b)
    assert got["issue"]["issue_id"] == ids[0]
    commit = git(remote, "rev-parse", lock_ref(resource)).stdout.strip()
    assert git(remote, "rev-parse", f"{commit}^").stdout.strip() == garbage
    assert remote_lease(remote, resource)["owner"] == actor_of(grite, b)  # type: ignore[index]


def test_a_lock_ref_left_locked_by_a_killed_writer_never_releases_the_lease(
    grite: Grite, tmp_path: Path
) -> None:
    """A process SIGKILLed while it recorded a lease it had just won on the remote leaves the
    clone's lock ref absent and its `.lock` file behind. The next looks cannot write that ref
    until the lock file ages out; they must not record the remote's lease as seen meanwhile
    (clone has none + remote holds what we saw = released here), or `grite sync` deletes a
    live lease on the remote."""
    remote, a, _b, ids = two_clones(grite, tmp_path, 2)
    won = claim(grite, a)
    resource = won["lease_resource"]
    ref = lock_ref(resource)
    tracking = ref.replace("refs/grite/", "refs/grite/remotes/origin/", 1)
    assert remote_lease(remote, resource) is not None
    # The state the kill leaves: neither the clone's ref nor the tracking ref written, and the
    # ref's lock file (fresh, as the kill just happened) still there.
    git(a, "update-ref", "-d", ref)
    git(a, "update-ref", "-d", tracking)
    lock_file = a / ".git" / f"{ref}.lock"
    lock_file.parent.mkdir(parents=True, exist_ok=True)
    lock_file.write_text("")
    for _ in range(2):  # each sync looks at the remote's leases, then pushes
        assert grite.json(a, "sync")["rejected_refs"] == []
    lease = remote_lease(remote, resource)
    assert lease is not None and lease["owner"] == won["lease_owner"], "the live lease was deleted"
    # Once the lock file is gone (aged out and broken, or its writer done), the clone follows.
    lock_file.unlink()
    grite.json(a, "sync")
    status = grite.json(a, "lock", "status")
    assert [(x["resource"], x["mine"]) for x in status["locks"]] == [(resource, True)]
    assert git(a, "rev-parse", ref).stdout.strip() == git(remote, "rev-parse", ref).stdout.strip()
