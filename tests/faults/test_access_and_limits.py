"""Scenarios 6 and 7: who may talk to the daemon, and what happens at resource limits.

Access: the daemon runs as the user it serves (spawned by that user's client, or a user
service), and refuses any peer whose uid differs (SO_PEERCRED), so it can open exactly the
repositories its client could open itself: it never reaches a path on behalf of someone else.
An unsafe runtime directory (a symlink, mode 0777) is refused and the CLI runs in-process.
Limits: a full disk gives a clear error and no half-written state; 100 open repositories stay
within MAX_RSS_100_REPOS_KB and idle workers are closed (their pydaemon.json files removed).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from grite.ipc import protocol
from grite.model.invocation import Invocation
from tests.conftest import TypedConnection
from tests.faults.conftest import (
    FALLBACK_MARK,
    STRICT,
    FaultEnv,
    assert_fsck_clean,
    assert_served,
    git,
    init_repo,
    rss_kb,
    wait_for,
)

OTHER_USER = "grite-fault-other"
MAX_RSS_100_REPOS_KB = 150 * 1024

_CONNECT_AS_OTHER = """
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.settimeout(10)
s.connect(sys.argv[1])
try:
    s.sendall(bytes.fromhex(sys.argv[2]))
    data = s.recv(65536)
except (ConnectionResetError, BrokenPipeError):
    data = b""
