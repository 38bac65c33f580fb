"""`grite batch [--stop-on-error]`: run JSON-lines commands from stdin over one connection.

Each input line is one operation in the tagged form of its args Struct, exactly as the typed
protocol carries it: `{"type": "issue_show", "issue": "abcd"}`, `{"type": "issue_create",
"title": "t", "labels": ["bug"]}`, `{"type": "issue_ready"}` (the `"type"` values are the
args tags of grite.model.requests and the requests_* modules; fields and defaults are theirs).
Blank lines are skipped. For every other line, in order, one line of output: the JSON envelope
`{"schema_version":1,"ok":true,"data":...}` or `{"schema_version":1,"ok":false,"error":...}`,
identical to the command's `--json` output, on one line. A failing command does not stop the
rest unless --stop-on-error. Exit status: 0 when every command succeeded, else the status of
the first failure. Commands go over ONE daemon connection (a grite.Client), or run in this
process with --no-daemon, or when no daemon can be reached and GRITE_DAEMON is not require. Run by the `grite` entry before
routing; reads the environment only through the mapping the entry passes in.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Mapping
from typing import Any

import msgspec

from grite.cli import envelope
from grite.client import Client
from grite.model import batch_commands, settings
from grite.model.errors import GriteError, InvalidArgs

__all__ = ["main"]

_pack = msgspec.msgpack.Encoder()


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="grite batch", add_help=False)
    parser.add_argument("--json", action="store_true")  # output is always JSON lines
    parser.add_argument("--quiet", "-q", action="store_true")
    parser.add_argument("--actor")
    parser.add_argument("--data-dir")
    parser.add_argument("--no-daemon", action="store_true")
    parser.add_argument("--color", choices=("auto", "always", "never"))  # nothing is coloured
    parser.add_argument("--stop-on-error", action="store_true")
    parser.add_argument("command", choices=["batch"])
    return parser


def _packed(number: int, line: str) -> bytes:
    try:
        doc = msgspec.json.decode(line)
    except msgspec.DecodeError as exc:
        raise InvalidArgs(f"line {number} is not JSON: {exc}", {"line": number}) from exc
    # Strict here, before anything runs: an unknown key (`"label"` for `"labels"`) would
    # otherwise be dropped by the decoder and the command would succeed without it.
    return _pack.encode(batch_commands.check(number, doc))


def run(client: Client, lines: Any, out: Any, stop_on_error: bool = False) -> int:
    """Run every command of `lines` through `client`, writing one envelope line each.

    Returns:
        0, or the exit status of the first failed command.
    """
    status = 0
    for number, raw in enumerate(lines, 1):
        line = raw.strip()
        if not line:
            continue
        try:
            doc = envelope.success(client.call_packed(_packed(number, line)))
        except GriteError as err:
            doc = envelope.failure(err)
            status = status or err.exit_code
        out.write(envelope.encode(doc))
        out.flush()
        if status and stop_on_error:
            break
    return status


def main(argv: list[str], environ: Mapping[str, str]) -> int:
    """Run `grite batch`; returns the exit status."""
    try:
        ns, extra = _parser().parse_known_args(argv)
    except SystemExit:
        ns, extra = None, argv
    if ns is None or extra:
        err = InvalidArgs("usage: grite batch [--stop-on-error] < commands.jsonl")
        sys.stdout.write(envelope.encode(envelope.failure(err)))
        return err.exit_code
    data_dir = settings.data_dir(environ, ns.data_dir)
    try:
        # The daemon policy (GRITE_DAEMON, GRITE_NO_DAEMON) comes from the environment.
        client = Client(
            os.getcwd(),
            actor=ns.actor,
            data_dir=data_dir,
            daemon=False if ns.no_daemon else True,
            environ=environ,
        )
    except GriteError as err:
        sys.stdout.write(envelope.encode(envelope.failure(err)))
        return err.exit_code
    try:
        return run(client, sys.stdin, sys.stdout, ns.stop_on_error)
    except BrokenPipeError:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 141
    finally:
        client.close()
