"""The daemon's lifecycle: run, serve until asked to stop, drain, release everything.

One asyncio loop serves a listener that is either inherited (systemd, launchd) or bound here
(self-bind, see binding.py). The Supervisor builds the daemon's parts and joins them: the
Acceptor (below) accepts connections in batches and hands each to a Session (session.py)
for its hello and requests, which go through the one table of handlers/table.py; more than
`max_in_flight` running commands are answered `busy` (handlers/commands.py). A signal,
DaemonStop, Retire or housekeeping (housekeeping.py: idle, lost socket, upgrade) asks it to
stop; it then stops accepting, drains the connections and releases the listener, workers and
locks. It implements the Service hook interface (service.py) through which the other parts
reach it. Must not import grite.cli at module level (the executor is loaded lazily, in the
daemon only, by grite.daemon.handlers.commands).
"""

from __future__ import annotations

import asyncio
import errno
import logging
import os
import select
import signal
import socket
import time
from collections.abc import Awaitable, Callable, Coroutine
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

from grite.daemon.binding import Binding
from grite.daemon.handlers import (
    Commands,
    Control,
    Executors,
    Watches,
    capabilities,
    handler_table,
)
from grite.daemon.housekeeping import Housekeeping
from grite.daemon.hub import Hub
from grite.daemon.registry import Registry
from grite.daemon.replies import ReplyCache
from grite.daemon.service import STOP_WORDS, Load, ServiceConfig, State, StopReason
from grite.daemon.session import Connection, Session, mount_namespace
from grite.ipc import protocol
from grite.ipc.build import install_dir
from grite.ipc.paths import paths_for_socket

if TYPE_CHECKING:
    from grite.daemon.sd_notify import Notifier
    from grite.daemon.service import Service

__all__ = ["Acceptor", "ServeConnection", "Supervisor", "shutdown_signal"]

_log = logging.getLogger("grite.daemon")


async def shutdown_signal() -> int:
    """Resolve when SIGINT or SIGTERM arrives; returns the signal number."""
    loop = asyncio.get_running_loop()
    fired: asyncio.Future[int] = loop.create_future()

    def fire(signum: int) -> None:
        if not fired.done():
            fired.set_result(signum)

    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, fire, int(signum))
    try:
        return await fired
    finally:
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(signum)


# -- the accept loop: accept in batches, back off when out of descriptors --------------------
# Our own accept (not asyncio's server) so that every accepted socket has its handler task,
# counted by the idle check (service.Load) and awaited by shutdown, in the same loop step as the
# accept. At most `_ACCEPT_BATCH` connections per readiness event, so one burst of clients does
# not starve the ones already connected. The connection itself is served by a session
# (session.py), through the `serve` callback the Supervisor gives.

# Connections accepted per readiness event before the loop serves others.
_ACCEPT_BATCH = 64

# Serves one registered connection until it ends (a Session's serve).
ServeConnection = Callable[[Connection, asyncio.StreamReader], Awaitable[None]]


class Acceptor:
    """Accepts connections on one non-blocking listener for one service.

    Args:
        service: the accept loop's state and counters (connections are registered in its Load).
        listener: the listening socket, already non-blocking.
        serve: serves one connection once its streams are set up.
    """

    def __init__(self, service: Service, listener: socket.socket, serve: ServeConnection) -> None:
        self._service = service
        self._listener = listener
        self._serve = serve

    def set_accepting(self, on: bool) -> None:
        """Start or stop watching the listener for connections."""
        loop = asyncio.get_running_loop()
        if on:
            loop.add_reader(self._listener.fileno(), self._accept_ready)
        else:
            loop.remove_reader(self._listener.fileno())

    def _may_accept(self) -> bool:
        return self._service.state is State.RUNNING and not self._service.stop_requested

    def _accept_ready(self) -> None:
        # A readiness event may already be queued when stop is requested: never accept then.
        if self._may_accept():
            self.accept_queued(_ACCEPT_BATCH)

    def _resume_accepting(self) -> None:
        if self._may_accept():
            self.set_accepting(True)

    def accept_queued(self, limit: int | None) -> None:
        """Accept up to `limit` queued connections (None: all), each registered at once."""
        loop = asyncio.get_running_loop()
        load = self._service.load
        accepted = 0
        while limit is None or accepted < limit:
            try:
                sock, _ = self._listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except ConnectionAbortedError:
                continue  # that client gave up while queued
            except OSError as exc:
                if exc.errno in (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM):
                    # Out of descriptors: pause instead of spinning on a readable listener.
                    _log.warning("cannot accept connections (%s); retrying in 1 s", exc)
                    self.set_accepting(False)
                    loop.call_later(1.0, self._resume_accepting)
                else:
                    _log.warning("accept failed: %s", exc)
                return
            accepted += 1
            task = loop.create_task(self._on_socket(sock))
            load.accepted.add(task)
            load.touch()

    async def _on_socket(self, sock: socket.socket) -> None:
        task = asyncio.current_task()
        assert task is not None
        load = self._service.load
        try:
            reader, writer = await asyncio.open_unix_connection(sock=sock)
        except (OSError, asyncio.CancelledError):
            sock.close()
            return
        finally:
            # No suspension between here and registering the connection below.
            load.accepted.discard(task)
        conn = Connection(writer)
        load.connections[task] = conn
        load.touch()
        try:
            await self._serve(conn, reader)
        finally:
            del load.connections[task]
            load.touch()


