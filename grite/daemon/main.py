"""`grite-daemon`: parse flags, set up logging, find the listener, run the Supervisor.

The listener comes from the service manager when one activated us (systemd, launchd: see
activation.py), else it is bound here (binding.py). A daemon spawned by a client reports on
`--ready-fd` one line: `ok <pid>` once the socket is published, `locked <pid>` when another
daemon already serves the endpoint, or `error <reason>`. Logs go to stderr in the foreground or
under a service manager (with syslog priority prefixes when stderr is the systemd journal), to
`--log-file` when spawned. Every module the daemon may need is imported as soon as it serves
(preload.py), so replacing grite's files under a running daemon cannot break it. Light on
purpose: argparse, no argh.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import socket
import sys
from typing import TYPE_CHECKING

from grite.daemon.binding import Binding, read_pid_record
from grite.daemon.preload import preload_modules
from grite.daemon.registry import WORKER_IDLE_SECONDS, Registry
from grite.daemon.service import KEEPALIVE_INTERVAL, ServiceConfig, StopReason
from grite.daemon.supervisor import Supervisor, shutdown_signal
from grite.ipc.paths import paths_for_socket, runtime_paths
from grite.ipc.protocol import build_id
from grite.model.errors import GriteError
from grite.storage.config import load_user_config, merge_user_configs, user_config_files

if TYPE_CHECKING:
    from collections.abc import Mapping

    from grite.daemon.sd_notify import Notifier

__all__ = ["DEFAULT_IDLE_TIMEOUT", "console_main", "main", "parse_args"]

DEFAULT_IDLE_TIMEOUT = 300
_LOG_ROTATE_BYTES = 4 * 1024 * 1024
_log = logging.getLogger("grite.daemon")


def parse_args(argv: list[str]) -> argparse.Namespace:
    """Parse grite-daemon's command line."""
    parser = argparse.ArgumentParser(
        prog="grite-daemon", description="Per-user grite daemon: keeps repositories warm."
    )
    parser.add_argument("--socket-path", help="Unix socket to serve (default: the runtime dir)")
    parser.add_argument(
        "--idle-timeout",
        type=int,
        default=None,
        help="exit after this many idle seconds; 0 = never (default 300 or the user config)",
    )
    parser.add_argument("--log-level", default="info", help="debug, info, warning or error")
    parser.add_argument("--log-file", help="append logs here instead of stderr")
    parser.add_argument("--ready-fd", type=int, help="write one readiness line to this fd")
    parser.add_argument(
        "--spawn-lock-fd",
        type=int,
        help="an fd holding the spawner's lock, closed once the socket is published",
    )
    parser.add_argument("--foreground", action="store_true", help="run attached, logging to stderr")
    parser.add_argument(
        "--worker-idle-seconds",
        type=float,
        default=WORKER_IDLE_SECONDS,
        help="close a repository no request used for this long (default %(default)s)",
    )
    return parser.parse_args(argv)


def configured_idle_timeout(paths: list[str]) -> int | None:
    """`[daemon] idle_timeout_seconds` from the user configs (user_config_files: the user's,
    then /etc/xdg's), the first file that sets it winning; a broken file is logged and ignored
    (the daemon still serves, with the others or the default)."""
    configs = []
    for path in paths:
        try:
            configs.append(load_user_config(path))
        except GriteError as exc:
            _log.warning("ignoring %s", exc.message)
    daemon = merge_user_configs(configs).daemon
    value = None if daemon is None else daemon.idle_timeout_seconds
    if value is not None and value < 0:
        _log.warning("ignoring idle_timeout_seconds = %s: it must be a whole number >= 0", value)
        return None
    return value


# sd-daemon(3) priority prefixes: journald files each stderr line under its syslog level.
_SYSLOG_PRIORITY = {"DEBUG": 7, "INFO": 6, "WARNING": 4, "ERROR": 3, "CRITICAL": 2}


class _JournalFormatter(logging.Formatter):
    """`<priority>message`: journald adds the time, the process name and its pid itself."""

    def format(self, record: logging.LogRecord) -> str:
        return f"<{_SYSLOG_PRIORITY.get(record.levelname, 6)}>{super().format(record)}"


