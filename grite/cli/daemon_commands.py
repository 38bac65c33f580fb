"""`grite daemon start|status|stop|restart`: plain functions the CLI tree calls (daemon_<name>).

Each returns (exit code, stdout text, stderr text) and never prints or exits, so the same code
serves the argh commands and tests. `status` always asks the daemon (a real round trip with a
short timeout); `stop` is a request followed by a bounded wait for the process to exit;
`restart` is stop then start; `start --foreground` replaces this process with grite-daemon.
Imports grite.ipc and grite.model only.
"""

from __future__ import annotations

import os
import select
import sys
import time

import msgspec

from grite.ipc import protocol, spawner
from grite.ipc.client import Connection
from grite.ipc.framing import IpcError
from grite.ipc.paths import RuntimePaths, ensure_runtime_dir, runtime_paths
from grite.model.errors import GriteError

__all__ = [
    "NOT_RUNNING",
    "DaemonInfo",
    "daemon_restart",
    "daemon_start",
    "daemon_status",
    "daemon_stop",
]

Reply = tuple[int, str, str]
_STATUS_TIMEOUT = 2.0
_STOP_WAIT = 10.0
NOT_RUNNING = "grite daemon is not running"


class DaemonInfo(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """`data` of `grite daemon status|start|stop --json`."""

    running: bool
    pid: int | None = None
    mode: str | None = None
    socket: str | None = None
    build_id: str | None = None
    uptime_ms: int | None = None
    repositories: list[str] | None = None
    requests_served: int | None = None
    in_flight: int | None = None
    idle_timeout_s: int | None = None
    idle_left_ms: int | None = None
    started: bool | None = None
    stopped: bool | None = None
    reason: str | None = None
    log: str | None = None


class _Envelope(msgspec.Struct, frozen=True, kw_only=True):
    schema_version: int = 1
    ok: bool = True
    data: DaemonInfo


def _json(info: DaemonInfo) -> str:
    return msgspec.json.encode(_Envelope(data=info)).decode() + "\n"


def _ask_status(paths: RuntimePaths) -> protocol.StatusResult | None:
    """One status round trip; None when no daemon answers."""
    try:
        with Connection.open(
            paths.socket,
            connect_timeout=_STATUS_TIMEOUT,
            hello_timeout=_STATUS_TIMEOUT,
            timeout=_STATUS_TIMEOUT,
            retire_mismatch=False,
            accept_other_build=True,
        ) as conn:
            final = conn.request(protocol.DaemonStatus())
    except IpcError:
        return None
    if isinstance(final, protocol.Result) and isinstance(final.data, protocol.StatusResult):
        return final.data
    return None


def _info(st: protocol.StatusResult, **extra: object) -> DaemonInfo:
    return DaemonInfo(
        running=True,
        pid=st.pid,
        mode=st.mode,
        socket=st.socket,
        build_id=st.build_id,
        uptime_ms=st.uptime_ms,
        repositories=st.repositories,
        requests_served=st.requests_served,
        in_flight=st.in_flight,
        idle_timeout_s=st.idle_timeout_s,
        idle_left_ms=st.idle_left_ms,
        log=st.log or None,
        **extra,  # type: ignore[arg-type]
    )


def _duration(ms: int) -> str:
    seconds = ms // 1000
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h {minutes}m {secs}s"
    return f"{minutes}m {secs}s" if minutes else f"{secs}s"


def _human(st: protocol.StatusResult, headline: str) -> str:
    if st.idle_timeout_s:
        idle = f"{st.idle_timeout_s}s ({_duration(st.idle_left_ms)} left)"
    else:
        idle = "never"
    repos = ", ".join(st.repositories) if st.repositories else "none"
    lines = [
        headline,
        f"  pid:          {st.pid}",
        f"  mode:         {st.mode}",
        f"  socket:       {st.socket}",
        f"  build id:     {st.build_id}",
        f"  uptime:       {_duration(st.uptime_ms)}",
        f"  repositories: {len(st.repositories)} ({repos})",
        f"  requests:     {st.requests_served} served, {st.in_flight} in flight",
        f"  idle exit:    {idle}",
        f"  log:          {st.log or 'not reported (a daemon of an older grite)'}",
    ]
    return "\n".join(lines) + "\n"


def _log_hint(paths: RuntimePaths) -> str:
    """Where a daemon's log will be, when none runs to say so itself."""
    if sys.platform == "darwin":
        managed = "~/Library/Logs/grite-daemon.log for the LaunchAgent"
    else:
        managed = "journalctl --user -u grite.service under systemd"
    return f"{paths.log_file} for a daemon grite starts, {managed}"


def daemon_status(
    *, json: bool = False, quiet: bool = False, paths: RuntimePaths | None = None
) -> Reply:
    """Report the running daemon, or say plainly that none runs (exit 0 either way)."""
    rp = paths or runtime_paths()
    st = _ask_status(rp)
    if json:
        idle = DaemonInfo(running=False, socket=rp.socket, log=_log_hint(rp))
        return 0, _json(_info(st) if st else idle), ""
    if quiet:
        return 0, "", ""
    if st is None:
        return 0, f"{NOT_RUNNING} (socket {rp.socket})\n  log: {_log_hint(rp)}\n", ""
    return 0, _human(st, "grite daemon is running"), ""


def daemon_start(
    idle_timeout: int | None = None,
    foreground: bool = False,
    *,
    json: bool = False,
    quiet: bool = False,
    paths: RuntimePaths | None = None,
) -> Reply:
    """Start the daemon (or say it already runs). `foreground` execs grite-daemon here."""
    rp = paths or runtime_paths()
    try:
        ensure_runtime_dir(rp)
    except GriteError as exc:
        return exc.exit_code, "", f"grite: {exc.message}\n"
    st = _ask_status(rp)
    if st is not None:
        if json:
            return 0, _json(_info(st, started=False, reason="already running")), ""
        return 0, "" if quiet else _human(st, "grite daemon is already running"), ""
    if foreground:
        cmd = [sys.executable, "-m", "grite.daemon", "--foreground", "--socket-path", rp.socket]
        if idle_timeout is not None:
            cmd += ["--idle-timeout", str(idle_timeout)]
        sys.stdout.flush()
        sys.stderr.flush()
        os.execv(sys.executable, cmd)
    if (
        spawner.ensure_daemon(rp, idle_timeout=idle_timeout) is None
        or (st := _ask_status(rp)) is None
    ):
        return 5, "", f"grite: the daemon did not become ready; see {rp.log_file}\n"
    if json:
        return 0, _json(_info(st, started=True)), ""
    return 0, "" if quiet else _human(st, "grite daemon started"), ""


def _wait_exit(pid: int, timeout: float) -> bool:
    """Wait until `pid` exits; True if it did within `timeout`."""
    deadline = time.monotonic() + timeout
    if hasattr(os, "pidfd_open"):
        try:
            fd = os.pidfd_open(pid)
        except ProcessLookupError:
            return True
        except OSError:
            fd = -1
        if fd >= 0:
            try:
                return bool(select.select([fd], [], [], timeout)[0])
            finally:
                os.close(fd)
    delay = 0.01  # no pidfd (macOS): a bounded back-off on kill(pid, 0)
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        time.sleep(delay)
        delay = min(delay * 2, 0.2)
    return False


def daemon_stop(
    *, json: bool = False, quiet: bool = False, paths: RuntimePaths | None = None
) -> Reply:
    """Ask the daemon to stop and wait (bounded) until its process is gone."""
    rp = paths or runtime_paths()
    st = _ask_status(rp)
    if st is None:
        if json:
            return 0, _json(DaemonInfo(running=False, stopped=False, reason="not running")), ""
        return 0, "" if quiet else f"{NOT_RUNNING}\n", ""
    try:
        with Connection.open(
            rp.socket, retire_mismatch=False, accept_other_build=True, timeout=_STATUS_TIMEOUT
        ) as conn:
            conn.request(protocol.DaemonStop())
    except IpcError:
        pass  # it may be exiting already; the wait below decides
    if not _wait_exit(st.pid, _STOP_WAIT):
        return (
            5,
            "",
            f"grite: daemon pid {st.pid} did not exit within {_STOP_WAIT:g}s; "
            f"check {rp.log_file}, or kill {st.pid} yourself\n",
        )
    if json:
        return 0, _json(DaemonInfo(running=False, pid=st.pid, stopped=True)), ""
    return 0, "" if quiet else f"grite daemon stopped (pid {st.pid})\n", ""


def daemon_restart(
    idle_timeout: int | None = None,
    *,
    json: bool = False,
    quiet: bool = False,
    paths: RuntimePaths | None = None,
) -> Reply:
    """Stop (if running) then start."""
    code, _, err = daemon_stop(json=False, quiet=True, paths=paths)
    if code != 0:
        return code, "", err
    return daemon_start(idle_timeout, json=json, quiet=quiet, paths=paths)
