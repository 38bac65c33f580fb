"""The `grite` console script: send the command to the daemon, or run it here, cheaply.

A warm command costs about one Python start-up, so this module decides and talks to the
daemon with almost nothing imported: the standard library's builtins, grite.ipc's lean modules
(wire: msgpack without msgspec; client: the C `_socket`; transport: the one fallback policy)
and grite.model.errors. tests/unit/cli/test_entry.py fails when msgspec, typing, argh, dulwich,
diskcache, cbor2 or asyncio load on this path.

`--no-daemon`, GRITE_NO_DAEMON, GRITE_DAEMON=off, help/version, no arguments and `daemon ...`
commands run in-process. Everything else is sent to the per-user daemon as one RunArgv (argv,
cwd, environment, terminal facts, request id, clock) through grite.ipc.transport's
FallbackTransport: when the daemon cannot serve, the SAME request runs in-process (same request
id and clock, so a write whose acknowledgement was lost is applied once), recorded for `grite
daemon status`; under GRITE_DAEMON=require that is an error naming the cause instead. When no
daemon runs, the first command runs in-process while one starts in the background. Outcomes
the daemon returns are final, errors included. This module and storage/config read
os.environ; nothing else in cli.
"""

from __future__ import annotations

import os
import sys
import time

from grite.ipc import wire
from grite.ipc.transport import (
    Call,
    DaemonRequired,
    FallbackTransport,
    Interrupted,
    Policy,
    Unserved,
)
from grite.model import settings
from grite.model.errors import GriteError, InvalidArgs

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

    from grite.ipc.transport import BaseTransport
    from grite.model.invocation import Invocation

__all__ = ["build_invocation", "console_main", "route", "runs_in_process"]

_IN_PROCESS_FLAGS = frozenset({"--no-daemon", "--help", "-h", "--version"})
# setup/install-skill write the user's own files; completion needs only the command tree.
_IN_PROCESS_COMMANDS = frozenset({"daemon", "setup", "install-skill", "completion"})
# Commands run by their own client module whichever way they reach the daemon.
_STREAMING_COMMANDS = frozenset({"watch", "batch", "mcp"})
_HELP_FLAGS = frozenset({"--help", "-h", "--version"})
_FORWARDED_ENV = ("NO_COLOR", "TERM", "TZ", "HOME", "XDG_CONFIG_HOME")
# Global options that take a value: their value is never the command word (as in
# grite.model.invocation.command_word, which imports msgspec).
_GLOBAL_WITH_VALUE = frozenset({"--actor", "--data-dir", "--color"})


def command_word(argv: list[str]) -> str:
    """The first word of `argv` that is neither an option nor a global option's value."""
    skip = False
    for word in argv:
        if skip:
            skip = False
        elif word in _GLOBAL_WITH_VALUE:
            skip = True
        elif not word.startswith("-"):
            return word
    return ""


def runs_in_process(argv: list[str], environ: Mapping[str, str]) -> bool:
    """True when this command must not (or need not) go through the daemon."""
    if not argv or Policy.from_environ(environ).mode == "off":
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


def _undecodable(argv: list[str]) -> InvalidArgs | None:
    """An error naming the first argument that is not UTF-8 text (None when all are).

    Python hands such bytes over as lone surrogates (PEP 383); neither the wire nor the WAL
    (UTF-8 CBOR) can carry them, so they are refused here, before either path runs.
    """
    for position, word in enumerate(argv, 1):
        try:
            word.encode("utf-8")
        except UnicodeEncodeError:
            shown = word.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
            return InvalidArgs(
                f"argument {position} ('{shown[:40]}') is not valid UTF-8 text; grite stores "
                "text as UTF-8: convert it first (e.g. with iconv)",
                {"argument": position},
            )
    return None


def _isatty(stream: object) -> bool:
    try:
        return bool(stream.isatty())  # type: ignore[attr-defined]
    except (AttributeError, ValueError):
        return False