def stderr_is_journal() -> bool:
    """Whether stderr is connected to the systemd journal (JOURNAL_STREAM names its inode)."""
    device, _, inode = os.environ.get("JOURNAL_STREAM", "").partition(":")
    try:
        st = os.fstat(sys.stderr.fileno())
        return (st.st_dev, st.st_ino) == (int(device), int(inode))
    except (ValueError, OSError, AttributeError):
        return False


def _systemd_unit() -> str | None:
    """The systemd unit this process runs in (`grite.service`), from its cgroup path."""
    try:
        with open("/proc/self/cgroup", encoding="utf-8") as f:
            paths = [line.rstrip("\n").split(":", 2)[-1] for line in f]
    except OSError:
        return None
    units = [path.rsplit("/", 1)[-1] for path in paths if path.endswith(".service")]
    return units[0] if units else None


def log_location(log_file: str | None, journal: bool, mode: str) -> str:
    """Where this daemon's log goes, in words a user can act on (`grite daemon status`)."""
    if log_file:
        return log_file
    if journal:
        unit = _systemd_unit()
        where = f"-u {unit}" if unit else f"_PID={os.getpid()}"
        return f"the systemd journal (journalctl --user {where})"
    if mode == "launchd":
        return "standard error, which the LaunchAgent writes to ~/Library/Logs/grite-daemon.log"
    return "standard error"


def _setup_logging(level: str, log_file: str | None, journal: bool = False) -> None:
    handler: logging.Handler
    formatter = logging.Formatter("%(asctime)s grite-daemon[%(process)d] %(levelname)s %(message)s")
    if log_file:
        os.makedirs(os.path.dirname(log_file), mode=0o700, exist_ok=True)
        try:
            if os.path.getsize(log_file) > _LOG_ROTATE_BYTES:
                os.replace(log_file, log_file + ".1")
        except FileNotFoundError:
            pass
        handler = logging.FileHandler(log_file, encoding="utf-8")
    else:
        handler = logging.StreamHandler(sys.stderr)
        if journal:
            formatter = _JournalFormatter("%(message)s")
    handler.setFormatter(formatter)
    root = logging.getLogger("grite")
    root.addHandler(handler)
    root.setLevel(getattr(logging, level.upper(), logging.INFO))


def _service_manager() -> tuple[socket.socket, str, Notifier | None] | None:
    """The inherited listener, activation mode and notifier, if a service manager started us.

    The one place that imports the activation modules; they are optional at this stage of the
    project, so a missing module means "not activated".
    """
    try:
        from grite.daemon import activation, sd_notify
    except ImportError:
        return None
    inherited = activation.inherited_listener()
    if inherited is None:
        return None
    listener, mode = inherited
    return listener, str(mode.value), sd_notify.Notifier()


def _close_fd(fd: int | None) -> None:
    if fd is not None:
        try:
            os.close(fd)
        except OSError:
            pass


def _report(ready_fd: int | None, line: str) -> None:
    if ready_fd is None:
        return
    try:
        os.write(ready_fd, line.encode() + b"\n")
        os.close(ready_fd)
    except OSError:
        pass  # the spawning client gave up waiting; nothing to tell


def _config(
    args: argparse.Namespace, socket_path: str, idle_timeout: int, mode: str, log_file: str | None
) -> ServiceConfig:
    """The server's settings from the command line, the user config and the environment."""
    return ServiceConfig(
        socket_path=socket_path,
        idle_timeout=idle_timeout,
        idle_timeout_fixed=args.idle_timeout is not None,
        mode=mode,
        keepalive=_keepalive(os.environ),
        log_location=log_location(log_file, stderr_is_journal(), mode),
    )


