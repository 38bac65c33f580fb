"""The full CLI, executed in one place for both paths: `run_invocation` parses argv with the
argh command tree, resolves the repository and actor, calls the operation and renders the
result, and returns the output instead of printing it. The daemon runs it for forwarded
invocations; `main` runs it in-process. Same code, so the same bytes on stdout either way.

This module never touches sys.stdout, os.environ, the cwd or the umask of the process: the
invocation carries all of that.
"""

from __future__ import annotations

import argparse
import difflib
import inspect
import io
import sys
import traceback
from collections.abc import Callable
from contextvars import ContextVar
from functools import lru_cache
from typing import IO, Any

import argh
import msgspec

import grite
from grite.cli import (
    agent_commands,
    context_commands,
    lock_commands,
    maint_commands,
    prime_commands,
    setup_commands,
    sync_commands,
)
from grite.cli.commands import LocalCommand, build_tree
from grite.cli.render import Renderer, color_wanted, human_error, json_error, json_success
from grite.model import settings
from grite.model.display import printable
from grite.model.errors import GriteError, InvalidArgs
from grite.model.invocation import Invocation, Outcome
from grite.ops.repo_handle import RepoHandle
from grite.ops.table import HandleProvider, op_context, op_runner
from grite.storage.repo import RepoPaths

__all__ = ["RENDERERS", "run_invocation"]


# Command areas beyond the core issue tracker; each adds commands and renderers (the
# operations they run are in grite.ops.table).
_AREAS = (
    sync_commands,
    lock_commands,
    maint_commands,
    agent_commands,
    context_commands,
    prime_commands,
    setup_commands,
)
RENDERERS: dict[type, Callable[[Renderer, Any], str]] = {}
for _area in _AREAS:
    RENDERERS.update(_area.RENDERERS)


class _Streams:
    """Where argparse's own messages (help, usage errors) go for the current invocation, and
    the argv being parsed (for "did you mean" hints)."""

    def __init__(self, argv: list[str] | None = None) -> None:
        self.out = io.StringIO()
        self.err = io.StringIO()
        self.argv = argv or []


_streams: ContextVar[_Streams] = ContextVar("grite_cli_streams")