def _read_stdin(argv: list[str]) -> bytes | None:
    if "-" not in argv or sys.stdin is None:
        return None
    if _isatty(sys.stdin):
        # Without this, `--body -` on a terminal just waits, and looks hung.
        sys.stderr.write("grite: reading standard input; end with Ctrl-D on a line of its own\n")
        sys.stderr.flush()
    return sys.stdin.buffer.read()


def _invocation_fields(
    argv: list[str], environ: Mapping[str, str], stdin: bytes | None = None
) -> dict[str, object]:
    env = {k: v for k, v in environ.items() if k.startswith("GRITE_") or k in _FORWARDED_ENV}
    if stdin is None:
        stdin = _read_stdin(argv)
    try:
        isatty = sys.stdout.isatty()
    except (AttributeError, ValueError):
        isatty = False
    return {
        "argv": list(argv),
        "cwd": os.getcwd(),
        "env": env,
        "request_id": os.urandom(16),
        "now_ms": time.time_ns() // 1_000_000,
        "stdin": stdin,
        "stdout_isatty": isatty,
        "columns": _columns(environ),
    }


def build_invocation(argv: list[str], environ: Mapping[str, str]) -> Invocation:
    """Capture this command for whichever side runs it (as a grite.model Invocation).

    Args:
        argv: arguments after the program name.
        environ: the process environment.

    Returns:
        The Invocation, with a fresh request id (the idempotency key) and the client clock.
    """
    # Deliberately lazy: the Struct needs msgspec, which the daemon path never loads.
    from grite.model.invocation import Invocation

    return Invocation(**_invocation_fields(argv, environ))  # type: ignore[arg-type]


def _local() -> BaseTransport:
    # Deliberately lazy: the in-process path imports argh, dulwich and diskcache.
    from grite.cli.app import run_invocation
    from grite.ipc.local import LocalTransport

    return LocalTransport(run_argv=run_invocation)


def _outcome(frame: bytes) -> tuple[int, str, str]:
    """(exit code, stdout, stderr) from a RunArgv reply's final frame.

    Raises:
        Unserved: the frame is not a reply to RunArgv (the daemon is then not trusted).
    """
    try:
        reply = wire.decode(frame)
    except wire.WireError as exc:
        raise Unserved("protocol", f"unreadable reply: {exc}") from exc
    try:
        if not isinstance(reply, dict):
            raise TypeError("not a map")
        if reply["type"] == "error":
            return int(reply["exit_code"]), "", f"grite: {reply['message']}\n"
        outcome = reply["data"]["outcome"]
        return int(outcome["exit_code"]), str(outcome["stdout"]), str(outcome["stderr"])
    except (KeyError, TypeError, ValueError) as exc:
        raise Unserved("protocol", f"the daemon's reply to RunArgv lacks {exc}") from exc


def _write(code: int, stdout: str, stderr: str, environ: Mapping[str, str] | None = None) -> int:
    try:
        if stdout and not (environ is not None and _paged(stdout, environ)):
            sys.stdout.write(stdout)
            sys.stdout.flush()
        if stderr:
            sys.stderr.write(stderr)
            sys.stderr.flush()
    except BrokenPipeError:
        # The reader went away (e.g. `| head`); do not let the interpreter complain at exit.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 141
    return code


def _paged(text: str, environ: Mapping[str, str]) -> bool:
    """Show `text` through the pager when it is longer than the terminal (as git does:
    GRITE_PAGER, else PAGER, else `less` with LESS=FRX); False when it was not paged."""
    if not _isatty(sys.stdout):
        return False
    command = environ.get("GRITE_PAGER", environ.get("PAGER", "less"))
    if not command.strip() or command.strip() == "cat":
        return False
    try:
        rows = os.get_terminal_size(sys.stdout.fileno()).lines
    except (OSError, ValueError):
        rows = 24
    if text.count("\n") < rows:
        return False
    # Deliberately lazy: only a long page on a terminal starts a process.
    import subprocess

    env = dict(environ)
    env.setdefault("LESS", "FRX")
    try:
        pager = subprocess.Popen(command, shell=True, stdin=subprocess.PIPE, env=env)
    except OSError:
        return False
    try:
        assert pager.stdin is not None
        pager.stdin.write(text.encode("utf-8", "replace"))
        pager.stdin.close()
    except BrokenPipeError:
        pass  # the reader quit the pager early: that is fine
    pager.wait()
    return True


