"""`grite daemon start|status|stop|restart`: plain functions the CLI tree calls (daemon_<name>).

Each returns (exit code, stdout text, stderr text) and never prints or exits, so the same code
serves the argh commands and tests. `status` always asks the daemon (a real round trip with a
short timeout, through grite.ipc.transport like every client) and shows the fallbacks this
user's clients recorded (grite.ipc.fallbacks); `stop` is a request followed by a bounded wait
for the process to exit; `restart` is stop then start; `start --foreground` replaces this
process with grite-daemon. The daemon asked is the one serving this build: its own socket
(daemon-<build id>.sock) when it has one, else the main socket. Imports grite.ipc and
grite.model only.
"""

from __future__ import annotations

import os
import sys
import time

import msgspec

from grite.cli import envelope
from grite.ipc import fallbacks, protocol
from grite.ipc.build import build_id
from grite.ipc.paths import RuntimePaths, build_socket, ensure_runtime_dir, runtime_paths
from grite.ipc.spawner import wait_exit
from grite.ipc.transport import Call, DaemonTransport
from grite.ipc.wire import IpcError
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
# `daemon status` when none runs: systemctl's status for an inactive unit (LSB "not running").
_NOT_RUNNING_EXIT = 3


_DAY_MS = 24 * 3600 * 1000
_RECENT = 5


class FallbackInfo(msgspec.Struct, frozen=True, kw_only=True):
    """One recorded fallback, as `daemon status --json` shows it."""

    ts_ms: int
    pid: int
    client: str
    cause: str
    message: str


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
    kept_replies_served: int | None = None  # of requests_served: warm reads kept in memory
    in_flight: int | None = None
    idle_timeout_s: int | None = None
    idle_left_ms: int | None = None
    started: bool | None = None
    stopped: bool | None = None
    reason: str | None = None
    this_build: bool | None = None  # the daemon runs this grite's build (it serves its commands)
    fallbacks_24h: int | None = None
    recent_fallbacks: list[FallbackInfo] | None = None
    log: str | None = None
    # Why the runtime directory is not the usual one (another user took /tmp/grite-<uid>).
    runtime_dir_note: str | None = None


def _json(info: DaemonInfo) -> str:
    return envelope.encode(envelope.success(info))


def _ask(paths: RuntimePaths, socket_path: str) -> protocol.StatusResult | None:
    """One status round trip to `socket_path`; None when no daemon answers there."""
    transport = DaemonTransport(
        paths,
        control=True,
        socket_path=socket_path,
        connect_timeout=_STATUS_TIMEOUT,
        hello_timeout=_STATUS_TIMEOUT,
        timeout=_STATUS_TIMEOUT,
    )
    try:
        final = protocol.decode_response(
            transport.handle_request(Call(protocol.encode(protocol.DaemonStatus())))
        )
    except (IpcError, msgspec.DecodeError):
        return None
    finally:
        transport.close()
    if isinstance(final, protocol.Result) and isinstance(final.data, protocol.StatusResult):
        return final.data
    return None


def _ask_status(paths: RuntimePaths) -> protocol.StatusResult | None:
    """The daemon serving this build (its own socket first), else the main socket's."""
    own = _ask(paths, build_socket(paths, build_id()))
    return own if own is not None else _ask(paths, paths.socket)


