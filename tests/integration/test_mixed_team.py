"""A team that runs both grites: one clone used by our daemon and by grite 0.5.3's CLI, lock
refs taken by either, repository configs either accepts, and verify_signatures with 0.5.3
teammates whose dependency and context events are never signed.

0.5.3's side is rebuilt here from its source (https://github.com/neul-labs/grite), each piece
citing the file it follows, and its on-disk writes are made with the git CLI alone.
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
import subprocess
import time
from pathlib import Path

import pytest

from tests.conftest import Grite, git, wal_head
from tests.integration.test_context import _file_id, _teammate_commit

TEAMMATE = bytes(range(0x40, 0x50))

# -- the 0.5.3 CLI's daemon discovery ----------------------------------------------------------

# crates/libgrite-ipc/src/lock.rs: DaemonLock, deserialized by serde_json (unknown keys ignored,
# every field required with its type).
_DAEMON_LOCK_FIELDS = {
    "pid": int,
    "started_ts": int,
    "repo_root": str,
    "actor_id": str,
    "host_id": str,
    "ipc_endpoint": str,
    "lease_ms": int,
    "last_heartbeat_ts": int,
    "expires_ts": int,
}


def _connects(path: str) -> bool:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        try:
            s.connect(path)
        except OSError:
            return False
    return True


def rust_cli_route(git_dir: Path, env: dict[str, str]) -> str:
    """What grite 0.5.3's CLI decides before a routed command: "daemon" (it would speak rkyv
    to the socket it found), "blocked" (exit 5), or "no daemon" (it runs locally after trying
    to spawn its own grite-daemon).

    crates/grite/src/context.rs `execution_mode`, crates/grite/src/router.rs `route_command`,
    crates/grite/src/commands/daemon.rs `ensure_daemon_running`, crates/libgrite-ipc/src/lib.rs
    `default_socket_path`.
    """
    try:
        record = json.loads((git_dir / "grite" / "daemon.lock").read_text())
        if not all(isinstance(record.get(k), t) for k, t in _DAEMON_LOCK_FIELDS.items()):
            raise ValueError("not a DaemonLock")
    except (OSError, ValueError):
        record = None  # Ok(None) or Err(_): ExecutionMode::Local
    if record is not None and not time.time() * 1000 > record["expires_ts"]:
        return "daemon" if _connects(record["ipc_endpoint"]) else "blocked"
    runtime = env.get("XDG_RUNTIME_DIR")
    default = f"{runtime}/grite-daemon.sock" if runtime else f"/tmp/grite-daemon-{os.getuid()}.sock"
    return "daemon" if _connects(default) else "no daemon"


def test_a_0_5_3_cli_in_the_same_clone_concludes_no_daemon(
    isolated_env: dict[str, str], git_repo: Path
) -> None:
    grite = Grite(isolated_env, "daemon")
    grite.json(git_repo, "issue", "create", "--title", "served by our daemon")
    grite_dir = git_repo / ".git" / "grite"
    ours = json.loads((grite_dir / "pydaemon.json").read_text())
    assert ours["implementation"] == "grite-py" and _connects(ours["ipc_endpoint"])
    assert not (grite_dir / "daemon.lock").exists()
    assert rust_cli_route(git_repo / ".git", isolated_env) == "no daemon"

    # The check is real: the file our daemon used to write (0.5.3's fields, our socket) made
    # the 0.5.3 CLI speak rkyv to our daemon.
    legacy = {k: v for k, v in ours.items() if k in _DAEMON_LOCK_FIELDS}
    (grite_dir / "daemon.lock").write_text(json.dumps(legacy, indent=2))
    assert rust_cli_route(git_repo / ".git", isolated_env) == "daemon"


def test_a_0_5_3_daemons_lock_file_is_left_alone(
    isolated_env: dict[str, str], git_repo: Path
) -> None:
    # A 0.5.3 daemon serving the same clone keeps its daemon.lock; ours never touches it.
    theirs = {
        "pid": os.getpid(), "started_ts": 1, "repo_root": str(git_repo), "actor_id": "ab" * 16,
        "host_id": "h", "ipc_endpoint": "/nonexistent/grite-daemon.sock", "lease_ms": 30000,
        "last_heartbeat_ts": 1, "expires_ts": int(time.time() * 1000) + 600_000,
    }  # fmt: skip
    lock = git_repo / ".git" / "grite" / "daemon.lock"
    lock.parent.mkdir(parents=True)
    lock.write_text(json.dumps(theirs, indent=2))
    before = lock.read_bytes()
    grite = Grite(isolated_env, "daemon")
    grite.json(git_repo, "issue", "create", "--title", "x")
    grite.json(git_repo, "issue", "list")
    assert lock.read_bytes() == before


# -- lock refs ---------------------------------------------------------------------------------


def _teammate_lock(repo: Path, resource: str, ttl_ms: int = 600_000) -> None:
    """A lock taken by a 0.5.3 teammate (crates/libgrite-git/src/lock_manager.rs: ref
    refs/grite/locks/<sha256(resource)[:8] hex>, commit of tree lock.json)."""
    record = {
        "owner": TEAMMATE.hex(),
        "nonce": "00000000-0000-4000-8000-000000000000",
        "expires_unix_ms": int(time.time() * 1000) + ttl_ms,
        "resource": resource,
    }
    blob = subprocess.run(
        ["git", "hash-object", "-w", "--stdin"], cwd=repo, capture_output=True, check=True,
        input=json.dumps(record, indent=2).encode(),
    ).stdout.decode().strip()  # fmt: skip
    tree = subprocess.run(
        ["git", "mktree"], cwd=repo, capture_output=True, check=True,
        input=f"100644 blob {blob}\tlock.json\n".encode(),
    ).stdout.decode().strip()  # fmt: skip
    env = {**os.environ, "GIT_AUTHOR_NAME": "grite", "GIT_AUTHOR_EMAIL": "grit@localhost",
           "GIT_COMMITTER_NAME": "grite", "GIT_COMMITTER_EMAIL": "grit@localhost"}  # fmt: skip
    commit = subprocess.run(
        ["git", "commit-tree", tree, "-m", f"Lock: {resource}"], cwd=repo, env=env,
        capture_output=True, check=True,
    ).stdout.decode().strip()  # fmt: skip
    ref = "refs/grite/locks/" + hashlib.sha256(resource.encode()).hexdigest()[:16]
    git(repo, "update-ref", ref, commit)


def rust_check_lock(repo: Path, resource: str, me: str) -> list[str]:
    """grite 0.5.3's `check_lock`: unexpired locks of other owners whose resource
    `conflicts_with` the one asked about; issue resources compare as exact strings
    (crates/libgrite-core/src/lock.rs `Lock::conflicts_with`)."""
    refs = git(repo, "for-each-ref", "--format=%(refname)", "refs/grite/locks/").stdout.split()
    found = []
    for ref in refs:
        lock = json.loads(git(repo, "show", f"{ref}:lock.json").stdout)
        if time.time() * 1000 >= lock["expires_unix_ms"] or lock["owner"] == me:
            continue
        ns_a, ns_b = lock["resource"].split(":")[0], resource.split(":")[0]
        if "repo" in (ns_a, ns_b) or (ns_a == ns_b == "issue" and lock["resource"] == resource):
            found.append(lock["resource"])
    return found


def _setup(grite: Grite, repo: Path, policy: str) -> str:
    grite.json(repo, "init")
    config = repo / ".git" / "grite" / "config.toml"
    config.write_text(config.read_text() + f'lock_policy = "{policy}"\n')
    return grite.json(repo, "issue", "create", "--title", "shared")["issue_id"]  # type: ignore[no-any-return]


@pytest.mark.parametrize("typed", ["prefix", "PREFIX", "full"])
def test_a_teammates_lock_on_any_prefix_blocks_our_writes(
    grite: Grite, git_repo: Path, typed: str
) -> None:
    issue = _setup(grite, git_repo, "require")
    # 0.5.3 locks `issue:<id as typed>` (crates/grite/src/commands/issue.rs).
    as_typed = {"prefix": issue[:6], "PREFIX": issue[:8].upper(), "full": issue}[typed]
    _teammate_lock(git_repo, f"issue:{as_typed}")
    head = wal_head(git_repo)
    code, err = grite.error(git_repo, "issue", "comment", issue[:10], "--body", "hi")
    assert (code, err["code"]) == (4, "conflict") and f"issue:{as_typed}" in err["message"]
    code, err = grite.error(git_repo, "issue", "close", issue, "--lock")
    assert (code, err["code"]) == (4, "conflict")
    assert wal_head(git_repo) == head


def test_lock_writes_and_releases_and_a_0_5_3_teammate_sees_it(
    grite: Grite, git_repo: Path
) -> None:
    issue = _setup(grite, git_repo, "warn")
    grite.json(git_repo, "issue", "comment", issue[:8], "--body", "with --lock", "--lock")
    assert git(git_repo, "for-each-ref", "refs/grite/locks/").stdout == ""  # released after

    # Held by us: taken under the full id, which a 0.5.3 teammate's exact check sees when they
    # type the full id, and cannot see when they type a prefix (documented in grite(1)).
    me = grite.json(git_repo, "actor", "current")["actor_id"]
    grite.json(git_repo, "lock", "acquire", f"issue:{issue}")
    assert rust_check_lock(git_repo, f"issue:{issue}", TEAMMATE.hex()) == [f"issue:{issue}"]
    assert rust_check_lock(git_repo, f"issue:{issue[:8]}", TEAMMATE.hex()) == []
    # A lock we already held stays held after a --lock write.
    grite.json(git_repo, "issue", "label", "add", issue, "--label", "x", "--lock")
    assert grite.json(git_repo, "lock", "status")["locks"][0]["owner"] == me

    # Every issue write takes --lock (0.5.3's cli.rs), dep add/remove included.
    other = grite.json(git_repo, "issue", "create", "--title", "other")["issue_id"]
    for args in (
        ("issue", "update", issue, "--title", "t2"),
        ("issue", "reopen", issue),
        ("issue", "label", "remove", issue, "--label", "x"),
        ("issue", "assignee", "add", issue, "--user", "ann"),
        ("issue", "assignee", "remove", issue, "--user", "ann"),
        ("issue", "link", "add", issue, "--url", "https://example.com"),
        ("issue", "attachment", "add", issue, "--name", "f", "--sha256", "0" * 64, "--mime", "x/y"),
        ("issue", "dep", "add", other, "--target", issue),
        ("issue", "dep", "remove", other, "--target", issue),
        ("issue", "close", other),
    ):
        assert "event_id" in grite.json(git_repo, *args, "--lock")
    locks = grite.json(git_repo, "lock", "status")["locks"]
    assert [lk["resource"] for lk in locks] == [f"issue:{issue}"]


# -- configs -----------------------------------------------------------------------------------


def _config(repo: Path, **values: str) -> None:
    config = repo / ".git" / "grite" / "config.toml"
    lines = [ln for ln in config.read_text().splitlines() if ln.split(" =")[0] not in values]
    lines += [f'{k} = "{v}"' for k, v in values.items()]
    config.write_text("\n".join(lines) + "\n")


@pytest.mark.parametrize(
    ("value", "policy", "warned"),
    # crates/libgrite-core/src/lock.rs LockPolicy::from_str (lowercased; unknown -> None),
    # config.rs get_lock_policy (None -> Warn).
    [
        ("Warn", "warn", False),
        ("REQUIRE", "require", False),
        ("Off", "off", False),
        ("strict", "warn", True),
        ("", "warn", True),
    ],  # fmt: skip
)
def test_lock_policy_values_0_5_3_runs_with(
    grite: Grite, git_repo: Path, value: str, policy: str, warned: bool
) -> None:
    grite.json(git_repo, "init")
    _config(git_repo, lock_policy=value)
    proc = grite.run(git_repo, "lock", "status", "--json")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["data"]["policy"] == policy
    assert proc.stderr.count("lock_policy") == (1 if warned else 0), proc.stderr
    proc = grite.run(git_repo, "issue", "create", "--title", "t", "--json")
    assert proc.returncode == 0 and proc.stderr.count("lock_policy") == (1 if warned else 0)


@pytest.mark.parametrize(
    ("value", "require", "warned"),
    # crates/libgrite-core/src/signing.rs VerificationPolicy::from_str, config.rs
    # get_verification_policy (unknown -> Off); "reject" is the word of docs/data-model.md.
    [
        ("Require", True, False),
        ("reject", True, False),
        ("REJECT", True, False),
        ("WARN", False, False),
        ("sometimes", False, True),
    ],  # fmt: skip
)
def test_verify_signatures_values_0_5_3_runs_with(
    grite: Grite, git_repo: Path, value: str, require: bool, warned: bool
) -> None:
    grite.json(git_repo, "init")
    _config(git_repo, verify_signatures=value)
    proc = grite.run(git_repo, "issue", "create", "--title", "unsigned", "--json")
    # Our actor has no key: under require nothing is written (exit 2), never exit 5.
    assert proc.returncode == (2 if require else 0), proc.stdout + proc.stderr
    assert proc.stderr.count("verify_signatures") == (1 if warned else 0), proc.stderr


def test_require_accepts_a_listed_0_5_3_actors_unsigned_dep_and_context_events(
    grite: Grite, git_repo: Path
) -> None:
    grite.json(git_repo, "actor", "init", "--generate-key")
    signer = grite.json(git_repo, "actor", "list")["actors"][-1]["actor_id"]
    grite.json(git_repo, "actor", "use", signer)
    a = grite.json(git_repo, "issue", "create", "--title", "a")["issue_id"]
    b = grite.json(git_repo, "issue", "create", "--title", "b")["issue_id"]
    now = int(time.time() * 1000)
    # What a 0.5.3 teammate's `issue dep add` and `context index` write: unsigned.
    _teammate_commit(git_repo, TEAMMATE, now, 11, bytes.fromhex(a), [bytes.fromhex(b), "blocks"])
    payload = ["t.py", "python", [["teammate_fn", "function", 1, 2]], "1 functions", bytes(32)]
    _teammate_commit(git_repo, TEAMMATE, now, 13, _file_id("t.py"), payload)
    _config(git_repo, verify_signatures="require")
    # Refused as before (every read names the commit and the fix, nothing reaches the view).
    # Left out with a warning naming the fix, not a lockout: the rest stays readable.
    code, err = grite.error(git_repo, "context", "show", "t.py")
    assert code == 3 and err["code"] == "not_found"
    proc = grite.run(git_repo, "issue", "list", "--json")
    assert proc.returncode == 0 and proc.stderr.count("signature missing") == 2, proc.stderr
    assert "accept_unsigned_from" in proc.stderr and "'grite rebuild'" in proc.stderr

    config = git_repo / ".git" / "grite" / "config.toml"
    config.write_text(config.read_text() + f'accept_unsigned_from = ["{TEAMMATE.hex()}"]\n')
    grite.json(git_repo, "rebuild")  # the view reads the commits it left out again
    assert grite.json(git_repo, "context", "show", "t.py")["actor"] == TEAMMATE.hex()
    deps = grite.json(git_repo, "issue", "dep", "list", a)["deps"]
    assert [(d["issue_id"], d["dep_type"]) for d in deps] == [(b, "blocks")]

    # An unsigned issue event (0.5.3 signs those on its local path) is still refused.
    _teammate_commit(git_repo, TEAMMATE, now + 1, 3, bytes.fromhex(a), ["unsigned comment"])
    proc = grite.run(git_repo, "issue", "show", a, "--json")
    assert proc.returncode == 0 and "signature missing" in proc.stderr, proc.stderr
    assert json.loads(proc.stdout)["data"]["comment_count"] == 0