_SCISSORS = "# ------------------------ >8 ------------------------"
_EDITED = {
    ("issue", "create"): "the new issue",
    ("issue", "comment"): "your comment",
    ("issue", "update"): "the issue (it replaces the current body)",
}


def _positional(argv: list[str]) -> list[str]:
    words, skip = [], False
    for word in argv:
        if skip:
            skip = False
        elif word in _GLOBAL_WITH_VALUE:
            skip = True
        elif not word.startswith("-"):
            words.append(word)
    return words


def _body_from_editor(
    argv: list[str], environ: Mapping[str, str], current_body: Callable[[str], str]
) -> bytes | None:
    """On a terminal, `issue create` and `issue comment` without --body, and `issue update`
    without --title or --body (the editor then starts with the current body, read with
    `current_body(issue)`), open the user's editor (GRITE_EDITOR, VISUAL, EDITOR, else vi)
    here, in the client, as `git commit` does; returns the text written there, None when no
    editor is due.

    Raises:
        InvalidArgs: the editor failed, or left a comment empty.
    """
    words = _positional(argv)
    what = _EDITED.get(tuple(words[:2]))  # type: ignore[arg-type]
    if what is None or "--json" in argv or not (_isatty(sys.stdin) and _isatty(sys.stdout)):
        return None
    if any(w in ("--body", "-b") or w.startswith("--body=") for w in argv):
        return None
    updating = words[:2] == ["issue", "update"]
    if updating and (
        len(words) < 3 or any(w in ("--title", "-t") or w.startswith("--title=") for w in argv)
    ):
        return None
    if any(w in ("-h", "--help") for w in argv):
        return None
    # Deliberately lazy: only an interactive create or comment gets here.
    import subprocess
    import tempfile

    editor = environ.get("GRITE_EDITOR") or environ.get("VISUAL") or environ.get("EDITOR") or "vi"
    start = current_body(words[2]) if updating else ""
    fd, path = tempfile.mkstemp(prefix="grite-body-", suffix=".md")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(
                f"{start}\n{_SCISSORS}\n# Write the body of {what} above this line; everything below "
                "it is ignored.\n# An empty body "
                + ("cancels.\n" if "comment" in what else "leaves the issue without one.\n")
            )
        # As git runs it: the editor setting is a shell command, the file its argument.
        status = subprocess.call(["sh", "-c", editor + ' "$@"', editor, path])
        if status != 0:
            raise InvalidArgs(
                f"the editor ({editor}) exited with status {status}; nothing was written"
            )
        with open(path, encoding="utf-8", errors="surrogateescape") as f:
            text = f.read().split(_SCISSORS, 1)[0].strip("\n")
    finally:
        os.unlink(path)
    if not text.strip() and "comment" in what:
        raise InvalidArgs("the comment is empty; nothing was written")
    if updating and text == start.strip("\n"):
        raise InvalidArgs("the body is unchanged; nothing was written")
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise InvalidArgs("the editor wrote text that is not UTF-8; nothing was written") from exc


def _error(err: GriteError, argv: list[str]) -> int:
    """Report an error that stopped the command before it ran, as the CLI reports errors."""
    # Deliberately lazy: only this error path renders (msgspec's JSON, like every command).
    from grite.cli.render import human_error, json_error

    if "--json" in argv:
        return _write(err.exit_code, json_error(err), "")
    return _write(err.exit_code, "", human_error(err))


