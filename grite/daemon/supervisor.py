"""The daemon's server: accepts connections, greets, dispatches requests, idles out, shuts down.

One asyncio Unix server on a listener that is either inherited (systemd, launchd) or bound here
(self-bind, see binding.py). Per connection: the peer uid must be ours; the client's hello must
arrive within `hello_timeout`; then requests are read until EOF and dispatched through ONE table
keyed by request Struct type, whose tags are the capabilities sent in the hello. Forwarded CLI
commands run in a thread pool against the per-repository registry (blocking work never runs on
the loop); more than `max_in_flight` of them at once are answered `busy`. Typed `Op` requests
run the same operations through grite.ops.agents.OpRunner over grite.cli.app.OPERATIONS. A
`Watch` request streams Notification frames from the notification hub until the client hangs
up or the daemon stops; after every request the touched repositories are refreshed in the hub
(source local_write, or sync), and a poller notices refs moved by other processes (external).
Only this module and main.py are async; only this module's per-connection handler catches
`Exception`. Must not import grite.cli at module level (the executor is loaded lazily, in the
daemon only).
"""

from __future__ import annotations

import asyncio
import enum
import errno
import logging
import os
import select
import signal
import socket
import struct
import sys
import threading
import time
from collections.abc import Awaitable, Callable, Coroutine
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

import msgspec

from grite.daemon.binding import Binding
from grite.daemon.execution import default_executor, discover, run_op
from grite.daemon.hub import POLL_INTERVAL, Hub
from grite.daemon.registry import Registry, RequestHandles
from grite.daemon.replies import READ_TAGS, ReplyCache, Stamp, key_of, read_tag
from grite.daemon.validation import request_problem
from grite.ipc import framing, protocol
from grite.ipc.build import install_dir
from grite.ipc.framing import ConnectionClosed, FrameTooLarge
from grite.ipc.paths import paths_for_socket
from grite.model import notifications
from grite.model.errors import GriteError, exit_code_for
from grite.model.invocation import command_word
from grite.ops.cancellation import cancellable

if TYPE_CHECKING:
    from grite.daemon.sd_notify import Notifier
    from grite.model.invocation import Invocation, Outcome
    from grite.storage.wal import Wal

__all__ = ["Executor", "OpExecutor", "State", "StopReason", "Supervisor", "shutdown_signal"]

_log = logging.getLogger("grite.daemon")

# How long a connection accepted while draining may take to send its request.
_DRAIN_READ = 2.0
# Kept replies are written without waiting while less than this is still unsent.
_WRITE_BUFFER = 64 * 1024
# Connections accepted per readiness event before the loop serves others.
_ACCEPT_BATCH = 64
# While a request runs, a Progress frame this often: well inside the client's reply deadline
# (grite.ipc.client.REQUEST_TIMEOUT, 60 s), so long work is never timed out and run twice.
KEEPALIVE_INTERVAL = 5.0
# Requests that run something for the client: checked field by field, cancelled when the
# client hangs up before their write, kept alive with Progress frames.
_WORK = (protocol.RunArgv, protocol.Op)

Executor = Callable[["Invocation", RequestHandles], "Outcome"]
# Runs one typed Op: (op, request id, actor, handles) -> (result, notification source).
OpExecutor = Callable[[protocol.Op, bytes, str, RequestHandles], "tuple[protocol.OpResult, str]"]


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
_STOP_WORDS = {
    StopReason.SIGNAL: "stopping: SIGTERM or SIGINT",
    StopReason.IDLE: "stopping: idle",
    StopReason.STOP: "stopping: `grite daemon stop`",
    StopReason.RETIRE: "stopping: retired by a client of another build",
    StopReason.LOST_SOCKET: "stopping: another daemon took over the socket path",
    StopReason.UPGRADED: "stopping: the installed grite changed (upgrade)",
}