async def _serve(args: argparse.Namespace, idle_timeout: int, log_file: str | None) -> int:
    ready_fd: int | None = args.ready_fd
    activated = _service_manager()
    if activated is not None:
        listener, mode, notifier = activated
        name = listener.getsockname()
        socket_path = name if isinstance(name, str) and name else (args.socket_path or "")
        supervisor = Supervisor(
            _config(args, socket_path, idle_timeout, mode, log_file),
            listener=listener,
            notifier=notifier,
            registry=Registry(socket_path, worker_idle_seconds=args.worker_idle_seconds),
        )
    else:
        paths = (
            paths_for_socket(os.path.abspath(args.socket_path))
            if args.socket_path
            else runtime_paths()
        )
        try:
            binding = Binding.acquire(paths)
        finally:
            # A client that started us in the background holds other clients off until the
            # socket is live (or we gave up): then they connect instead of starting another.
            _close_fd(args.spawn_lock_fd)
        if binding is None:
            other = read_pid_record(paths.pid_file)
            _log.info(
                "another grite daemon (pid %s) already serves %s; exiting",
                other.pid if other else "?",
                paths.socket,
            )
            _report(ready_fd, f"locked {other.pid if other else 0}")
            return 0
        supervisor = Supervisor(
            _config(args, paths.socket, idle_timeout, "self-bind", log_file),
            listener=binding.listener,
            binding=binding,
            registry=Registry(paths.socket, worker_idle_seconds=args.worker_idle_seconds),
            on_ready=lambda: _report(ready_fd, f"ok {os.getpid()}"),
        )
    _log.info(
        "grite daemon %s (build %s) serving %s (%s, idle timeout %ss)",
        os.getpid(),
        build_id(),
        supervisor.socket_path,
        supervisor.mode,
        idle_timeout or "never",
    )
    preloading = asyncio.ensure_future(_preload(supervisor))
    await supervisor.run(shutdown_signal())
    preloading.cancel()
    return 0


async def _preload(supervisor: Supervisor) -> None:
    """Import every module the daemon may need, in a thread, while it already serves.

    Not before serving: that would make the first command after a socket activation wait
    for imports it may not need. A module that cannot be imported means grite's files are
    changing (an upgrade half-way) or broken: the daemon retires, and the next one starts
    from the files as they are then.
    """
    try:
        count = await asyncio.get_running_loop().run_in_executor(None, preload_modules)
    except (ImportError, SyntaxError) as exc:
        _log.error("cannot load grite's modules (%s); retiring so that a new daemon starts", exc)
        supervisor.request_stop(StopReason.UPGRADED)
        return
    _log.debug("preloaded %d modules", count)


# Enough descriptors for every client of a busy machine; capped because some platforms report
# an unlimited hard limit that setrlimit then refuses.
_NOFILE_TARGET = 65536


def _keepalive(environ: Mapping[str, str]) -> float:
    """Seconds between Progress frames of a running request: GRITE_DAEMON_KEEPALIVE (for
    tests, with a short GRITE_DAEMON_REPLY_TIMEOUT on the client), else 5 s."""
    try:
        value = float(environ.get("GRITE_DAEMON_KEEPALIVE") or KEEPALIVE_INTERVAL)
    except ValueError:
        return KEEPALIVE_INTERVAL
    return value if value > 0 else KEEPALIVE_INTERVAL


def raise_nofile_limit() -> int:
    """Raise the soft RLIMIT_NOFILE to the hard limit (at most _NOFILE_TARGET).

    The default soft limit (often 1024, or 256 on macOS) is what lets a few hundred idle or
    slow connections exhaust the daemon's descriptors, so that every other client waits in the
    backlog; services routinely lift it to the hard limit at start, as systemd does.

    Returns:
        The soft limit now in force.
    """
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = _NOFILE_TARGET if hard == resource.RLIM_INFINITY else min(hard, _NOFILE_TARGET)
    if soft != resource.RLIM_INFINITY and soft < target:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            return target
        except (ValueError, OSError) as exc:
            _log.warning("cannot raise the open-files limit from %s to %s: %s", soft, target, exc)
    return int(soft)


def main(argv: list[str]) -> int:
    """Run the daemon until it stops.

    Returns:
        The exit status: 0 after any orderly stop, 5 when the environment prevents serving.
    """
    args = parse_args(argv)
    log_file = None if args.foreground else args.log_file
    _setup_logging(args.log_level, log_file, journal=not log_file and stderr_is_journal())
    idle = args.idle_timeout
    if idle is None:
        idle = configured_idle_timeout(user_config_files())
    if idle is None:
        idle = DEFAULT_IDLE_TIMEOUT
    _log.debug("open-files limit %s", raise_nofile_limit())
    try:
        return asyncio.run(_serve(args, idle, log_file))
    except GriteError as exc:
        _log.error("%s", exc.message)
        _report(args.ready_fd, f"error {exc.message}")
        return exc.exit_code
    except Exception as exc:  # the entry: log the traceback, tell the spawner, exit 1
        _log.exception("grite daemon failed")
        _report(args.ready_fd, f"error {exc}")
        return 1


def console_main() -> None:
    """The `grite-daemon` console script."""
    sys.exit(main(sys.argv[1:]))
