"""`grite watch [--json] [--since WAL_HEAD]`: print the repository's notifications as they come.

Run by the `grite` entry before routing (it streams over its own daemon connection, which the
one-shot RunArgv cannot). Starts the daemon when none runs: notifications exist only there, so
`--no-daemon` (or GRITE_NO_DAEMON=1) is an error. One line per notification, flushed at once:
with --json the notification's JSON object (`{"type": "wal_advanced", ...}`), else a short
human line. Ctrl-C (SIGINT) ends it quietly with status 0. Reads the environment only through
the mapping the entry passes in.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Mapping

from grite.cli import envelope
from grite.client import Client
from grite.ipc.transport import Policy
from grite.model import notifications, settings
from grite.model.display import printable
from grite.model.errors import Environment, GriteError, InvalidArgs
from grite.model.notifications import (
    IssueChanged,
    LockChanged,
    Notification,
    Subscribed,
    WalAdvanced,
)

__all__ = ["format_line", "main"]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="grite watch", add_help=False)
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--quiet", "-q", action="store_true")
    parser.add_argument("--actor")
    parser.add_argument("--data-dir")
    parser.add_argument("--no-daemon", action="store_true")
    parser.add_argument("--color", choices=("auto", "always", "never"))  # nothing is coloured
    parser.add_argument("--since", "-s")
    parser.add_argument("command", choices=["watch"])
    return parser


def format_line(note: Notification) -> str:
    """The human line for one notification (no newline)."""
    return printable(_line(note))


def _line(note: Notification) -> str:
    # Lock resources and owners, snapshot refs: from refs other clones push (escaped above).
    if isinstance(note, IssueChanged):
        return f"issue {note.issue_id[:12]} {note.kind} (event {note.event_id[:12]})"
    if isinstance(note, WalAdvanced):
        prev = note.previous[:12] if note.previous else "(none)"
        return f"wal {note.wal_head} after {prev} [{note.source}, {note.events} events]"
    if isinstance(note, LockChanged):
        if not note.owner:
            return f"lock {note.resource} released"
        return f"lock {note.resource} held by {note.owner[:12]} until {note.expires_ms}"
    if isinstance(note, Subscribed):
        return f"watching after {note.wal_head or '(empty WAL)'}"
    return f"snapshot {note.ref}"


def _fail(err: GriteError, json: bool) -> int:
    if json:
        sys.stdout.write(envelope.encode(envelope.failure(err)))
    else:
        sys.stderr.write(f"error: {printable(err.message)}\n")
    return err.exit_code


def main(argv: list[str], environ: Mapping[str, str]) -> int:
    """Run `grite watch`; returns the exit status."""
    json = "--json" in argv
    try:
        ns, extra = _parser().parse_known_args(argv)
        if extra:
            raise InvalidArgs(
                f"unrecognized arguments: {' '.join(extra)}; see 'grite watch --help'"
            )
    except SystemExit:
        return _fail(InvalidArgs("usage: grite watch [--json] [--since WAL_HEAD]"), json)
    except GriteError as err:
        return _fail(err, json)
    try:
        no_daemon = ns.no_daemon or Policy.from_environ(environ).mode == "off"
    except GriteError as err:
        return _fail(err, json)
    if no_daemon:
        return _fail(
            Environment(
                "grite watch needs the daemon: notifications are published by the daemon that "
                "runs the repository's commands and polls its refs; run it without --no-daemon, "
                "GRITE_NO_DAEMON and GRITE_DAEMON=off"
            ),
            json,
        )
    data_dir = settings.data_dir(environ, ns.data_dir)
    client = Client(os.getcwd(), actor=ns.actor, data_dir=data_dir, environ=environ)
    try:
        for note in client.watch(ns.since):
            line = notifications.encode_json(note).decode() if ns.json else format_line(note)
            sys.stdout.write(line + "\n")
            sys.stdout.flush()
    except KeyboardInterrupt:
        return 0
    except BrokenPipeError:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 0
    except GriteError as err:
        return _fail(err, json)
    finally:
        client.close()
    return 0