class _Refusal(Exception):
    """A handler declines a request with a wire error code (not a crash)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class _Conn:
    """One client connection's facts, owned by its handler task."""

    def __init__(self, writer: asyncio.StreamWriter) -> None:
        self.writer = writer
        self.busy = False  # a request was read and its final frame is not written yet
        self.served = 0  # requests answered; a fresh connection gets one even while draining
        self.mismatched = False  # the client is another build: only control requests
        # The client runs in another mount namespace: it may not reach what the daemon
        # reaches, so the daemon runs nothing for it (only control requests).
        self.foreign = ""
        self.hung_up = False  # the client closed its side while a request ran (Ctrl-C)
        self.reader: asyncio.StreamReader | None = None  # set once greeted (watch needs EOF)
        # The read watchdog: the deadline of the read in progress (None between reads) and
        # the one timer that enforces it, moved on lazily rather than re-armed per frame.
        self.read_deadline: float | None = None
        self.watchdog: asyncio.TimerHandle | None = None

    def watch_read(self, timeout: float) -> None:
        """Abort the connection unless the read starting now completes within `timeout`."""
        loop = asyncio.get_running_loop()
        self.read_deadline = loop.time() + timeout
        if self.watchdog is None or self.watchdog.when() > self.read_deadline:
            if self.watchdog is not None:
                self.watchdog.cancel()
            self.watchdog = loop.call_at(self.read_deadline, self._check)

    def _check(self) -> None:
        self.watchdog = None
        deadline = self.read_deadline
        if deadline is None:
            return  # not reading now: the next read arms a timer again
        loop = asyncio.get_running_loop()
        if loop.time() >= deadline:
            self.writer.transport.abort()  # the pending read ends with a reset
        else:
            self.watchdog = loop.call_at(deadline, self._check)

    def stop_watching(self) -> None:
        if self.watchdog is not None:
            self.watchdog.cancel()
            self.watchdog = None


def _frame(note: notifications.Notification, repo_root: str) -> protocol.Notification:
    tag = type(note).__struct_config__.tag
    return protocol.Notification(
        kind=str(tag), repo_root=repo_root, body=notifications.encode(note)
    )


def _tag(kind: type) -> str:
    config = getattr(kind, "__struct_config__", None)
    tag = getattr(config, "tag", None)
    return tag if isinstance(tag, str) else ""


def _peer_uid(sock: Any) -> int | None:
    """The connecting process's uid (SO_PEERCRED on Linux, LOCAL_PEERCRED on macOS)."""
    try:
        if hasattr(socket, "SO_PEERCRED"):
            raw = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
            return int(struct.unpack("3i", raw)[1])
        # macOS: SOL_LOCAL=0, LOCAL_PEERCRED=1 -> struct xucred {u_int version; uid_t uid; ...}
        raw = sock.getsockopt(0, 1, 76)
        return int(struct.unpack_from("=II", raw)[1])
    except OSError:
        return None


def _peer_pid(sock: Any) -> int | None:
    """The connecting process's pid (SO_PEERCRED on Linux, LOCAL_PEERPID on macOS)."""
    try:
        if hasattr(socket, "SO_PEERCRED"):
            raw = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
            return int(struct.unpack("3i", raw)[0])
        # macOS: SOL_LOCAL=0, LOCAL_PEERPID=2 -> pid_t
        return int(struct.unpack("i", sock.getsockopt(0, 2, 4))[0])
    except OSError:
        return None


def _mount_namespace(pid: int | str) -> str | None:
    """The mount namespace of a process (`mnt:[inode]`), None when it cannot be read."""
    try:
        return os.readlink(f"/proc/{pid}/ns/mnt")
    except OSError:
        return None


def _sandboxed_on_macos(pid: int) -> bool:
    """Whether a macOS process runs under a sandbox profile (sandbox_check with no operation:
    the same call `sandbox-exec`'s children and App Sandbox apps answer 1 to)."""
    import ctypes  # Deliberately lazy: macOS only, once per connection.

    try:
        lib = ctypes.CDLL("/usr/lib/libSystem.dylib")
        check = lib.sandbox_check
    except (OSError, AttributeError):
        return False
    check.restype = ctypes.c_int
    check.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
    return bool(check(pid, None, 0))


def foreign_peer(sock: Any, own_namespace: str | None) -> str:
    """Why the peer on `sock` must not have the daemon act for it ("" when it may).

    A process in another mount namespace (a sandbox with a read-only home, a container) sees
    other files than the daemon: run by the daemon, its command could write where it cannot.
    The client then runs the command itself, under its own restrictions.
    """
    pid = _peer_pid(sock)
    if pid is None:
        return "the daemon cannot tell which process is connecting"
    if sys.platform == "darwin":
        if _sandboxed_on_macos(pid):
            return f"the client (pid {pid}) runs in a macOS sandbox"
        return ""
    if own_namespace is None:
        return ""  # no /proc (not Linux): nothing to compare
    theirs = _mount_namespace(pid)
    if theirs != own_namespace:
        return (
            f"the client (pid {pid}) runs in another mount namespace ({theirs or 'unknown'}, "
            f"the daemon's is {own_namespace}): it may not reach the files the daemon reaches"
        )
    return ""


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