print("answer" if data else "closed")
"""


def _hello_frame() -> bytes:
    from grite.ipc import wire

    hello = protocol.Hello(
        protocol_version=protocol.PROTOCOL_VERSION, build_id=protocol.build_id(), pid=1
    )
    return wire.encode_frame(protocol.encode(hello))


def test_another_user_is_refused_by_the_peer_uid_check(fault_env: FaultEnv) -> None:
    if os.geteuid() != 0:
        pytest.skip("creating a second user needs root (CI runs as root)")
    if subprocess.run(["id", OTHER_USER], capture_output=True, check=False).returncode != 0:
        # check=False: a concurrent run may have created it first; `id` below is the check.
        subprocess.run(["useradd", "--no-create-home", OTHER_USER], check=False)
    subprocess.run(["id", OTHER_USER], capture_output=True, check=True)
    daemon = fault_env.start_daemon("--idle-timeout", "0")
    # Open the boundary that normally keeps other users out, for this test only.
    os.chmod(fault_env.base, 0o755)
    os.chmod(fault_env.paths.runtime_dir, 0o755)
    os.chmod(fault_env.paths.socket, 0o777)
    python = shutil.which("python3", path="/usr/bin:/bin") or "/usr/bin/python3"
    proc = subprocess.run(
        [
            "runuser",
            "-u",
            OTHER_USER,
            "--",
            python,
            "-c",
            _CONNECT_AS_OTHER,
            fault_env.paths.socket,
            _hello_frame().hex(),
        ],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
        cwd="/",
    )
    assert proc.stdout.strip() == "closed", proc.stdout + proc.stderr
    wait_for(lambda: "refused a connection from uid" in fault_env.daemon_log(), what="logged")
    assert daemon.poll() is None
    # Our own uid is still served.
    with TypedConnection.open(fault_env.paths.socket) as conn:
        assert isinstance(conn.request(protocol.Ping()), protocol.Result)


def _make_unsafe(runtime: Path, how: str) -> None:
    if how == "mode-0777":
        runtime.mkdir(mode=0o700)
        runtime.chmod(0o777)
    else:
        target = Path(tempfile.mkdtemp(prefix="gfl", dir="/tmp"))
        target.chmod(0o700)
        runtime.symlink_to(target)


@pytest.mark.parametrize("how", ["mode-0777", "symlink"])
def test_unsafe_runtime_dir_is_refused_and_the_cli_runs_in_process(
    fault_env: FaultEnv, how: str
) -> None:
    repo = init_repo(fault_env)
    fault_env.local(repo, "issue", "create", "--title", "known")
    expected = fault_env.run(repo, "--no-daemon", "issue", "list", "--json").stdout
    runtime = Path(fault_env.paths.runtime_dir)
    _make_unsafe(runtime, how)
    try:
        proc = fault_env.run(
            repo, "issue", "list", "--json", env=dict(fault_env.env, GRITE_DEBUG="1")
        )
        assert proc.returncode == 0 and proc.stdout == expected
        assert FALLBACK_MARK in proc.stderr and str(runtime) in proc.stderr, proc.stderr
        assert ("symlink" if how == "symlink" else "mode 777") in proc.stderr
        assert not fault_env.daemon_pids(), "a daemon was started in an unsafe directory"
        # Under the strict mode the same command fails, naming the cause.
        strict = fault_env.run(repo, "issue", "list", "--json", env=dict(fault_env.env, **STRICT))
        assert strict.returncode == 5, strict.stdout + strict.stderr
        error = json.loads(strict.stdout)["error"]
        assert error["code"] == "environment" and error["details"]["cause"] == "unsafe_runtime_dir"
        # And the user can see it happened: the fallback is on record.
        log = Path(fault_env.paths.fallback_log).read_text()
        assert "\tcli\tunsafe_runtime_dir\t" in log
    finally:
        if runtime.is_symlink():
            shutil.rmtree(runtime.resolve(), ignore_errors=True)
            runtime.unlink()


@pytest.mark.parametrize("where", ["not-a-repo"])
def test_daemon_gives_the_same_error_as_in_process_for_a_bad_cwd(
    fault_env: FaultEnv, where: str
) -> None:
    cwd = fault_env.base / "plain"
    cwd.mkdir()
    daemon_env = dict(fault_env.env, **STRICT)
    local_env = dict(fault_env.env, GRITE_NO_DAEMON="1")
    if where == "missing":
        # The client's cwd vanishes after it started: the daemon must not invent one.
        script = (
            "import os, sys, runpy; os.chdir(sys.argv[1]); os.rmdir(sys.argv[1]); "
            "sys.argv = ['grite', 'issue', 'list', '--json']; runpy.run_module('grite', "
            "run_name='__main__')"
        )
        results = []
        for env in (daemon_env, local_env):
            target = cwd / f"gone-{len(results)}"
            target.mkdir()
            results.append(
                subprocess.run(
                    [sys.executable, "-c", script, str(target)],
                    env=env,
                    capture_output=True,
                    text=True,
                    timeout=60,
                    check=False,
                    cwd=cwd,
                )
            )
    else:
        results = [
            fault_env.run(cwd, "issue", "list", "--json", env=e) for e in (daemon_env, local_env)
        ]
    via_daemon, local = results
    if where != "missing":
        assert_served(via_daemon)
    assert via_daemon.returncode == local.returncode != 0
    assert (
        json.loads(via_daemon.stdout)["error"]["code"] == json.loads(local.stdout)["error"]["code"]
    )


@pytest.fixture
def small_disk(fault_env: FaultEnv) -> Path:
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root (CI runs as root)")
    mount = fault_env.base / "disk"
    mount.mkdir()
    proc = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(mount)],
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        pytest.skip(f"this machine does not allow mounting a tmpfs: {proc.stderr.strip()}")
    try:
        yield mount  # type: ignore[misc]
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def test_full_disk_write_fails_cleanly_and_recovers(fault_env: FaultEnv, small_disk: Path) -> None:
    repo = init_repo(fault_env, parent=small_disk)
    fault_env.local(repo, "issue", "create", "--title", "before")
    head = git(repo, "rev-parse", "refs/grite/wal").stdout.strip()
    filler = small_disk / "filler"
    with open(filler, "wb") as f:
        try:
            while True:
                f.write(b"\0" * 65536)
                f.flush()
        except OSError:
            pass
    proc = fault_env.run(repo, "--no-daemon", "issue", "create", "--title", "no room", "--json")
    assert proc.returncode == 5, proc.stdout + proc.stderr
    error = json.loads(proc.stdout)["error"]
    assert error["code"] == "environment" and "disk space" in error["message"], error
    assert git(repo, "rev-parse", "refs/grite/wal").stdout.strip() == head
    filler.unlink()
    assert_fsck_clean(repo)
    data = fault_env.local(repo, "issue", "create", "--title", "after")
    assert git(repo, "rev-parse", "refs/grite/wal^").stdout.strip() == head
    titles = sorted(i["title"] for i in fault_env.local(repo, "issue", "list")["issues"])
    assert titles == ["after", "before"] and data["issue_id"]


def test_hundred_repositories_stay_bounded_and_idle_workers_close(fault_env: FaultEnv) -> None:
    daemon = fault_env.start_daemon("--idle-timeout", "0", "--worker-idle-seconds", "1")
    repos = []
    with TypedConnection.open(fault_env.paths.socket) as conn:
        for n in range(100):
            repo = fault_env.base / "many" / f"r{n}"
            repo.mkdir(parents=True)
            git(repo, "init", "-q")
            for argv in (["init", "--no-agents-md"], ["issue", "create", "--title", f"t{n}"]):
                inv = Invocation(
                    argv=argv,
                    cwd=str(repo),
                    env={"TZ": "UTC"},
                    request_id=os.urandom(16),
                    now_ms=time.time_ns() // 1_000_000,
                )
                final = conn.request(protocol.RunArgv(invocation=inv))
                assert isinstance(final, protocol.Result), final
                assert final.data.outcome.exit_code == 0, final.data.outcome  # type: ignore[union-attr]
            repos.append(repo)
        status = conn.request(protocol.DaemonStatus())
    assert isinstance(status, protocol.Result)
    # Opened once each (some may already have been swept as idle: the sweep runs every 10 s).
    assert fault_env.daemon_log().count("opened repository") == 100
    assert status.data.repositories  # type: ignore[union-attr]
    rss = rss_kb(daemon.pid)
    print(f"\n100 repositories open: daemon RSS {rss} kB (bound {MAX_RSS_100_REPOS_KB} kB)")
    assert rss < MAX_RSS_100_REPOS_KB

    def open_count() -> int:
        with TypedConnection.open(fault_env.paths.socket) as c:
            result = c.request(protocol.DaemonStatus())
        assert isinstance(result, protocol.Result)
        return len(result.data.repositories)  # type: ignore[union-attr]

    # Idle workers are swept with the heartbeat (every 10 ticks of 1 s).
    wait_for(lambda: open_count() == 0, timeout=30, what="idle repositories closed")
    # The registry forgets a worker first, then closes it and removes its pydaemon.json.
    wait_for(
        lambda: not any((r / ".git" / "grite" / "pydaemon.json").exists() for r in repos),
        what="pydaemon.json files removed",
    )