def _interrupted(exc: Interrupted) -> int:
    """Ctrl-C while the daemon had the command: say what was done (exit 130 either way)."""
    if exc.reply is None:
        if exc.sent:
            note = (
                "grite: interrupted; the daemon did not say whether the command was done "
                "(check before running it again)\n"
            )
        else:
            note = "grite: interrupted; nothing was done\n"
        _write(130, "", note)
        return 130
    try:
        code, out, errors = _outcome(exc.reply)
    except Unserved:
        _write(130, "", "grite: interrupted; the daemon's answer was unreadable\n")
        return 130
    if code == 130:  # cancelled before anything was written: its message says so
        _write(130, out, errors)
        return 130
    _write(code, out, errors)
    _write(130, "", "grite: interrupted, but the command had already been done (above)\n")
    return 130


def _show_progress(elapsed_ms: int) -> None:
    try:
        sys.stderr.write(f"grite: still running ({elapsed_ms // 1000} s)\n")
        sys.stderr.flush()
    except (OSError, ValueError):
        pass


def _wants_progress(policy: Policy) -> bool:
    if policy.debug:
        return True
    try:
        return sys.stderr.isatty()
    except (AttributeError, ValueError):
        return False


def route(argv: list[str], environ: Mapping[str, str] | None = None) -> int:
    """Run one `grite` command through the daemon or in-process.

    Args:
        argv: arguments after the program name.
        environ: the environment (default os.environ).

    Returns:
        The exit status.
    """
    env = os.environ if environ is None else environ
    undecodable = _undecodable(argv)
    if undecodable is not None:
        return _error(undecodable, argv)
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
    try:
        policy = Policy.from_environ(env)
    except InvalidArgs as err:
        return _error(err, argv)
    if runs_in_process(argv, env):
        policy.mode = "off"  # chosen, not a fallback

    def current_body(issue: str) -> str:
        code, out, _errors, transport = _run(["issue", "show", issue, "--json"], env, policy)
        transport.finish()
        if code != 0:
            raise InvalidArgs(f"cannot read issue {issue} to edit its body; check the id")
        import json  # deliberately lazy: only an interactive update gets here

        return str(json.loads(out)["data"]["body"])

    try:
        edited = _body_from_editor(argv, env, current_body)
        if edited is not None:
            argv = [*argv, "--body", "-"]
        code, out, errors, transport = _run(argv, env, policy, edited)
    except (InvalidArgs, DaemonRequired) as err:
        return _error(err, argv)
    except Interrupted as exc:
        return _interrupted(exc)
    status = _write(code, out, errors, env)
    transport.finish()  # a cold start's daemon starts now, when the command is done
    return status


def _run(
    argv: list[str], env: Mapping[str, str], policy: Policy, stdin: bytes | None = None
) -> tuple[int, str, str, FallbackTransport]:
    """Send one command line to the daemon or run it here; (status, stdout, stderr) and the
    transport, whose `finish` starts a daemon after a cold start."""
    fields = _invocation_fields(argv, env, stdin)
    call = Call(
        wire.run_argv(**fields),  # type: ignore[arg-type]
        request_id=fields["request_id"],  # type: ignore[arg-type]
        actor=settings.actor(env) or "",
    )
    # A cold start runs here while the daemon starts in the background (no cold penalty).
    transport = FallbackTransport.for_environ(
        env, _local, client="cli", policy=policy, start="background"
    )
    if transport.daemon is not None and _wants_progress(policy):
        # Long work (a large sync) says it is alive, as git's progress does on a terminal.
        transport.daemon.on_progress = _show_progress
    try:
        code, out, errors = transport.request(call, _outcome)
    except KeyboardInterrupt:
        # Ctrl-C just after the daemon answered: the answer says what was done.
        answered = transport.daemon.answered if transport.daemon is not None else None
        if answered is None or transport.served_by == "local":
            raise
        raise Interrupted(answered, sent=True) from None
    finally:
        transport.close()
    return code, out, errors, transport


def console_main() -> None:
    """The `grite` console script (the only place that calls sys.exit)."""
    try:
        code = route(sys.argv[1:])
    except KeyboardInterrupt:
        code = 130
    sys.exit(code)


if __name__ == "__main__":
    console_main()
