"""What the daemon's parts share: settings, lifecycle states, load counters, the hook interface.

The daemon's server is four parts, split as Mercurial's commandserver.py splits its own
(`server` is one session, `unixforkingservice` the accept loop, `unixservicehandler` the small
interface between them: https://repo.mercurial-scm.org/hg/file/tip/mercurial/commandserver.py):
supervisor.py (accept loop, backpressure, run and shutdown), session.py (one
connection), handlers/ (one module per request family) and housekeeping.py (idle exit,
heartbeat, status). They meet here: `ServiceConfig` holds every setting, `Load` the counters
they all update on the event loop, and `Service` is all a session, a handler or housekeeping
may ask of the accept loop (the Supervisor implements it). Imports msgspec and the standard
library; grite modules only for type hints.
"""

from __future__ import annotations

import enum
import time
from typing import TYPE_CHECKING, Protocol

import msgspec

if TYPE_CHECKING:
    import asyncio

    from grite.daemon.session import Connection
    from grite.ipc import protocol

__all__ = [
    "KEEPALIVE_INTERVAL",
    "STOP_WORDS",
    "Load",
    "Service",
    "ServiceConfig",
    "State",
    "StopReason",
]

# While a request runs, a Progress frame this often: well inside the client's reply deadline
# (grite.ipc.client.REQUEST_TIMEOUT, 60 s), so long work is never timed out and run twice.
KEEPALIVE_INTERVAL = 5.0


class State(enum.Enum):
    STARTING = "starting"  # constructed; the listener is not served yet
    RUNNING = "running"  # accepting connections and serving requests
    DRAINING = "draining"  # no longer accepting; finishing requests already received
    STOPPED = "stopped"  # listener, connections, workers and locks all released


class StopReason(enum.Enum):
    SIGNAL = "signal"  # SIGINT or SIGTERM (or the caller's shutdown awaitable)
    IDLE = "idle"  # no connection and no request for idle_timeout seconds
    STOP = "stop"  # a client sent DaemonStop
    RETIRE = "retire"  # a client of another build sent Retire
    LOST_SOCKET = "lost_socket"  # self-bind: the socket path is no longer our inode
    UPGRADED = "upgraded"  # the installed grite source changed under us


# Why the daemon stops, as `systemctl --user status` and the journal show it (STATUS=).
STOP_WORDS = {
    StopReason.SIGNAL: "stopping: SIGTERM or SIGINT",
    StopReason.IDLE: "stopping: idle",
    StopReason.STOP: "stopping: `grite daemon stop`",
    StopReason.RETIRE: "stopping: retired by a client of another build",
    StopReason.LOST_SOCKET: "stopping: another daemon took over the socket path",
    StopReason.UPGRADED: "stopping: the installed grite changed (upgrade)",
}


class ServiceConfig(msgspec.Struct, frozen=True, kw_only=True):
    """The daemon server's settings, fixed for its life.

    Attributes:
        socket_path: the endpoint (bound by the Supervisor in self-bind mode when it is given
            no listener).
        idle_timeout: seconds without connections and requests before exiting; 0 = never.
        idle_timeout_fixed: True when --idle-timeout set it; otherwise a repository's
            `[daemon] idle_timeout_seconds` may lengthen it (housekeeping.py).
        mode: "systemd", "launchd" or "self-bind"; only self-bind touches the socket path.
        max_in_flight: forwarded commands running at once before answering `busy`.
        hello_timeout: seconds a new connection has to send its hello.
        connection_idle: seconds a greeted connection may wait between requests.
        drain_timeout: seconds shutdown waits for connections still serving a request.
        tick: seconds between housekeeping rounds.
        keepalive: seconds between Progress frames while a request runs.
        log_location: where the log goes, for `grite daemon status` ("" when unknown).
    """

    socket_path: str
    idle_timeout: float = 300
    idle_timeout_fixed: bool = True
    mode: str = "self-bind"
    max_in_flight: int = 64
    hello_timeout: float = 10.0
    connection_idle: float = 60.0
    drain_timeout: float = 30.0
    tick: float = 1.0
    keepalive: float = KEEPALIVE_INTERVAL
    log_location: str = ""


class Load:
    """What the daemon is doing now; read and written only on the event loop."""

    def __init__(self) -> None:
        # Handler tasks of greeted or greeting connections, with their facts.
        self.connections: dict[asyncio.Task[object], Connection] = {}
        # Handler tasks of accepted sockets not yet in `connections` (their streams are being
        # set up): counted as connections, so an idle exit never drops one.
        self.accepted: set[asyncio.Task[object]] = set()
        self.in_flight = 0  # forwarded commands and Ops running in the worker pool
        self.requests_served = 0
        self.started = time.monotonic()
        self.started_ms = time.time_ns() // 1_000_000
        self.last_activity = time.monotonic()

    def touch(self) -> None:
        """Note activity now: the idle timeout counts from the last one."""
        self.last_activity = time.monotonic()


class Service(Protocol):
    """What a session, a handler or housekeeping may ask of the accept loop."""

    @property
    def config(self) -> ServiceConfig: ...
    @property
    def hello(self) -> protocol.Hello:
        """The hello this daemon sends (its build id, pid and capabilities)."""
        ...

    @property
    def load(self) -> Load: ...
    @property
    def state(self) -> State: ...
    @property
    def stop_requested(self) -> bool: ...
    async def until_stop_requested(self) -> None:
        """Return once a stop is requested (at once when one already is)."""
        ...

    def request_stop(self, reason: StopReason) -> None:
        """Begin shutdown (idempotent: the first reason wins)."""
        ...

    def status(self) -> protocol.StatusResult:
        """The answer to `grite daemon status`."""
        ...