class Supervisor:
    """The daemon's accept loop and lifecycle (implements service.Service).

    Args:
        config: the settings (socket path, idle timeout, mode, limits, timeouts).
        listener: an inherited listening socket (systemd/launchd), or one bound by the caller;
            None binds `config.socket_path` here (self-bind).
        binding: the self-bind ownership when the caller bound the socket (main does).
        registry: the per-repository handles (default: a fresh Registry).
        hub: the notification hub (default: a fresh Hub).
        executors: what runs forwarded command lines and Ops (default: the CLI app, run_op).
        notifier: service-manager notifications (systemd READY=1/STATUS=/STOPPING=1).
        on_ready: called once the server accepts connections.
    """

    def __init__(
        self,
        config: ServiceConfig,
        *,
        listener: socket.socket | None = None,
        binding: Binding | None = None,
        registry: Registry | None = None,
        hub: Hub | None = None,
        executors: Executors | None = None,
        notifier: Notifier | None = None,
        on_ready: Callable[[], None] | None = None,
    ) -> None:
        self._config = config
        self.mode = config.mode
        self._state = State.STARTING
        self._listener = listener
        self._binding = binding
        self._registry = registry or Registry(config.socket_path)
        self._hub = hub or Hub()
        self._notifier = notifier
        self._on_ready = on_ready
        self._load = Load()
        self._replies = ReplyCache()
        # Threads start on first use, so an instance that never serves starts none.
        self._pool = ThreadPoolExecutor(
            max_workers=min(32, config.max_in_flight), thread_name_prefix="grite-worker"
        )
        commands = Commands(
            executors or Executors(),
            self._registry,
            self._hub,
            self._replies,
            self._load,
            self._pool,
            config.max_in_flight,
        )
        self._table = handler_table(commands, Watches(self, self._hub, self._pool), Control(self))
        self._hello = protocol.Hello(
            protocol_version=protocol.PROTOCOL_VERSION,
            build_id=protocol.build_id(),
            pid=os.getpid(),
            capabilities=capabilities(self._table),
            mode=config.mode,
            install=install_dir(),
        )
        self._keeper = Housekeeping(self, self._registry, self._hub, self._pool, notifier)
        self._acceptor: Acceptor | None = None  # set once the listener is known (run)
        self._tasks: set[asyncio.Task[Any]] = set()
        self._stop: asyncio.Event | None = None
        self._stop_reason = StopReason.SIGNAL
        self._mount_ns = mount_namespace("self")

    # ---- the Service interface (service.py) ----

    @property
    def config(self) -> ServiceConfig:
        return self._config

    @property
    def hello(self) -> protocol.Hello:
        return self._hello

    @property
    def load(self) -> Load:
        return self._load

    @property
    def state(self) -> State:
        return self._state

    @property
    def socket_path(self) -> str:
        return self._config.socket_path

    @property
    def stop_requested(self) -> bool:
        return self._stop is not None and self._stop.is_set()

    async def until_stop_requested(self) -> None:
        assert self._stop is not None
        await self._stop.wait()

    def request_stop(self, reason: StopReason) -> None:
        """Begin shutdown (idempotent: the first reason wins)."""
        if self._stop is not None and not self._stop.is_set():
            self._stop_reason = reason
            _log.info("stopping: %s", reason.value)
            self._stop.set()

    def status(self) -> protocol.StatusResult:
        """The answer to `grite daemon status`."""
        load, now = self._load, time.monotonic()
        idle_timeout = self._keeper.effective_idle_timeout()
        if idle_timeout:
            left = max(0.0, idle_timeout - (now - load.last_activity))
            idle_left_ms = int(left * 1000)
        else:
            idle_left_ms = -1
        return protocol.StatusResult(
            pid=os.getpid(),
            mode=self.mode,
            socket=self.socket_path,
            build_id=self._hello.build_id,
            protocol_version=protocol.PROTOCOL_VERSION,
            started_ms=load.started_ms,
            uptime_ms=int((now - load.started) * 1000),
            repositories=self._registry.repositories(),
            requests_served=load.requests_served,
            in_flight=load.in_flight,
            connections=len(load.connections),
            idle_timeout_s=int(idle_timeout),
            idle_left_ms=idle_left_ms,
            kept_replies_served=self._replies.hits,
            log=self._config.log_location,
        )

    # ---- lifecycle ----

    def _spawn(self, coro: Coroutine[Any, Any, Any], name: str) -> asyncio.Task[Any]:
        task = asyncio.get_running_loop().create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def run(self, shutdown: Awaitable[object]) -> None:
        """Serve until `shutdown` resolves, idle timeout, DaemonStop/Retire, or lost socket."""
        loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        if self._listener is None:
            binding = await loop.run_in_executor(
                None, Binding.acquire, paths_for_socket(self.socket_path)
            )
            if binding is None:
                _log.info("another grite daemon already serves %s; exiting", self.socket_path)
                self._state = State.STOPPED
                return
            self._binding, self._listener, self.mode = binding, binding.listener, "self-bind"
        if self._binding is not None:
            await loop.run_in_executor(None, self._binding.write_pid, self._hello.build_id)
        self._listener.setblocking(False)
        self._acceptor = Acceptor(self, self._listener, self._serve_connection)
        self._spawn(self._watch(shutdown), "shutdown-signal")
        self._spawn(self._keeper.run(self._binding), "housekeeping")
        self._spawn(self._keeper.poll_refs(), "ref-poller")
        try:
            await self._serve_until_stopped()
        finally:
            await self._close(loop)

    async def _watch(self, shutdown: Awaitable[object]) -> None:
        await shutdown
        self.request_stop(StopReason.SIGNAL)

    async def _serve_until_stopped(self) -> None:
        assert self._listener is not None and self._stop is not None
        assert self._acceptor is not None
        first = True
        while True:
            self._state = State.RUNNING
            self._acceptor.set_accepting(True)
            if first:
                first = False
                if self._on_ready is not None:
                    self._on_ready()
                if self._notifier is not None:
                    idle_timeout = self._config.idle_timeout
                    idle = f"idle exit after {idle_timeout:g} s" if idle_timeout else ""
                    self._notifier.ready(f"serving {self.socket_path}; {idle or 'no idle exit'}")
            await self._stop.wait()
            # Never accept during shutdown: stop watching the listener before anything else.
            self._acceptor.set_accepting(False)
            self._state = State.DRAINING
            if self.mode == "self-bind":
                # New clients now get ENOENT and spawn a successor; the connections already
                # queued are accepted here, so those clients are served, not reset.
                if self._binding is not None:
                    self._binding.unlink_socket()
                self._acceptor.accept_queued(None)
                return
            queued = self._load.connections or self._load.accepted
            if self._stop_reason is StopReason.IDLE and (
                queued or select.select([self._listener], [], [], 0)[0]
            ):
                # A client is queued on the manager's socket: keep serving instead of exiting.
                # Past this check, new connections stay queued for the next instance, which the
                # service manager starts once we have exited (the socket is never unlinked).
                _log.info("connection queued during idle exit; resuming")
                self._stop.clear()
                self._load.touch()
                continue
            return

    async def _close(self, loop: asyncio.AbstractEventLoop) -> None:
        self._state = State.DRAINING
        if self._notifier is not None:
            reason = STOP_WORDS[self._stop_reason]
            if self._stop_reason is StopReason.IDLE:
                reason += f" for {self._keeper.effective_idle_timeout():g} s"
            self._notifier.stopping(f"{reason}; {self._keeper.status_text()}")
        for conn in list(self._load.connections.values()):
            # Fresh connections (accepted from the backlog) are left to send their request;
            # their read deadline bounds the wait.
            if not conn.busy and conn.served:
                conn.writer.close()
        pending = [*self._load.connections, *self._load.accepted]
        if pending:
            _, late = await asyncio.wait(pending, timeout=self._config.drain_timeout)
            for task in late:
                task.cancel()
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.wait(list(self._tasks))
        pool, registry, binding, hub = self._pool, self._registry, self._binding, self._hub

        def finish() -> None:
            pool.shutdown(wait=True)  # in-flight commands complete, never abandoned
            registry.close_all()
            hub.close()
            if binding is not None:
                binding.release()

        await loop.run_in_executor(None, finish)
        if self._listener is not None:
            self._listener.close()  # a manager's socket stays open in the manager
        self._state = State.STOPPED
        _log.info("grite daemon stopped (%s)", self._stop_reason.value)

    async def _serve_connection(self, conn: Connection, reader: asyncio.StreamReader) -> None:
        await Session(self, self._table, self._replies, self._mount_ns, conn, reader).serve()
