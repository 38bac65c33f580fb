"""The `grite` console script: decide daemon or in-process, before importing anything heavy.

Imports only the standard library, msgspec, grite.ipc and grite.model until it has decided.
`--no-daemon`, GRITE_NO_DAEMON, help/version, no arguments and `daemon ...` commands run
in-process. Everything else is sent to the per-user daemon as one RunArgv (argv, cwd,
environment, terminal facts, request id, clock), spawning the daemon when none answers. Any
daemon failure (absent, refused, timeout, other build, lost before the final frame, busy, unsafe
runtime dir) silently runs the SAME Invocation in-process, so a write whose acknowledgement was
lost is retried with identical event ids and applied once. Outcomes the daemon returns are
final, errors included. This module and storage/config read os.environ; nothing else in cli.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Mapping

from grite.ipc import protocol
from grite.ipc.client import Connection, DaemonUnavailable
from grite.ipc.framing import ConnectionClosed, IpcError
from grite.ipc.paths import ensure_runtime_dir, runtime_paths
from grite.model.errors import GriteError
from grite.model.invocation import Invocation, Outcome, command_word

__all__ = ["build_invocation", "console_main", "route", "runs_in_process"]

_IN_PROCESS_FLAGS = frozenset({"--no-daemon", "--help", "-h", "--version"})
# setup/install-skill write the user's own files; completion needs only the command tree.
_IN_PROCESS_COMMANDS = frozenset({"daemon", "setup", "install-skill", "completion"})
# Commands run by their own client module whichever way they reach the daemon.
_STREAMING_COMMANDS = frozenset({"watch", "batch", "mcp"})
_HELP_FLAGS = frozenset({"--help", "-h", "--version"})
_FORWARDED_ENV = ("NO_COLOR", "TZ", "HOME", "XDG_CONFIG_HOME")
# Daemon answers that mean "not run": the command is then run here. Other errors are final.
_FALL_BACK_CODES = frozenset({"busy", "version_mismatch", "bad_request"})


def _truthy(value: str | None) -> bool:
    return (value or "").strip().lower() in ("1", "true", "yes")


def runs_in_process(argv: list[str], environ: Mapping[str, str]) -> bool:
    """True when this command must not (or need not) go through the daemon."""
    if not argv or _truthy(environ.get("GRITE_NO_DAEMON")):
        return True
    if any(word in _IN_PROCESS_FLAGS for word in argv):
        return True
    return command_word(argv) in _IN_PROCESS_COMMANDS


def _columns(environ: Mapping[str, str]) -> int:
    # shutil.get_terminal_size without importing shutil (same rules: COLUMNS, then the tty).
    try:
        columns = int(environ.get("COLUMNS", "0"))
    except ValueError:
        columns = 0
    if columns > 0:
        return columns
    try:
        return os.get_terminal_size(sys.__stdout__.fileno()).columns or 80
    except (AttributeError, ValueError, OSError):
        return 80


def build_invocation(argv: list[str], environ: Mapping[str, str]) -> Invocation:
    """Capture this command for whichever side runs it.

    Args:
        argv: arguments after the program name.
        environ: the process environment.

    Returns:
        The Invocation, with a fresh request id (the idempotency key) and the client clock.
    """
    env = {k: v for k, v in environ.items() if k.startswith("GRITE_") or k in _FORWARDED_ENV}
    stdin = sys.stdin.buffer.read() if "-" in argv and sys.stdin is not None else None
    try:
        isatty = sys.stdout.isatty()
    except (AttributeError, ValueError):
        isatty = False
    return Invocation(
        argv=list(argv),
        cwd=os.getcwd(),
        env=env,
        request_id=os.urandom(16),
        now_ms=time.time_ns() // 1_000_000,
        stdin=stdin,
        stdout_isatty=isatty,
        columns=_columns(environ),
    )


def _idle_timeout(environ: Mapping[str, str]) -> int | None:
    value = environ.get("GRITE_DAEMON_IDLE_TIMEOUT", "")
    return int(value) if value.isdigit() else None


def _connect(socket_path: str) -> Connection:
    """Connect and greet, once more if the daemon hung up before its hello."""
    try:
        return Connection.open(socket_path)
    except ConnectionClosed:
        # An activated daemon that was exiting took our connection from the queue and closed
        # it unserved. Only our hello was sent, and the service manager starts a new instance
        # for the next connection (self-bind: ENOENT, then the spawner), so retry once.
        return Connection.open(socket_path)


def _via_daemon(inv: Invocation, environ: Mapping[str, str]) -> Outcome:
    """Run `inv` in the daemon. Raises IpcError/GriteError when it could not be run there."""
    paths = runtime_paths(environ)
    ensure_runtime_dir(paths)
    try:
        conn = _connect(paths.socket)
    except DaemonUnavailable:
        # Deliberately lazy: subprocess and select are only needed on a cold start.
        from grite.ipc import spawner

        sock = spawner.ensure_daemon(paths, idle_timeout=_idle_timeout(environ))
        if sock is None:
            raise DaemonUnavailable(f"could not start a daemon; see {paths.log_file}") from None
        conn = _connect(sock)
    with conn:
        final = conn.request(
            protocol.RunArgv(invocation=inv),
            request_id=inv.request_id,
            actor=inv.env.get("GRITE_ACTOR", ""),
        )
    if isinstance(final, protocol.Result):
        if isinstance(final.data, protocol.RunArgvResult):
            return final.data.outcome
        raise IpcError(f"the daemon answered RunArgv with {type(final.data).__name__}")
    if final.code in _FALL_BACK_CODES:
        raise IpcError(f"daemon declined ({final.code}): {final.message}")
    return Outcome(exit_code=final.exit_code, stdout="", stderr=f"grite: {final.message}\n")


def _write(outcome: Outcome) -> int:
    try:
        if outcome.stdout:
            sys.stdout.write(outcome.stdout)
            sys.stdout.flush()
        if outcome.stderr:
            sys.stderr.write(outcome.stderr)
            sys.stderr.flush()
    except BrokenPipeError:
        # The reader went away (e.g. `| head`); do not let the interpreter complain at exit.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 141
    return outcome.exit_code


def route(argv: list[str], environ: Mapping[str, str] | None = None) -> int:
    """Run one `grite` command through the daemon or in-process.

    Args:
        argv: arguments after the program name.
        environ: the environment (default os.environ).

    Returns:
        The exit status.
    """
    env = os.environ if environ is None else environ
    word = command_word(argv)
    if word in _STREAMING_COMMANDS and not _HELP_FLAGS.intersection(argv):
        # Deliberately lazy: watch and batch stream over their own daemon connection (batch
        # also runs in-process), so they never go through RunArgv or app.main.
        if word == "watch":
            from grite.cli.watch import main as streaming_main
        elif word == "mcp":
            from grite.cli.mcp_server import main as streaming_main
        else:
            from grite.cli.batch import main as streaming_main
        return streaming_main(argv, env)
    if runs_in_process(argv, env):
        # Deliberately lazy: the full CLI imports argh, dulwich and diskcache.
        from grite.cli import app

        return _write(app.run_invocation(build_invocation(argv, env)))
    inv = build_invocation(argv, env)
    try:
        outcome = _via_daemon(inv, env)
    except Exception as exc:  # any daemon failure means running here, silently
        if _truthy(env.get("GRITE_DEBUG")):
            kind = "" if isinstance(exc, (IpcError, GriteError)) else f"{type(exc).__name__}: "
            sys.stderr.write(f"grite: daemon not used ({kind}{exc}); running in-process\n")
        # Deliberately lazy, as above; the same Invocation keeps the request id and clock.
        from grite.cli import app

        outcome = app.run_invocation(inv)
    return _write(outcome)


def console_main() -> None:
    """The `grite` console script (the only place that calls sys.exit)."""
    try:
        code = route(sys.argv[1:])
    except KeyboardInterrupt:
        code = 130
    sys.exit(code)


if __name__ == "__main__":
    console_main()
