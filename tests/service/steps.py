"""What the service suite checks, once for each install kind (test_pip_install.py and
test_deb_install.py call these in order on one user and one installation).
"""

from __future__ import annotations

import json
import re
import subprocess
import time
from collections.abc import Callable
from typing import Any

from tests.service.conftest import ClientLoop, GriteUser, describe, wait_exit

ROUNDS = 10  # idle exits
PER_ROUND = 20  # commands between two idle exits: 200 in all
RESTARTS = 3  # `systemctl --user restart grite.service` under load
SOCKET_CYCLES = 2  # `systemctl --user stop grite.socket` + `start` under load
_EXIT_WAIT = 60.0


def wait_until(check: Callable[[], bool], what: str, timeout: float = 60) -> None:
    """Poll a service manager's state (which has no change notification we can wait on)."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


def manager_state(user: GriteUser) -> str:
    """What the manager says about grite, for assertion messages."""
    m = user.manager
    units = m.systemctl("status", "--no-pager", "grite.socket", "grite.service").stdout
    return f"{units}\n{m.journal('--unit=grite.service', '--unit=grite.socket', '-n', '60')}"


def process_state(user: GriteUser, pid: int) -> str:
    """A daemon process's command line and open files, the runtime directory and the self-bind
    log, for assertion messages."""
    parts = []
    for cmd in (
        ["ps", "-o", "pid,ppid,stat,lstart,args", "-p", str(pid)],
        ["ls", "-lai", f"{user.manager.runtime_dir}/grite"],
        ["ls", "-la", f"/proc/{pid}/fd"],
    ):
        out = subprocess.run(cmd, capture_output=True, text=True, check=False, timeout=10)
        parts.append(f"$ {' '.join(cmd)}\n{out.stdout}{out.stderr}")
    log = user.manager.home / ".local" / "state" / "grite" / "daemon.log"
    if log.exists():
        parts.append(f"{log}:\n" + "\n".join(log.read_text(errors="replace").splitlines()[-40:]))
    return "\n".join(parts) + "\n" + manager_state(user)


def service_status(user: GriteUser) -> str:
    return user.manager.systemctl("status", "--no-pager", "--lines=0", "grite.service").stdout


def first_command_starts_the_service(user: GriteUser) -> None:
    """The socket is listening, nothing runs; the first command starts grite.service."""
    m = user.manager
    assert m.systemctl("is-active", "grite.socket").stdout.strip() == "active"
    assert m.systemctl("is-active", "grite.service").stdout.strip() == "inactive"
    assert user.daemon_processes() == []
    user.ok("init", "--no-agents-md")
    assert m.systemctl("is-active", "grite.service").stdout.strip() == "active"
    status = user.status()
    assert status["mode"] == "systemd"
    assert status["pid"] == user.service_pid()
    text = service_status(user)
    assert "Active: active (running)" in text, text
    assert re.search(r"TriggeredBy: .*grite\.socket", text), text
    assert f"Main PID: {status['pid']}" in text, text
    # READY=1 carried a first STATUS=, which counts replace within a tick of the first request.
    wait_until(
        lambda: "requests served" in m.unit_property("grite.service", "StatusText"),
        "a STATUS= line with counts",
    )
    assert re.search(r'Status: "\d+ requests served, 1 repository open', service_status(user))


def commands_across_idle_exits(user: GriteUser, counts: dict[str, Any]) -> None:
    """ROUNDS x PER_ROUND commands; the daemon idles out after each round and the socket
    starts a new one for the next: no failure, no in-process fallback, every write once."""
    user.set_idle_timeout(1)
    m = user.manager
    pids: list[int] = []
    created = 0
    commands = 0
    for r in range(ROUNDS):
        user.ok("issue", "create", "--title", f"idle-{r}-0")
        created += 1
        pid = user.service_pid()
        assert pid and pid not in pids, f"round {r}: no new daemon ({pid}, earlier {pids})"
        pids.append(pid)
        for i in range(1, PER_ROUND):
            if i % 4 == 0:
                user.ok("issue", "create", "--title", f"idle-{r}-{i}")
                created += 1
            elif i % 4 == 1:
                user.ok("issue", "list", "--json")
            elif i % 4 == 2:
                user.ok("issue", "list", "--state", "all", "--search", f"idle-{r}")
            else:
                user.ok("issue", "list", "--limit", "3")
        commands += PER_ROUND
        assert wait_exit(pid, _EXIT_WAIT), f"round {r}: daemon {pid} did not idle out"
        wait_until(
            lambda: m.systemctl("is-active", "grite.service").stdout.strip() == "inactive",
            "grite.service to become inactive",
        )
        assert m.unit_property("grite.service", "Result") == "success"
        assert m.unit_property("grite.service", "ExecMainStatus") == "0"
        stopping = m.unit_property("grite.service", "StatusText")
        assert stopping.startswith("stopping: idle for 1 s; "), stopping
        assert m.systemctl("is-active", "grite.socket").stdout.strip() == "active"
    listed = user.ok("issue", "list", "--state", "all", "--search", "idle-", "--json")
    titles = [issue["title"] for issue in json.loads(listed.stdout)["data"]["issues"]]
    assert len(titles) == created == len(set(titles)), "a write was lost or applied twice"
    counts.update(commands=commands, idle_exits=len(pids), daemons=len(set(pids)))


def restarts_and_socket_cycles_under_load(user: GriteUser, counts: dict[str, Any]) -> None:
    """`systemctl --user restart grite.service` and `stop`/`start grite.socket` while two
    clients keep working: no command fails and none runs in-process."""
    m = user.manager
    user.ok("daemon", "status")
    with ClientLoop(user, threads=2, tag="restart") as loop:
        loop.wait_for(6)
        for _ in range(RESTARTS):
            old = user.service_pid()
            m.systemctl("restart", "grite.service", check=True)
            assert wait_exit(old, _EXIT_WAIT)
            loop.wait_for(6)
        for _ in range(SOCKET_CYCLES):
            m.systemctl("stop", "grite.socket", check=True)
            loop.wait_for(4)  # served meanwhile by a daemon the client spawned
            m.systemctl("start", "grite.socket", check=True)
            loop.wait_for(6)
    assert loop.failures == [], describe(loop.failures)
    # While grite.socket is stopped nothing listens: the first command then runs in-process
    # while a daemon starts in the background (a cold start, by design). A restart may reset a
    # connection the old instance had taken (the client retries once on the daemon, then runs
    # in-process with the same request id, so the write is still recorded once). Nothing else
    # may fall back, and no command may fail.
    cold = [o for o in loop.fallbacks if "daemon not used (cold_start:" in o.stderr]
    lost = [o for o in loop.fallbacks if "daemon not used (lost:" in o.stderr]
    others = [o for o in loop.fallbacks if o not in cold and o not in lost]
    assert others == [], f"{describe(others)}\n{manager_state(user)}"
    assert len(cold) <= 2 * SOCKET_CYCLES, describe(cold)
    assert len(lost) <= 2 * RESTARTS, f"{describe(lost)}\n{manager_state(user)}"
    # The spawned daemons gave the path back to the socket (they noticed it was taken over).
    main = user.service_pid()
    for pid in user.daemon_processes():
        if pid != main:
            assert wait_exit(pid, _EXIT_WAIT), (
                f"spawned daemon {pid} outlived the socket restart\n{process_state(user, pid)}"
            )
    assert user.status()["mode"] == "systemd"
    listed = user.ok("issue", "list", "--state", "all", "--search", "restart-", "--json")
    titles = [i["title"] for i in json.loads(listed.stdout)["data"]["issues"]]
    assert sorted(titles) == sorted(loop.created), "a write was lost or applied twice"
    counts.update(
        load_commands=len(loop.outcomes),
        restarts=RESTARTS,
        socket_cycles=SOCKET_CYCLES,
        load_failures=len(loop.failures),
        load_fallbacks=len(others),
        load_cold_starts=len(cold),
        load_lost_in_restart=len(lost),
    )


def status_names_the_log_in_every_mode(user: GriteUser) -> None:
    """systemd: the journal; not running: where each kind of daemon logs; self-bind: the file;
    foreground: standard error. And the log really is there."""
    m = user.manager
    status = user.status()
    assert status["mode"] == "systemd"
    assert status["log"] == "the systemd journal (journalctl --user -u grite.service)"
    journal = m.journal("--unit=grite.service", "--output=cat")
    assert f"grite daemon {status['pid']} (build {status['build_id']}) serving" in journal
    m.systemctl("stop", "grite.socket", check=True)
    try:
        idle = user.grite("daemon", "status")
        assert "grite daemon is not running" in idle.stdout, idle.stdout
        logfile = m.home / ".local" / "state" / "grite" / "daemon.log"
        assert f"log: {logfile} for a daemon grite starts, journalctl --user -u grite.service" in (
            idle.stdout
        )
        user.ok("daemon", "start")
        spawned = user.status()
        assert spawned["mode"] == "self-bind"
        assert spawned["log"] == str(logfile)
        assert f"grite daemon {spawned['pid']} (build" in logfile.read_text()
        user.ok("daemon", "stop")
        fg_socket = m.runtime_dir / "fg" / "daemon.sock"
        foreground = subprocess.Popen(
            [*m.enter(m.home), *m.env(path=user.path), "grite-daemon", "--foreground", "--socket-path",
             str(fg_socket), "--idle-timeout", "60"],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, cwd=m.home,
        )  # fmt: skip
        try:
            assert foreground.stderr is not None
            seen: list[str] = []
            while not any("serving" in line for line in seen):
                line = foreground.stderr.readline()
                assert line, f"the foreground daemon exited: {''.join(seen)}"
                seen.append(line)
            out = m.run(
                ["grite", "daemon", "status", "--json"],
                extra_env={"GRITE_DAEMON_SOCKET": str(fg_socket)},
                path=user.path,
            )
            data = json.loads(out.stdout)["data"]
            assert (data["mode"], data["log"]) == ("self-bind", "standard error"), data
        finally:
            foreground.terminate()
            foreground.wait(timeout=30)
    finally:
        m.systemctl("start", "grite.socket", check=True)


def manager_shows_ready_status_and_stopping(user: GriteUser) -> None:
    """What `systemctl --user status` and the journal say across start, work and stop."""
    m = user.manager
    user.ok("issue", "list")
    pid = user.service_pid()
    m.systemctl("stop", "grite.service", check=True)
    assert wait_exit(pid, _EXIT_WAIT)
    stopped = m.unit_property("grite.service", "StatusText")
    assert stopped.startswith("stopping: SIGTERM or SIGINT; "), stopped
    assert re.search(r"\d+ requests served", stopped), stopped
    text = service_status(user)
    assert 'Status: "stopping: SIGTERM or SIGINT; ' in text, text
    assert f"Main PID: {pid} (code=exited, status=0/SUCCESS)" in text, text
    journal = m.journal("--unit=grite.service", "--output=cat")
    # Type=notify: "Started" is logged when READY=1 arrives, one per daemon started.
    assert journal.count("Started grite.service") >= ROUNDS, journal[-3000:]
    assert "stopping: idle" in journal  # the daemon's own line, at its syslog priority
    assert "stopping: signal" in journal
    warnings = m.journal("--unit=grite.service", "--output=cat", "--priority=warning")
    assert "Traceback" not in journal and "Traceback" not in warnings, warnings


def upgrade_while_serving(
    user: GriteUser,
    counts: dict[str, Any],
    install_new: Callable[[], None],
    new_version: str,
    program_missing: Callable[[str], bool] | None = None,
) -> None:
    """Install a newer build while two clients work: the old daemon keeps serving, retires,
    and the socket starts the new build.

    Args:
        install_new: installs the newer build (as root or as the user).
        new_version: what `grite --version` says afterwards.
        program_missing: for installers that remove the program before writing the new one
            (pip): recognises a command that could not start at all (see test_pip_install.py).
    """
    user.ok("daemon", "status")
    old_pid, old_build = user.service_pid(), user.status()["build_id"]
    with ClientLoop(user, threads=2, tag="upgrade") as loop:
        loop.wait_for(6)
        began = time.monotonic()
        install_new()
        ended = time.monotonic()
        new_build = user.build_id()
        assert new_build != old_build
        wait_until(lambda: user.status()["build_id"] == new_build, "the new build to serve", 120)
        loop.wait_for(10)
    assert wait_exit(old_pid, _EXIT_WAIT), "the old daemon did not exit"
    status = user.status()
    assert (status["mode"], status["build_id"]) == ("systemd", new_build), manager_state(user)
    assert status["pid"] == user.service_pid() != old_pid
    assert user.ok("--version").stdout.strip() == f"grite {new_version}"
    missing = [
        o
        for o in loop.failures
        if program_missing is not None
        and program_missing(o.stderr)
        and o.started < ended
        and o.ended > began
    ]
    failures = [o for o in loop.failures if o not in missing]
    assert failures == [], describe(failures)
    # A client of the new build meeting the old daemon asks it to retire and runs that one
    # command in-process; nothing else may fall back.
    for o in loop.fallbacks:
        assert "daemon not used (upgrade: retired the daemon of build" in o.stderr, describe([o])
    assert len(loop.fallbacks) <= 4, describe(loop.fallbacks)
    listed = user.ok("issue", "list", "--state", "all", "--search", "upgrade-", "--json")
    titles = [i["title"] for i in json.loads(listed.stdout)["data"]["issues"]]
    assert sorted(titles) == sorted(loop.created), "a write was lost or applied twice"
    counts.update(
        upgrade_commands=len(loop.outcomes),
        upgrades=1,
        upgrade_failures=len(failures),
        upgrade_fallbacks_build_mismatch=len(loop.fallbacks),
        upgrade_program_missing=len(missing),
        upgrade_install_seconds=round(ended - began, 1),
    )


def nothing_left(user: GriteUser) -> None:
    """No unit, no socket, no daemon for this user."""
    m = user.manager
    for unit in ("grite.socket", "grite.service"):
        assert m.unit_property(unit, "LoadState") == "not-found", unit
        assert m.unit_property(unit, "ActiveState") == "inactive", unit
    listed = m.systemctl("list-unit-files", "--no-legend", "grite*").stdout
    assert listed.strip() == "", listed
    assert not (m.runtime_dir / "grite" / "daemon.sock").exists()
    for pid in user.daemon_processes():
        assert wait_exit(pid, _EXIT_WAIT), f"daemon {pid} is still running"