def _fallbacks(paths: RuntimePaths) -> tuple[int, list[FallbackInfo]]:
    recent = fallbacks.read(paths.fallback_log, time.time_ns() // 1_000_000 - _DAY_MS)
    shown = [
        FallbackInfo(ts_ms=f.ts_ms, pid=f.pid, client=f.client, cause=f.cause, message=f.message)
        for f in recent[-_RECENT:]
    ]
    return len(recent), shown


def _info(st: protocol.StatusResult, **extra: object) -> DaemonInfo:
    return DaemonInfo(
        running=True,
        this_build=st.build_id == build_id(),
        pid=st.pid,
        mode=st.mode,
        socket=st.socket,
        build_id=st.build_id,
        uptime_ms=st.uptime_ms,
        repositories=st.repositories,
        requests_served=st.requests_served,
        kept_replies_served=st.kept_replies_served,
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


def _fallback_lines(paths: RuntimePaths) -> list[str]:
    count, shown = _fallbacks(paths)
    note = [f"  runtime dir:  {paths.note}"] if paths.note else []
    if not count:
        return [*note, "  fallbacks:    none in the last 24 h"]
    lines = [*note, f"  fallbacks:    {count} in the last 24 h ({paths.fallback_log}); newest:"]
    for f in shown:
        when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(f.ts_ms / 1000))
        lines.append(f"    {when} {f.client} pid {f.pid}: {f.cause}: {f.message}")
    return lines


def _human(st: protocol.StatusResult, headline: str, paths: RuntimePaths) -> str:
    if st.idle_timeout_s:
        idle = f"{st.idle_timeout_s}s ({_duration(st.idle_left_ms)} left)"
    else:
        idle = "never"
    repos = ", ".join(st.repositories) if st.repositories else "none"
    build = st.build_id if st.build_id == build_id() else f"{st.build_id} (not this grite's)"
    lines = [
        headline,
        f"  pid:          {st.pid}",
        f"  mode:         {st.mode}",
        f"  socket:       {st.socket}",
        f"  build id:     {build}",
        f"  uptime:       {_duration(st.uptime_ms)}",
        f"  repositories: {len(st.repositories)} ({repos})",
        f"  requests:     {st.requests_served} served ({st.kept_replies_served} from kept "
        f"replies), {st.in_flight} in flight",
        f"  idle exit:    {idle}",
        f"  log:          {st.log or 'not reported (a daemon of an older grite)'}",
        *_fallback_lines(paths),
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
    """Report the running daemon, or say plainly that none runs: exit 3 then, as
    `systemctl status` exits for an inactive unit (with --json, 0 and `running: false`)."""
    rp = paths or runtime_paths()
    st = _ask_status(rp)
    if json:
        count, shown = _fallbacks(rp)
        info = _info(st) if st else DaemonInfo(running=False, socket=rp.socket, log=_log_hint(rp))
        info = msgspec.structs.replace(
            info, fallbacks_24h=count, recent_fallbacks=shown, runtime_dir_note=rp.note or None
        )
        return 0, _json(info), ""
    if quiet:
        return (0 if st is not None else _NOT_RUNNING_EXIT), "", ""
    if st is None:
        lines = [f"{NOT_RUNNING} (socket {rp.socket})", f"  log: {_log_hint(rp)}"]
        lines += _fallback_lines(rp)
        return _NOT_RUNNING_EXIT, "\n".join(lines) + "\n", ""
    return 0, _human(st, "grite daemon is running", rp), ""


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
        return 0, "" if quiet else _human(st, "grite daemon is already running", rp), ""
    if foreground:
        cmd = [sys.executable, "-m", "grite.daemon", "--foreground", "--socket-path", rp.socket]
        if idle_timeout is not None:
            cmd += ["--idle-timeout", str(idle_timeout)]
        sys.stdout.flush()
        sys.stderr.flush()
        os.execv(sys.executable, cmd)
    transport = DaemonTransport(rp, start="wait", idle_timeout=idle_timeout)
    try:
        ready = transport.connect()
    finally:
        transport.close()
    st = _ask(rp, transport.connected_to) if ready else None
    if st is None:
        return 5, "", f"grite: the daemon did not become ready; see {rp.log_file}\n"
    if json:
        return 0, _json(_info(st, started=True)), ""
    return 0, "" if quiet else _human(st, "grite daemon started", rp), ""


def daemon_stop(
    *, json: bool = False, quiet: bool = False, paths: RuntimePaths | None = None
) -> Reply:
    """Ask the daemon to stop and wait (bounded) until its process is gone."""
    rp = paths or runtime_paths()
    targets = [
        (path, st)
        for path in (build_socket(rp, build_id()), rp.socket)
        if (st := _ask(rp, path)) is not None
    ]
    if not targets:
        if json:
            return 0, _json(DaemonInfo(running=False, stopped=False, reason="not running")), ""
        return 0, "" if quiet else f"{NOT_RUNNING}\n", ""
    for path, _ in targets:
        transport = DaemonTransport(rp, control=True, socket_path=path, timeout=_STATUS_TIMEOUT)
        try:
            transport.handle_request(Call(protocol.encode(protocol.DaemonStop())))
        except IpcError:
            pass  # it may be exiting already; the wait below decides
        finally:
            transport.close()
    for _, st in targets:
        if not wait_exit(st.pid, _STOP_WAIT):
            return (
                5,
                "",
                f"grite: daemon pid {st.pid} did not exit within {_STOP_WAIT:g}s; "
                f"check {rp.log_file}, or kill {st.pid} yourself\n",
            )
    pids = ", ".join(str(st.pid) for _, st in targets)
    if json:
        return 0, _json(DaemonInfo(running=False, pid=targets[0][1].pid, stopped=True)), ""
    return 0, "" if quiet else f"grite daemon stopped (pid {pids})\n", ""


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
