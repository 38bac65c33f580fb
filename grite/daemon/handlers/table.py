"""The daemon's one dispatch table: request Struct type -> handler, and how it is served.

Its keys are the capabilities the daemon sends in its hello (`capabilities`). A new request
type gets one entry here and one `cmd_<request>` method in the module of its family.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from grite.daemon.session import Kind, Route
from grite.ipc import protocol

if TYPE_CHECKING:
    from grite.daemon.handlers.commands import Commands
    from grite.daemon.handlers.control import Control
    from grite.daemon.handlers.watch import Watches

__all__ = ["capabilities", "handler_table"]


def handler_table(commands: Commands, watches: Watches, control: Control) -> dict[type, Route]:
    """Every request type the daemon serves, with its handler."""
    return {
        protocol.RunArgv: Route(Kind.WORK, commands.cmd_run_argv),
        protocol.Op: Route(Kind.WORK, commands.cmd_op),
        protocol.Watch: Route(Kind.STREAM, watches.cmd_watch),
        protocol.DaemonStatus: Route(Kind.CONTROL, control.cmd_daemon_status),
        protocol.DaemonStop: Route(Kind.CONTROL, control.cmd_daemon_stop),
        protocol.Retire: Route(Kind.CONTROL, control.cmd_retire),
        protocol.Ping: Route(Kind.CONTROL, control.cmd_ping),
    }


def capabilities(table: dict[type, Route]) -> list[str]:
    """The hello's capability list: the tags of the table's request types, sorted."""
    return sorted(protocol.request_tag(kind) for kind in table)
