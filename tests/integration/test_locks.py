"""Lease locks on real repositories: conflicts between actors and between clones, path
overlap on acquire, TTLs, the lock.json layout, gc of expired locks, and the lock policy on
issue writes (warn prints, require refuses and writes nothing)."""

from __future__ import annotations

import json
from pathlib import Path

from grite.model.leases import LockRecord
from grite.storage.lease_refs import LockStore
from tests.conftest import Grite, git, make_repo, wal_head


def _two_actors(grite: Grite, repo: Path) -> tuple[str, str]:
    first = grite.json(repo, "actor", "current")["actor_id"]
    second = grite.json(repo, "actor", "init", "--label", "other")["actor_id"]
    return first, second


def _lock_refs(repo: Path) -> list[str]:
    out = git(repo, "for-each-ref", "--format=%(refname)", "refs/grite/locks").stdout
    return out.split()


def test_lock_conflicts_between_two_actors(grite: Grite, git_repo: Path) -> None:
    a, b = _two_actors(grite, git_repo)
    got = grite.json(git_repo, "lock", "acquire", "issue:abcd1234", "--ttl", "15m")
    assert (got["owner"], got["ttl_seconds"], got["action"]) == (a, 900, "acquired")
    code, err = grite.error(git_repo, "--actor", b, "lock", "acquire", "issue:abcd1234")
    assert code == 4 and err["code"] == "conflict"
    assert a in err["message"] and "expires in" in err["message"]
    code, err = grite.error(git_repo, "--actor", b, "lock", "release", "issue:abcd1234")
    assert code == 4 and a in err["message"]
    # Same owner re-acquiring refreshes the lease instead of failing.
    again = grite.json(git_repo, "lock", "acquire", "issue:abcd1234", "--ttl", "300")
    assert again["action"] == "refreshed" and again["ttl_seconds"] == 300
    status = grite.json(git_repo, "--actor", b, "lock", "status")
    assert status["total"] == 1 and status["locks"][0]["owner"] == a
    assert status["locks"][0]["mine"] is False and status["locks"][0]["expired"] is False
    assert grite.json(git_repo, "lock", "release", "issue:abcd1234")["released"] is True
    assert _lock_refs(git_repo) == []
    assert grite.json(git_repo, "--actor", b, "lock", "acquire", "issue:abcd1234")["owner"] == b


def test_overlapping_path_blocks_acquire(grite: Grite, git_repo: Path) -> None:
    a, b = _two_actors(grite, git_repo)
    grite.json(git_repo, "lock", "acquire", "path:src/")
    code, err = grite.error(git_repo, "--actor", b, "lock", "acquire", "path:src/main.rs")
    assert code == 4 and "path:src/" in err["message"] and a in err["message"]
    code, err = grite.error(git_repo, "--actor", b, "lock", "acquire", "repo:global")
    assert code == 4
    assert grite.json(git_repo, "--actor", b, "lock", "acquire", "path:tests/")["owner"] == b
    # A lock of one's own never blocks: the holder may lock inside its own path.
    assert grite.json(git_repo, "lock", "acquire", "path:src/lib.rs")["owner"] == a
    assert len(_lock_refs(git_repo)) == 3


def test_bad_ttl_and_resource_change_nothing(grite: Grite, git_repo: Path) -> None:
    for args, needle in (
        (("lock", "acquire", "path:src/", "--ttl", "abc"), "ttl"),
        (("lock", "acquire", "src/main.rs"), "namespace"),
        (("lock", "renew", "branch:main"), "namespace"),
    ):
        code, err = grite.error(git_repo, *args)
        assert code == 2 and err["code"] == "invalid_args" and needle in err["message"]
    assert _lock_refs(git_repo) == []


def test_lock_json_layout_is_the_reference_one(grite: Grite, git_repo: Path) -> None:
    got = grite.json(git_repo, "lock", "acquire", "repo:global", "--ttl", "2h")
    assert got["ref"] == "refs/grite/locks/4fa20104a646a633"
    text = git(git_repo, "show", f"{got['ref']}:lock.json").stdout
    assert list(json.loads(text)) == ["owner", "nonce", "expires_unix_ms", "resource"]
    assert text.startswith('{\n  "owner": ')
    log = git(git_repo, "log", "--format=%an <%ae>|%s", got["ref"]).stdout.strip()
    assert log == "grite <grit@localhost>|Lock: repo:global"
    renewed = grite.json(git_repo, "lock", "renew", "repo:global", "--ttl", "30s")
    assert renewed["action"] == "renewed" and renewed["ttl_seconds"] == 30
    # Renewing makes a child commit of the previous lease.
    assert git(git_repo, "rev-list", "--count", got["ref"]).stdout.strip() == "2"


