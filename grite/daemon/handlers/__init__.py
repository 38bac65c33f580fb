"""The daemon's request handlers, one module per request family, and their one table.

commands.py (RunArgv, Op), watch.py (Watch) and control.py (DaemonStatus, DaemonStop, Retire,
Ping) each hold `cmd_<request>` methods; table.py maps request Struct types to them. A handler
unpacks the request, calls one operation or the Service (service.py), and returns a result
Struct; what a handler is (Route, Call, Refusal) is defined in session.py.
"""

from grite.daemon.handlers.commands import Commands, Executor, Executors, OpExecutor
from grite.daemon.handlers.control import Control
from grite.daemon.handlers.table import capabilities, handler_table
from grite.daemon.handlers.watch import Watches

__all__ = [
    "Commands",
    "Control",
    "Executor",
    "Executors",
    "OpExecutor",
    "Watches",
    "capabilities",
    "handler_table",
]