class Supervisor:
    """The daemon's lifecycle and request dispatch.

    Args:
        socket_path: the endpoint (bound here in self-bind mode when `listener` is None).
        idle_timeout: seconds without connections and requests before exiting; 0/None = never.
        listener: an inherited listening socket (systemd/launchd), or one bound by the caller.
        mode: "systemd", "launchd" or "self-bind"; only self-bind touches the socket path.
        binding: the self-bind ownership when the caller bound the socket (main does).
        executor: runs a forwarded CLI command (default grite.cli.app.run_invocation).
        registry: the per-repository handles (default: a fresh Registry).
        max_in_flight: forwarded commands running at once before answering `busy`.
        on_ready: called once the server accepts connections.
        notifier: service-manager notifications (systemd READY=1/STATUS=/STOPPING=1).
    """

    def __init__(
        self,
        socket_path: str,
        idle_timeout: float | None = 300,
        *,
        listener: socket.socket | None = None,
        mode: str = "self-bind",
        binding: Binding | None = None,
        executor: Executor | None = None,
        registry: Registry | None = None,
        op_executor: OpExecutor | None = None,
        hub: Hub | None = None,
        max_in_flight: int = 64,
        on_ready: Callable[[], None] | None = None,
        notifier: Notifier | None = None,
        hello_timeout: float = 10.0,
        connection_idle: float = 60.0,
        drain_timeout: float = 30.0,
        tick: float = 1.0,
        idle_timeout_fixed: bool = True,
    ) -> None:
        self.socket_path = socket_path
        self.idle_timeout = idle_timeout or 0
        self._idle_fixed = idle_timeout_fixed
        self.mode = mode
        self.state = State.STARTING
        self._listener = listener
        self._binding = binding
        self._executor: Executor = executor or default_executor
        self._registry = registry or Registry(socket_path)
        self._op_executor = op_executor
        self._replies = ReplyCache()
        self._hub = hub or Hub()
        self._max_in_flight = max_in_flight
        self._on_ready = on_ready
        self._notifier = notifier
        self._hello_timeout = hello_timeout
        self._connection_idle = connection_idle
        self._drain_timeout = drain_timeout
        self._tick = tick
        self._handlers: dict[type, Callable[[protocol.Request], Awaitable[protocol.ResultData]]]
        self._handlers = {
            protocol.RunArgv: self.cmd_run_argv,
            protocol.DaemonStatus: self.cmd_daemon_status,
            protocol.DaemonStop: self.cmd_daemon_stop,
            protocol.Retire: self.cmd_retire,
            protocol.Ping: self.cmd_ping,
            protocol.Op: self.cmd_op,
        }
        # Handlers that write their own non-final frames before the final one.
        self._streams: dict[
            type, Callable[[protocol.Request, _Conn], Awaitable[protocol.ResultData]]
        ] = {protocol.Watch: self.cmd_watch}
        self._hello = protocol.Hello(
            protocol_version=protocol.PROTOCOL_VERSION,
            build_id=protocol.build_id(),
            pid=os.getpid(),
            capabilities=sorted(
                protocol.request_tag(kind) for kind in (*self._handlers, *self._streams)
            ),
            mode=mode,
            install=install_dir(),
        )
        self._tasks: set[asyncio.Task[Any]] = set()
        self._connections: dict[asyncio.Task[Any], _Conn] = {}
        # Handler tasks of accepted sockets not yet in _connections (their streams are being
        # set up): counted as connections, so an idle exit never drops one.
        self._accepted: set[asyncio.Task[Any]] = set()
        self._pool: ThreadPoolExecutor | None = None
        self._stop: asyncio.Event | None = None
        self._stop_reason = StopReason.SIGNAL
        self._started = time.monotonic()
        self._started_ms = time.time_ns() // 1_000_000
        self._last_activity = time.monotonic()
        self._in_flight = 0
        self._requests_served = 0
        # Where the log goes, for `grite daemon status` (main sets it; "" when unknown).
        self.log_location = ""
        self._last_status = ""
        self._mount_ns = _mount_namespace("self")
        self.keepalive = KEEPALIVE_INTERVAL

    # ---- lifecycle ----

    def request_stop(self, reason: StopReason) -> None:
        """Begin shutdown (idempotent: the first reason wins)."""
        if self._stop is not None and not self._stop.is_set():
            self._stop_reason = reason
            _log.info("stopping: %s", reason.value)
            self._stop.set()

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
                self.state = State.STOPPED
                return
            self._binding, self._listener, self.mode = binding, binding.listener, "self-bind"
        if self._binding is not None:
            await loop.run_in_executor(None, self._binding.write_pid, self._hello.build_id)
        self._pool = ThreadPoolExecutor(
            max_workers=min(32, self._max_in_flight), thread_name_prefix="grite-worker"
        )
        self._spawn(self._watch(shutdown), "shutdown-signal")
        self._spawn(self._housekeeping(), "housekeeping")
        self._spawn(self._poll_refs(), "ref-poller")
        try:
            await self._serve_until_stopped()
        finally:
            await self._close(loop)

    async def _watch(self, shutdown: Awaitable[object]) -> None:
        await shutdown
        self.request_stop(StopReason.SIGNAL)

    async def _serve_until_stopped(self) -> None:
        assert self._listener is not None and self._stop is not None
        self._listener.setblocking(False)
        first = True
        while True:
            self.state = State.RUNNING
            self._set_accepting(True)
            if first:
                first = False
                if self._on_ready is not None:
                    self._on_ready()
                if self._notifier is not None:
                    idle = f"idle exit after {self.idle_timeout:g} s" if self.idle_timeout else ""
                    self._notifier.ready(f"serving {self.socket_path}; {idle or 'no idle exit'}")
            await self._stop.wait()
            # Never accept during shutdown: stop watching the listener before anything else.
            self._set_accepting(False)
            self.state = State.DRAINING
            if self.mode == "self-bind":
                # New clients now get ENOENT and spawn a successor; the connections already
                # queued are accepted here, so those clients are served, not reset.
                if self._binding is not None:
                    self._binding.unlink_socket()
                self._accept_queued(None)
                return
            queued = self._connections or self._accepted
            if self._stop_reason is StopReason.IDLE and (
                queued or select.select([self._listener], [], [], 0)[0]
            ):
                # A client is queued on the manager's socket: keep serving instead of exiting.
                # Past this check, new connections stay queued for the next instance, which the
                # service manager starts once we have exited (the socket is never unlinked).
                _log.info("connection queued during idle exit; resuming")
                self._stop.clear()
                self._last_activity = time.monotonic()
                continue
            return

    async def _close(self, loop: asyncio.AbstractEventLoop) -> None:
        self.state = State.DRAINING
        if self._notifier is not None:
            reason = _STOP_WORDS[self._stop_reason]
            if self._stop_reason is StopReason.IDLE:
                reason += f" for {self.effective_idle_timeout():g} s"
            self._notifier.stopping(f"{reason}; {self.status_text()}")
        for conn in list(self._connections.values()):
            # Fresh connections (accepted from the backlog) are left to send their request;
            # their read deadline bounds the wait.
            if not conn.busy and conn.served:
                conn.writer.close()
        pending = [*self._connections, *self._accepted]
        if pending:
            _, late = await asyncio.wait(pending, timeout=self._drain_timeout)
            for task in late:
                task.cancel()
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.wait(list(self._tasks))
        pool, registry, binding = self._pool, self._registry, self._binding

        hub = self._hub

        def finish() -> None:
            if pool is not None:
                pool.shutdown(wait=True)  # in-flight commands complete, never abandoned
            registry.close_all()
            hub.close()
            if binding is not None:
                binding.release()

        await loop.run_in_executor(None, finish)
        if self._listener is not None:
            self._listener.close()  # a manager's socket stays open in the manager
        self.state = State.STOPPED
        _log.info("grite daemon stopped (%s)", self._stop_reason.value)

    def status_text(self) -> str:
        """One line of counts for the service manager (`systemctl --user status`)."""
        repos = len(self._registry.repositories())
        return (
            f"{self._requests_served} requests served, {repos} "
            f"{'repository' if repos == 1 else 'repositories'} open, "
            f"{len(self._connections)} connections, {self._in_flight} in flight"
        )

    def effective_idle_timeout(self) -> float:
        """Seconds of idleness before exiting (0: never).

        Unless --idle-timeout fixed it, a repository served since start can lengthen it with
        `[daemon] idle_timeout_seconds` in its .git/grite/config.toml (0 there means never):
        one daemon serves every repository, so the most patient one wins.
        """
        if self._idle_fixed or not self.idle_timeout:
            return self.idle_timeout
        configured = self._registry.configured_idle_timeouts()
        if 0 in configured:
            return 0
        return max([self.idle_timeout, *configured])

    async def _housekeeping(self) -> None:
        assert self._stop is not None
        loop = asyncio.get_running_loop()
        ticks = 0
        while True:
            try:
                await asyncio.wait_for(self._stop.wait(), timeout=self._tick)
            except asyncio.TimeoutError:
                pass
            if self.state is not State.RUNNING:
                if self._stop.is_set() and self.state is State.DRAINING:
                    return
                continue
            ticks += 1
            now = time.monotonic()
            idle_timeout = self.effective_idle_timeout()
            if (
                idle_timeout
                and not self._connections
                and not self._accepted
                and not self._in_flight
                and now - self._last_activity >= idle_timeout
            ):
                self.request_stop(StopReason.IDLE)
                return
            if self._binding is not None and not self._binding.owns_socket():
                self.request_stop(StopReason.LOST_SOCKET)
                return
            if self._notifier is not None and (text := self.status_text()) != self._last_status:
                self._last_status = text
                self._notifier.status(text)
            if ticks % 10 == 0:
                await loop.run_in_executor(self._pool, self._heartbeat)
            if ticks % 60 == 0:
                try:
                    current = await loop.run_in_executor(self._pool, protocol.compute_build_id)
                except OSError:  # files vanishing mid-upgrade or removal: look again later
                    continue
                if current != self._hello.build_id:
                    self.request_stop(StopReason.UPGRADED)
                    return

    async def _poll_refs(self) -> None:
        # Notices refs moved by other processes or `git fetch`, only while someone watches.
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(POLL_INTERVAL)
            if self.state is State.RUNNING and self._hub.watched():
                try:
                    await loop.run_in_executor(self._pool, self._hub.poll, self._registry.in_use)
                except Exception:  # a poller that died would leave every watcher silent
                    _log.exception("cannot poll the watched repositories; polling on")

    def _publish(self, git_dirs: list[str], source: str) -> None:
        for git_dir in git_dirs:
            try:
                self._hub.refresh(git_dir, source)
            except Exception:  # notifications are best effort; the request already succeeded
                _log.exception("cannot publish notifications for %s", git_dir)

    def _heartbeat(self) -> None:
        if self._binding is not None:
            self._binding.heartbeat()
        self._registry.heartbeat()
        self._registry.sweep()

    # ---- connections ----

    def _set_accepting(self, on: bool) -> None:
        assert self._listener is not None
        loop = asyncio.get_running_loop()
        if on:
            loop.add_reader(self._listener.fileno(), self._accept_ready)
        else:
            loop.remove_reader(self._listener.fileno())

    def _accept_ready(self) -> None:
        # A readiness event may already be queued when stop is requested: never accept then.
        if self.state is State.RUNNING and not (self._stop and self._stop.is_set()):
            self._accept_queued(_ACCEPT_BATCH)

    def _resume_accepting(self) -> None:
        if self.state is State.RUNNING and not (self._stop and self._stop.is_set()):
            self._set_accepting(True)

    def _accept_queued(self, limit: int | None) -> None:
        """Accept up to `limit` queued connections (None: all), each registered at once.

        Our own accept (not asyncio's server) so that every accepted socket has its handler
        task, counted by the idle check and awaited by shutdown, in the same loop step.
        """
        assert self._listener is not None
        loop = asyncio.get_running_loop()
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
                    self._set_accepting(False)
                    loop.call_later(1.0, self._resume_accepting)
                else:
                    _log.warning("accept failed: %s", exc)
                return
            accepted += 1
            task = loop.create_task(self._on_socket(sock))
            self._accepted.add(task)
            self._last_activity = time.monotonic()

    async def _on_socket(self, sock: socket.socket) -> None:
        task = asyncio.current_task()
        assert task is not None
        try:
            reader, writer = await asyncio.open_unix_connection(sock=sock)
        except (OSError, asyncio.CancelledError):
            sock.close()
            return
        finally:
            # No suspension between here and _on_connect registering the connection.
            self._accepted.discard(task)
        await self._on_connect(reader, writer)

    async def _on_connect(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        conn = _Conn(writer)
        self._connections[task] = conn
        self._last_activity = time.monotonic()
        try:
            sock = writer.get_extra_info("socket")
            uid = _peer_uid(sock)
            if uid != os.geteuid():
                _log.warning("refused a connection from uid %s", uid)
                return
            conn.foreign = foreign_peer(sock, self._mount_ns)
            await self._serve_connection(conn, reader, writer)
        except (ConnectionClosed, ConnectionError, asyncio.CancelledError):
            pass
        except Exception:  # the one place a bug is caught: log it, keep serving others
            _log.exception("connection handler failed")
        finally:
            conn.stop_watching()
            del self._connections[task]
            self._last_activity = time.monotonic()
            writer.close()

    async def _read(
        self, conn: _Conn, reader: asyncio.StreamReader, timeout: float
    ) -> bytes | None:
        # A timer that aborts the transport is far cheaper than wait_for (no extra task per
        # frame), and one timer per connection, moved on only when it fires, is cheaper than
        # one per frame; the pending read then ends with a reset and the handler returns.
        conn.watch_read(timeout)
        try:
            return await framing.read_frame(reader)
        finally:
            conn.read_deadline = None

    async def _send(self, writer: asyncio.StreamWriter, message: msgspec.Struct) -> None:
        await framing.write_frame(writer, protocol.encode(message))

    async def _refuse(self, writer: asyncio.StreamWriter, rid: bytes, code: str, msg: str) -> None:
        error = protocol.Error(
            request_id=rid, code=code, message=msg, exit_code=exit_code_for(code)
        )
        try:
            await self._send(writer, error)
        except ConnectionClosed:
            pass

    async def _serve_connection(
        self, conn: _Conn, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        try:
            data = await self._read(conn, reader, self._hello_timeout)
        except FrameTooLarge as exc:
            await self._refuse(writer, b"", "bad_request", exc.message)
            return
        if data is None:
            return  # a liveness probe: connect and close
        try:
            client = protocol.decode_hello(data)
        except msgspec.DecodeError as exc:
            await self._refuse(writer, b"", "bad_request", f"expected a hello frame: {exc}")
            return
        conn.mismatched = (
            client.protocol_version != protocol.PROTOCOL_VERSION
            or client.build_id != self._hello.build_id
        )
        await self._send(writer, self._hello)
        conn.reader = reader
        while True:
            wait = self._connection_idle if self.state is State.RUNNING else _DRAIN_READ
            try:
                data = await self._read(conn, reader, wait)
            except FrameTooLarge as exc:
                await self._refuse(writer, b"", "bad_request", exc.message)
                return
            if data is None:
                return
            conn.busy = True
            try:
                # A warm read whose answer is kept and still holds is answered here, on the
                # loop, without the worker hop (grite.daemon.replies).
                kept = None if conn.mismatched or conn.foreign else self._replies.answer(data)
                reply: protocol.Result | protocol.Error | None = None
                if kept is not None:
                    self._requests_served += 1
                    writer.write(framing.encode_frame(kept))
                    if writer.transport.get_write_buffer_size() > _WRITE_BUFFER:
                        await writer.drain()  # a slow reader: wait for it, as _send does
                else:
                    reply = await self._dispatch(conn, data)
                    await self._send(writer, reply)
            finally:
                conn.busy = False
                conn.served += 1
                self._last_activity = time.monotonic()
            if isinstance(reply, protocol.Error) and reply.code == "bad_request":
                return
            if conn.hung_up:
                return  # the client closed its side: it sends nothing more
            if self.state is not State.RUNNING:
                return

    async def _dispatch(self, conn: _Conn, data: bytes) -> protocol.Result | protocol.Error:
        try:
            request = protocol.decode_request(data)
        except msgspec.DecodeError as exc:
            try:
                head = protocol.decode_request_head(data)
            except msgspec.DecodeError:
                head = protocol.RequestHead()
            if head.schema_version and head.schema_version != protocol.SCHEMA_VERSION:
                code, msg = "version_mismatch", f"unknown schema version {head.schema_version}"
            else:
                code, msg = "bad_request", f"undecodable request: {exc}"
            return protocol.Error(
                request_id=head.request_id, code=code, message=msg, exit_code=exit_code_for(code)
            )
        rid = request.request_id
        handler = self._handlers.get(type(request.body))
        stream = self._streams.get(type(request.body))
        if request.schema_version != protocol.SCHEMA_VERSION:
            return self._error(rid, "version_mismatch", "unknown schema version")
        if handler is None and stream is None:
            return self._error(rid, "bad_request", "unsupported request")
        if conn.mismatched and isinstance(
            request.body, (protocol.RunArgv, protocol.Op, protocol.Watch)
        ):
            return self._error(rid, "version_mismatch", "client and daemon builds differ")
        if conn.foreign and isinstance(
            request.body, (protocol.RunArgv, protocol.Op, protocol.Watch)
        ):
            _log.info("declined a request: %s", conn.foreign)
            return self._error(
                rid, "foreign_namespace", f"{conn.foreign}; the client runs it itself"
            )
        problem = request_problem(request)
        if problem is not None:
            _log.warning("refused a malformed request: %s", problem)
            return self._error(rid, "bad_request", f"malformed request: {problem}")
        try:
            if stream is not None:
                data_out = await stream(request, conn)
            elif isinstance(request.body, _WORK):
                assert handler is not None
                data_out = await self._watched(conn, request, handler)
            else:
                assert handler is not None
                data_out = await handler(request)
        except _Refusal as exc:
            return self._error(rid, exc.code, exc.message)
        except Exception:  # a bug in one command must not take the daemon down
            _log.exception("request %s failed", rid.hex())
            return self._error(rid, "internal", "the grite daemon failed; see its log")
        self._requests_served += 1
        return protocol.Result(request_id=rid, data=data_out)

    async def _watched(
        self,
        conn: _Conn,
        request: protocol.Request,
        handler: Callable[[protocol.Request], Awaitable[protocol.ResultData]],
    ) -> protocol.ResultData:
        """Run a request's handler while watching its client.

        Every `keepalive` seconds the client gets a Progress frame (its reply deadline is per
        frame, so long work is not timed out and run again in-process). When the client hangs
        up (Ctrl-C half-closes the connection, a killed client closes it) the request's cancel
        event is set: a write the group commit has not taken yet is dropped
        (grite.ops.cancellation). The handler always runs to its end: its worker is never
        abandoned, and the reply (cancelled, or what was done) still goes to a client that
        half-closed and waits for it.
        """
        cancel = threading.Event()
        work = asyncio.ensure_future(handler(request, cancel))  # type: ignore[call-arg]
        assert conn.reader is not None
        # The client sends nothing while its request runs: any byte or EOF is a hang-up.
        hangup: asyncio.Future[bytes] | None = asyncio.ensure_future(conn.reader.read(1))
        started = time.monotonic()
        alive = True
        try:
            while True:
                waiting = {work} if hangup is None else {work, hangup}
                done, _ = await asyncio.wait(
                    waiting, timeout=self.keepalive, return_when=asyncio.FIRST_COMPLETED
                )
                if work in done:
                    return work.result()
                if hangup is not None and hangup in done:
                    hangup = None
                    cancel.set()
                    conn.hung_up = True
                    _log.info("client hung up; cancelling request %s", request.request_id.hex())
                    continue
                if alive and not done:
                    elapsed = int((time.monotonic() - started) * 1000)
                    try:
                        await self._send(conn.writer, protocol.Progress(elapsed_ms=elapsed))
                    except ConnectionClosed:
                        alive = False  # gone: the hang-up above cancels the request
        finally:
            if hangup is not None:
                hangup.cancel()
                # Let the cancelled read give the stream back before the next request's read.
                await asyncio.wait({hangup})

    @staticmethod
    def _error(rid: bytes, code: str, message: str) -> protocol.Error:
        return protocol.Error(
            request_id=rid, code=code, message=message, exit_code=exit_code_for(code)
        )

    # ---- handlers (one per request type; the table above is the only dispatch) ----

    async def cmd_run_argv(
        self, request: protocol.Request, cancel: threading.Event | None = None
    ) -> protocol.ResultData:
        body = request.body
        assert isinstance(body, protocol.RunArgv)
        if self._in_flight >= self._max_in_flight:
            raise _Refusal("busy", f"{self._in_flight} commands in flight; try again")
        self._in_flight += 1
        try:
            loop = asyncio.get_running_loop()
            outcome, kept = await loop.run_in_executor(
                self._pool, self._execute, body.invocation, request.actor, cancel
            )
        finally:
            self._in_flight -= 1
        result = protocol.RunArgvResult(outcome=outcome)
        key = key_of(request)
        if kept is not None and key is not None:
            self._replies.keep(key, kept[0], kept[1], result)
        return result

    def _execute(
        self, invocation: Invocation, actor: str, cancel: threading.Event | None = None
    ) -> tuple[Outcome, tuple[Wal, Stamp] | None]:
        """Run one command line; also (WAL, stamp) when its output may be kept."""
        # Only `issue ...` commands hold reads whose output may be kept; only the default
        # executor reports which operation ran.
        may_keep = self._executor is default_executor and command_word(invocation.argv) == "issue"
        with self._registry.scope(actor) as handles, cancellable(cancel):
            before = self._stamp_of(invocation.cwd, handles) if may_keep else None
            outcome = self._executor(invocation, handles)
            used = handles.used()
            ran = list(handles.ran)
        source = "sync" if command_word(invocation.argv) == "sync" else "local_write"
        self._publish(used, source)
        read = len(ran) == 1 and _tag(ran[0]) in READ_TAGS
        if before is None or not read or outcome.exit_code or outcome.stderr:
            return outcome, None
        return outcome, before if before[0].stamp() == before[1] else None

    async def cmd_op(
        self, request: protocol.Request, cancel: threading.Event | None = None
    ) -> protocol.ResultData:
        body = request.body
        assert isinstance(body, protocol.Op)
        if self._in_flight >= self._max_in_flight:
            raise _Refusal("busy", f"{self._in_flight} commands in flight; try again")
        self._in_flight += 1
        try:
            loop = asyncio.get_running_loop()
            result, kept = await loop.run_in_executor(
                self._pool, self._execute_op, body, request, cancel
            )
        finally:
            self._in_flight -= 1
        key = key_of(request)
        if kept is not None and key is not None:
            self._replies.keep(key, kept[0], kept[1], result)
        return result

    def _execute_op(
        self, op: protocol.Op, request: protocol.Request, cancel: threading.Event | None = None
    ) -> tuple[protocol.OpResult, tuple[Wal, Stamp] | None]:
        """Run one Op; also (WAL, stamp) when its answer may be kept for the next ones."""
        with self._registry.scope(request.actor) as handles, cancellable(cancel):
            before = None if self._op_executor else self._read_stamp(op, handles)
            run = self._op_executor or run_op
            result, source = run(op, request.request_id, request.actor, handles)
            used = handles.used()
        self._publish(used, source)
        if before is None or result.error is not None or result.warnings:
            return result, None
        # Kept only if the ref did not move while the read ran: it then saw that head.
        return result, before if before[0].stamp() == before[1] else None

    @staticmethod
    def _read_stamp(op: protocol.Op, handles: RequestHandles) -> tuple[Wal, Stamp] | None:
        """For a read that may be kept: its repository's WAL and ref stamp, before it runs."""
        if read_tag(bytes(op.args)) not in READ_TAGS:
            return None
        return Supervisor._stamp_of(op.cwd, handles)

    @staticmethod
    def _stamp_of(cwd: str, handles: RequestHandles) -> tuple[Wal, Stamp] | None:
        try:
            handle = handles.get(discover(cwd))
        except GriteError:
            return None  # the request itself reports it
        wal = getattr(handle, "wal", None)
        if wal is None or getattr(handle, "wal_error", None) is not None:
            return None  # a damaged WAL: every read looks again
        return wal, wal.stamp()

    async def cmd_watch(self, request: protocol.Request, conn: _Conn) -> protocol.ResultData:
        body = request.body
        assert isinstance(body, protocol.Watch) and conn.reader is not None
        assert self._stop is not None
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[notifications.Notification] = asyncio.Queue()

        def deliver(note: notifications.Notification) -> None:
            loop.call_soon_threadsafe(queue.put_nowait, note)

        try:
            paths = await loop.run_in_executor(self._pool, discover, body.cwd)
            sub = await loop.run_in_executor(
                self._pool, self._hub.subscribe, str(paths.git_dir), deliver
            )
        except GriteError as err:
            raise _Refusal(err.code, err.message) from err
        root = str(paths.repo_root)
        waiters: list[asyncio.Future[Any]] = []
        try:
            if body.since:
                try:
                    replay = await loop.run_in_executor(
                        self._pool, self._hub.replay, sub, body.since
                    )
                except GriteError as err:
                    raise _Refusal(err.code, err.message) from err
                for note in replay:
                    await self._send(conn.writer, _frame(note, root))
            await self._send(
                conn.writer, _frame(notifications.Subscribed(wal_head=sub.start), root)
            )
            # The client sends nothing more on a watch: any byte or EOF from it ends the stream.
            hangup = asyncio.ensure_future(conn.reader.read(1))
            stopping = asyncio.ensure_future(self._stop.wait())
            waiters += [hangup, stopping]
            while True:
                get = asyncio.ensure_future(queue.get())
                done, _ = await asyncio.wait(
                    {get, hangup, stopping}, return_when=asyncio.FIRST_COMPLETED
                )
                if get not in done:
                    get.cancel()
                    break
                await self._send(conn.writer, _frame(get.result(), root))
        finally:
            for waiter in waiters:
                waiter.cancel()
            await loop.run_in_executor(self._pool, self._hub.unsubscribe, sub)
        return protocol.Ack()

    async def cmd_daemon_status(self, request: protocol.Request) -> protocol.ResultData:
        now = time.monotonic()
        idle_timeout = self.effective_idle_timeout()
        if idle_timeout:
            left = max(0.0, idle_timeout - (now - self._last_activity))
            idle_left_ms = int(left * 1000)
        else:
            idle_left_ms = -1
        return protocol.StatusResult(
            pid=os.getpid(),
            mode=self.mode,
            socket=self.socket_path,
            build_id=self._hello.build_id,
            protocol_version=protocol.PROTOCOL_VERSION,
            started_ms=self._started_ms,
            uptime_ms=int((now - self._started) * 1000),
            repositories=self._registry.repositories(),
            requests_served=self._requests_served,
            in_flight=self._in_flight,
            connections=len(self._connections),
            idle_timeout_s=int(idle_timeout),
            idle_left_ms=idle_left_ms,
            kept_replies_served=self._replies.hits,
            log=self.log_location,
        )

    async def cmd_daemon_stop(self, request: protocol.Request) -> protocol.ResultData:
        asyncio.get_running_loop().call_soon(self.request_stop, StopReason.STOP)
        return protocol.Ack()

    async def cmd_retire(self, request: protocol.Request) -> protocol.ResultData:
        asyncio.get_running_loop().call_soon(self.request_stop, StopReason.RETIRE)
        return protocol.Ack()

    async def cmd_ping(self, request: protocol.Request) -> protocol.ResultData:
        return protocol.Ack()