def test_expired_locks_are_replaced_and_collected(grite: Grite, git_repo: Path) -> None:
    me = grite.json(git_repo, "actor", "current")["actor_id"]
    store = LockStore(str(git_repo / ".git"))
    for resource in ("path:old/", "path:gone/"):
        assert store.create(
            LockRecord(owner="ff" * 16, nonce="n", expires_unix_ms=1, resource=resource)
        )
    store.close()
    # An expired lock of another actor neither blocks nor needs its owner.
    assert grite.json(git_repo, "lock", "acquire", "path:old/sub")["owner"] == me
    assert grite.json(git_repo, "lock", "acquire", "path:old/")["action"] == "acquired"
    gc = grite.json(git_repo, "lock", "gc")
    assert gc == {"removed": 1, "kept": 2}
    assert len(_lock_refs(git_repo)) == 2


def test_locks_conflict_across_clones(grite_local: Grite, tmp_path: Path) -> None:
    origin = tmp_path / "origin.git"
    git(tmp_path, "init", "-q", "--bare", str(origin))
    one = make_repo(tmp_path / "one")
    two = make_repo(tmp_path / "two")
    for repo in (one, two):
        git(repo, "remote", "add", "origin", str(origin))
    holder = grite_local.json(one, "lock", "acquire", "path:src/", "--ttl", "1h")["owner"]
    git(one, "push", "-q", "origin", "refs/grite/locks/*:refs/grite/locks/*")
    git(two, "fetch", "-q", "origin", "refs/grite/locks/*:refs/grite/locks/*")
    other = grite_local.json(two, "actor", "current")["actor_id"]
    assert other != holder
    code, err = grite_local.error(two, "lock", "acquire", "path:src/app/main.py")
    assert code == 4 and holder in err["message"]
    status = grite_local.json(two, "lock", "status")
    assert [lk["owner"] for lk in status["locks"]] == [holder]
    # The other way round: a lock taken in clone two reaches clone one.
    grite_local.json(two, "lock", "acquire", "issue:abcdef01")
    git(two, "push", "-q", "origin", "refs/grite/locks/*:refs/grite/locks/*")
    git(one, "fetch", "-q", "origin", "refs/grite/locks/*:refs/grite/locks/*")
    code, err = grite_local.error(one, "lock", "acquire", "issue:abcdef01")
    assert code == 4 and other in err["message"]


def test_lock_policy_warn_prints_and_writes(grite: Grite, git_repo: Path) -> None:
    a, b = _two_actors(grite, git_repo)
    issue = grite.json(git_repo, "issue", "create", "--title", "locked")["issue_id"]
    grite.json(git_repo, "lock", "acquire", f"issue:{issue}")
    # Default policy warn: the write happens and stderr says who holds the lock.
    proc = grite.run(git_repo, "--actor", b, "issue", "comment", issue[:8], "--body", "hi")
    assert proc.returncode == 0, proc.stderr
    assert f"warning: issue:{issue} is locked by {a}" in proc.stderr
    quiet = grite.run(git_repo, "--actor", b, "--quiet", "issue", "close", issue[:8])
    assert quiet.returncode == 0 and "warning" not in quiet.stderr
    # Writes to another issue are not affected.
    other = grite.run(git_repo, "--actor", b, "issue", "create", "--title", "free")
    assert other.returncode == 0 and "warning" not in other.stderr


def test_lock_policy_require_refuses_and_writes_nothing(grite: Grite, git_repo: Path) -> None:
    a, b = _two_actors(grite, git_repo)
    issue = grite.json(git_repo, "issue", "create", "--title", "locked")["issue_id"]
    grite.json(git_repo, "lock", "acquire", f"issue:{issue}")
    config = git_repo / ".git" / "grite" / "config.toml"
    config.write_text(config.read_text() + 'lock_policy = "require"\n')
    before = wal_head(git_repo)
    code, err = grite.error(git_repo, "--actor", b, "issue", "close", issue[:8])
    assert code == 4 and "lock policy" in err["message"] and a in err["message"]
    code, err = grite.error(git_repo, "--actor", b, "issue", "label", "add", issue, "--label", "x")
    assert code == 4
    assert wal_head(git_repo) == before
    # The holder itself is never blocked by its own lock.
    assert grite.json(git_repo, "issue", "close", issue[:8])["state"] == "closed"
    # A repo: lock covers every issue, including new ones.
    grite.json(git_repo, "lock", "release", f"issue:{issue}")
    grite.json(git_repo, "lock", "acquire", "repo:global")
    code, err = grite.error(git_repo, "--actor", b, "issue", "create", "--title", "blocked")
    assert code == 4 and "repo:global" in err["message"]
    config.write_text(config.read_text().replace('"require"', '"off"'))
    proc = grite.run(git_repo, "--actor", b, "issue", "create", "--title", "allowed")
    assert proc.returncode == 0 and "warning" not in proc.stderr