class _ParserExit(Exception):
    def __init__(self, status: int, message: str | None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class _HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Help that names a default once, and only one worth naming (not None, off or empty);
    argh's own formatter appends "(default: 'open')" even when the help says it already."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        default = action.default
        if (
            "(default" in text
            or not action.option_strings
            or default is argparse.SUPPRESS
            or default in (None, False, "", [])
        ):
            return text
        return f"{text} (default: %(default)s)"


class _Parser(argh.ArghParser):
    """argparse that writes into the invocation's buffers and raises instead of exiting."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("formatter_class", _HelpFormatter)
        super().__init__(*args, **kwargs)

    def _print_message(self, message: str, file: IO[str] | None = None) -> None:
        if not message:
            return
        streams = _streams.get()
        (streams.err if file is sys.stderr else streams.out).write(message)

    def exit(self, status: int = 0, message: str | None = None) -> None:  # type: ignore[override]
        raise _ParserExit(status, message)

    def error(self, message: str) -> None:  # type: ignore[override]
        argv = _streams.get().argv
        # The root reports unrecognized arguments, but the command's own parser knows them.
        leaf = _leaf(self, argv)
        hints = _misspelt_options(leaf, argv)
        if hints:
            # argparse reports a missing required option before an unknown one, so the typo
            # (`--tittle`) is named here, whatever argparse noticed first.
            message = "; ".join(hints)
        raise InvalidArgs(
            f"{message}\n{leaf.format_usage().strip()}\nRun '{leaf.prog} --help' for help."
        )


def _leaf(parser: argparse.ArgumentParser, argv: list[str]) -> argparse.ArgumentParser:
    """The parser of the (sub)command that `argv` names, starting at `parser`."""
    for word in argv:
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction) and word in action.choices:
                parser = action.choices[word]
                break
    return parser


def _misspelt_options(parser: argparse.ArgumentParser, argv: list[str]) -> list[str]:
    """Say "unknown option --tittle (did you mean --title?)" for each unknown long option."""
    known = [o for o in parser._option_string_actions if o.startswith("--")]
    hints = []
    for word in argv:
        option = word.split("=", 1)[0]
        if not option.startswith("--") or option == "--" or option in known:
            continue
        if any(k.startswith(option) for k in known):
            continue  # an abbreviation argparse accepts
        close = difflib.get_close_matches(option, known, n=1, cutoff=0.7)
        hint = f" (did you mean {close[0]}?)" if close else ""
        hints.append(f"unknown option {option}{hint}")
    return hints


def _global_flags(parser: argparse.ArgumentParser, default: Any) -> None:
    kw: dict[str, Any] = {} if default is None else {"default": default}
    parser.add_argument("--json", action="store_true", help="machine-readable JSON output", **kw)
    parser.add_argument("--quiet", "-q", action="store_true", help="print nothing on success", **kw)
    parser.add_argument("--actor", metavar="ID", help="act as this actor", **kw)
    parser.add_argument(
        "--data-dir", metavar="PATH", help="actor data directory (env GRITE_HOME)", **kw
    )
    parser.add_argument(
        "--no-daemon", action="store_true", help="run in this process (env GRITE_NO_DAEMON=1)", **kw
    )
    parser.add_argument(
        "--color",
        choices=("auto", "always", "never"),
        metavar="WHEN",
        help="colour: auto (on a terminal, unless NO_COLOR is set), always or never",
        **kw,
    )


@lru_cache(maxsize=1)
def _parser() -> _Parser:
    # Built once per process and only read afterwards, so concurrent daemon threads share it.
    leaf_globals = argparse.ArgumentParser(add_help=False)
    _global_flags(leaf_globals, argparse.SUPPRESS)
    root = _Parser(
        prog="grite",
        description="grite: an issue tracker that lives in your git repository.",
        epilog="See grite(1) for every command, file and exit status.",
    )
    _global_flags(root, None)
    root.add_argument("--version", action="version", version=f"grite {grite.__version__}")
    top, issue = build_tree(root, [leaf_globals])
    for area in _AREAS:
        area.register(top, issue, [leaf_globals])
    return root


def _call_command(func: Callable[..., Any] | None, ns: argparse.Namespace) -> Any:
    if func is None:  # a group without a command; argparse's `required` catches most of these
        raise InvalidArgs("missing command; run 'grite --help' to see the commands")
    kwargs = {}
    for name, param in inspect.signature(func).parameters.items():
        if param.kind in (param.POSITIONAL_OR_KEYWORD, param.KEYWORD_ONLY):
            # argh names positional arguments with dashes (actor-id), options with underscores.
            value = getattr(ns, name, getattr(ns, name.replace("_", "-"), param.default))
            if value is inspect.Parameter.empty:
                raise InvalidArgs(f"missing argument {name}; run 'grite --help'")
            kwargs[name] = value
    return func(**kwargs)


def _stdin_text(inv: Invocation) -> str:
    if inv.stdin is None:
        raise InvalidArgs("'-' means read from standard input, but none was given")
    try:
        return inv.stdin.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidArgs("standard input is not UTF-8 text") from exc


def _with_stdin(args: Any, inv: Invocation) -> Any:
    for field in ("body", "comment"):
        if getattr(args, field, None) == "-":
            return msgspec.structs.replace(args, **{field: _stdin_text(inv)})
    return args


def _run_local(cmd: LocalCommand, json: bool, quiet: bool, inv: Invocation) -> Outcome:
    # The daemon-control commands always run in the client process; they import the daemon's
    # client side only here, deliberately.
    if cmd.run is not None:
        code, out, err = cmd.run(inv, _parser(), **cmd.kwargs, json=json, quiet=quiet)
        return Outcome(exit_code=code, stdout=out, stderr=err)
    if cmd.name in ("install", "uninstall"):
        from grite.cli import service_commands

        fn = getattr(service_commands, f"daemon_{cmd.name}")
    else:
        from grite.cli import daemon_commands

        fn = getattr(daemon_commands, f"daemon_{cmd.name}")
    code, out, err = fn(**cmd.kwargs, json=json, quiet=quiet)
    return Outcome(exit_code=code, stdout=out, stderr=err)


def run_invocation(
    inv: Invocation, handles: HandleProvider | None = None, ran: list[type] | None = None
) -> Outcome:
    """Run one grite command and return its output and exit status.

    Args:
        inv: argv, cwd, environment facts, stdin, request id and clock from the client.
        handles: where to get open repositories (the daemon's warm registry); None opens one
            for this command and closes it afterwards.
        ran: receives the args type of the operation the command runs, before it runs (the
            daemon keeps the replies of reads, and tells watchers a sync's events came by sync).
    """
    streams = _Streams(inv.argv)
    token = _streams.set(streams)
    want_json = "--json" in inv.argv
    try:
        try:
            func, ns = argh.dispatching.parse_and_resolve(_parser(), inv.argv, completion=False)
            command = _call_command(func, ns)
        except _ParserExit as exc:
            if exc.message:
                streams.err.write(exc.message)
            return Outcome(
                exit_code=exc.status, stdout=streams.out.getvalue(), stderr=streams.err.getvalue()
            )
        want_json = bool(getattr(ns, "json", False))
        quiet = bool(getattr(ns, "quiet", False))
        if isinstance(command, LocalCommand):
            return _run_local(command, want_json, quiet, inv)
        warnings: list[str] = []
        if ran is not None:  # before it runs: a sync that fails half-way still pulled
            ran.append(type(command))
        result = _execute(command, ns, inv, handles, warnings)
        if want_json:
            out = json_success(result)
        elif quiet:
            out = ""
        else:
            color = color_wanted(getattr(ns, "color", None) or "auto", inv.env, inv.stdout_isatty)
            renderer = Renderer(
                inv.env.get("TZ"), inv.columns, inv.stdout_isatty, color=color, now_ms=inv.now_ms
            )
            custom = RENDERERS.get(type(result))
            out = custom(renderer, result) if custom is not None else renderer.render(result)
        err_text = streams.err.getvalue()
        if not quiet:
            err_text += "".join(f"warning: {printable(w)}\n" for w in warnings)
        return Outcome(exit_code=0, stdout=out, stderr=err_text)
    except GriteError as err:
        if want_json:
            return Outcome(exit_code=err.exit_code, stdout=json_error(err), stderr="")
        return Outcome(exit_code=err.exit_code, stdout="", stderr=human_error(err))
    except Exception as exc:  # the CLI's last line of defence: report, never crash silently
        err = GriteError(
            f"internal error: {exc.__class__.__name__}: {exc}; this is a bug in grite, "
            "please report it with the output of 'grite --version'"
        )
        detail = traceback.format_exc() if settings.debug(inv.env) else ""
        if want_json:
            return Outcome(exit_code=1, stdout=json_error(err), stderr=detail)
        return Outcome(exit_code=1, stdout="", stderr=human_error(err) + detail)
    finally:
        _streams.reset(token)


# Ignored WAL commits named one by one in the warnings; more are counted.
_SKIPPED_SHOWN = 3


def _skipped_warnings(skipped: dict[str, str]) -> list[str]:
    """One warning per WAL commit the view leaves out (their events are ignored, everything
    else works), so a poisoned history is never silent and never bricks anything."""
    reasons = [skipped[commit] for commit in sorted(skipped)]
    lines = [
        f"{reason}; its events are ignored ('grite doctor' lists every ignored commit, "
        "docs/security.md says why)"
        for reason in reasons[:_SKIPPED_SHOWN]
    ]
    if len(reasons) > _SKIPPED_SHOWN:
        lines.append(
            f"{len(reasons) - _SKIPPED_SHOWN} more WAL commits are ignored; run 'grite doctor'"
        )
    return lines


def _execute(
    args: Any,
    ns: argparse.Namespace,
    inv: Invocation,
    handles: HandleProvider | None,
    warnings: list[str],
) -> Any:
    args = _with_stdin(args, inv)
    if "cwd" in getattr(args, "__struct_fields__", ()) and args.cwd is None:
        # Relative paths in arguments (export -o FILE) mean the client's cwd, not the daemon's.
        args = msgspec.structs.replace(args, cwd=inv.cwd)
    data_dir = settings.data_dir(inv.env, getattr(ns, "data_dir", None))
    opened: list[RepoHandle] = []
    used: list[RepoHandle] = []

    def opener(p: RepoPaths) -> RepoHandle:
        if handles is not None:
            handle = handles.get(p)
        else:
            handle = RepoHandle.open(p)
            opened.append(handle)
        used.append(handle)
        return handle

    try:
        ctx = op_context(
            cwd=inv.cwd,
            opener=opener,
            request_id=inv.request_id,
            now_ms=inv.now_ms,
            actor=getattr(ns, "actor", None),
            data_dir=data_dir,
            warnings=warnings,
        )
        result = op_runner().run(ctx, args)
        for handle in used:
            if handle.wal_error is not None:
                # Reads answer from the history before the damaged commit (see RepoHandle).
                warnings.append(
                    f"{handle.wal_error.message}; showing what was recorded before that commit"
                )
            warnings.extend(_skipped_warnings(handle.wal_skipped))
        return result
    finally:
        for handle in opened:
            handle.close()
