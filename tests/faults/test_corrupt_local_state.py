"""Scenario 3: corrupt local state (view database, config files, daemon lock and pid files).

Everything local is either a cache of the WAL (the view: rebuilt) or a small file grite can
replace (pydaemon.json, daemon.pid) or must not guess (config files: the error names the file and
says what to do). In every case nothing that is in the WAL is lost: the issue list before and
after is compared, in-process and through a real daemon.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from tests.faults.conftest import STRICT, FaultEnv, assert_served, init_repo, wal_event_counts


def _env(fenv: FaultEnv, mode: str) -> dict[str, str]:
    if mode == "local":
        return dict(fenv.env, GRITE_NO_DAEMON="1")
    return dict(fenv.env, **STRICT)


def _json(fenv: FaultEnv, repo: Path, mode: str, *args: str) -> tuple[int, dict[str, object]]:
    proc = fenv.run(repo, *args, "--json", env=_env(fenv, mode))
    assert_served(proc)
    return proc.returncode, json.loads(proc.stdout)


def _populated(fenv: FaultEnv) -> tuple[Path, str]:
    repo = init_repo(fenv)
    for n in range(3):
        fenv.local(repo, "issue", "create", "--title", f"issue {n}", "--label", "x")
    issue = fenv.local(repo, "issue", "list")["issues"][0]["issue_id"]
    fenv.local(repo, "issue", "comment", issue, "--body", "kept")
    return repo, fenv.local(repo, "issue", "list", "--state", "all", "--json")


def _listing(fenv: FaultEnv, repo: Path, mode: str) -> object:
    code, doc = _json(fenv, repo, mode, "issue", "list", "--state", "all")
    assert code == 0, doc
    return doc["data"]


def _garbage(path: Path) -> None:
    path.write_bytes(b"this is not sqlite\0" * 200)


def _truncate(path: Path) -> None:
    size = path.stat().st_size
    with open(path, "r+b") as f:
        f.truncate(size // 3)


def _delete_view(path: Path) -> None:
    shutil.rmtree(path.parent)


@pytest.mark.parametrize("mode", ["local", "daemon"])
@pytest.mark.parametrize("damage", [_garbage, _truncate, _delete_view])
def test_damaged_view_is_rebuilt_from_the_wal(fault_env: FaultEnv, mode: str, damage) -> None:  # type: ignore[no-untyped-def]
    repo, before = _populated(fault_env)
    events_before = wal_event_counts(repo)
    damage(repo / ".git" / "grite" / "view" / "cache.db")
    assert _listing(fault_env, repo, mode) == before
    # Writes work on the rebuilt view, and the WAL holds everything it held.
    code, doc = _json(fault_env, repo, mode, "issue", "create", "--title", "after")
    assert code == 0, doc
    after = wal_event_counts(repo)
    assert all(after[e] == 1 for e in events_before)
    assert len(after) == len(events_before) + 1


def test_view_damaged_under_a_running_daemon_is_rebuilt(fault_env: FaultEnv) -> None:
    repo, before = _populated(fault_env)
    assert _listing(fault_env, repo, "daemon") == before  # the daemon now holds the view open
    _garbage(repo / ".git" / "grite" / "view" / "cache.db")
    fault_env.local(repo, "issue", "create", "--title", "written while damaged")
    code, doc = _json(fault_env, repo, "daemon", "issue", "list", "--state", "all")
    assert code == 0, doc
    titles = sorted(i["title"] for i in doc["data"]["issues"])  # type: ignore[index]
    assert titles == sorted([*(i["title"] for i in before["issues"]), "written while damaged"])  # type: ignore[index]


@pytest.mark.parametrize("mode", ["local", "daemon"])
def test_corrupt_repo_config_names_the_file_and_the_fix(fault_env: FaultEnv, mode: str) -> None:
    repo, before = _populated(fault_env)
    config = repo / ".git" / "grite" / "config.toml"
    saved = config.read_bytes()
    config.write_text("default_actor = = [\n")
    code, doc = _json(fault_env, repo, mode, "issue", "create", "--title", "x")
    assert code == 5, doc
    error = doc["error"]
    assert error["code"] == "environment"  # type: ignore[index]
    assert str(config) in error["message"] and "fix or delete it" in error["message"]  # type: ignore[index]
    config.write_bytes(saved)
    assert _listing(fault_env, repo, mode) == before


@pytest.mark.parametrize("mode", ["local", "daemon"])
def test_corrupt_actor_config_names_the_file_and_the_fix(fault_env: FaultEnv, mode: str) -> None:
    repo, before = _populated(fault_env)
    actor = fault_env.local(repo, "actor", "current")["actor_id"]
    config = repo / ".git" / "grite" / "actors" / actor / "config.toml"
    saved = config.read_bytes()
    config.write_bytes(b"\xff\xfe not toml")
    code, doc = _json(fault_env, repo, mode, "issue", "create", "--title", "x")
    assert code == 5, doc
    message = doc["error"]["message"]  # type: ignore[index]
    assert str(config) in message and "grite actor init" in message, message
    config.write_bytes(saved)
    assert _listing(fault_env, repo, mode) == before


@pytest.mark.parametrize(
    "junk",
    [b"", b"{not json", b'{"pid": 1, "expires_ts": "soon"}', bytes(range(256)) * 2],
    ids=["empty", "truncated", "wrong-types", "binary"],
)
def test_corrupt_repo_daemon_file_is_replaced(fault_env: FaultEnv, junk: bytes) -> None:
    repo, before = _populated(fault_env)
    lock = repo / ".git" / "grite" / "pydaemon.json"
    lock.write_bytes(junk)
    assert _listing(fault_env, repo, "local") == before
    assert _listing(fault_env, repo, "daemon") == before
    record = json.loads(lock.read_text())
    assert record["pid"] == fault_env.daemon_pid()


@pytest.mark.parametrize("junk", [b"", b"\x00" * 64, b'{"pid": "x"}', b'{"pid": 1}'])
def test_corrupt_runtime_pid_and_lock_files_do_not_block_the_daemon(
    fault_env: FaultEnv, junk: bytes
) -> None:
    repo, before = _populated(fault_env)
    runtime = Path(fault_env.paths.runtime_dir)
    runtime.mkdir(mode=0o700, parents=True, exist_ok=True)
    Path(fault_env.paths.pid_file).write_bytes(junk)
    Path(fault_env.paths.lock_file).write_bytes(junk)
    # A stale socket file (nothing listening) left by a crashed daemon.
    Path(fault_env.paths.socket).write_bytes(b"")
    assert _listing(fault_env, repo, "daemon") == before
    pid = fault_env.daemon_pid()
    assert pid is not None, "the new daemon did not replace the pid file"
    status = fault_env.run(repo, "daemon", "status", "--json")
    assert status.returncode == 0, status.stdout + status.stderr
    assert json.loads(status.stdout)["data"]["pid"] == pid
