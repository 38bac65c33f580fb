"""How a client gets a request run: one transport interface, two transports, one fallback policy.

    BaseTransport.handle_request(Call) -> bytes     the reply's final frame (msgpack)
    ├── DaemonTransport     the per-user daemon: connect (or start one), hello, request
    ├── LocalTransport      (grite.ipc.local) the same request executed in this process
    └── FallbackTransport   the daemon, and the local transport when the daemon could not
                            serve, as the Policy (GRITE_DAEMON) says: `auto` falls back and
                            records it (grite.ipc.fallbacks), `require` raises DaemonRequired
                            naming the cause, `off` never asks the daemon

Every client goes through FallbackTransport: the `grite` command, grite.Client (and with it
`grite batch` and `grite watch`) and `grite daemon status`. `Unserved` is the one signal that
the daemon did not run a request: no daemon and none could be started, a daemon of another
build, `busy` or another declining answer, a connection lost before the final frame, a
timeout, an unreadable frame, an unusable runtime directory. Every other answer of the daemon,
errors included, is final and never run again locally. A request run again (locally, or on a
new connection) keeps its request id and clock, so a write whose acknowledgement was lost is
applied once.

Which daemon (which build wins): a build first tries its own socket,
`daemon-<build id>.sock`, then the main socket. A daemon running this build serves. A daemon
of an older build of this same installation (an upgrade: same package directory) is retired
and this build takes the main socket. A daemon of another installation (another virtualenv,
pipx) keeps the main socket: this build starts a daemon of its own on daemon-<build id>.sock,
so two builds used alternately each keep a warm daemon instead of retiring each other.

Standard library, grite.ipc and grite.model.errors only: this is the `grite` command's hot
path. It reads GRITE_DAEMON, GRITE_NO_DAEMON, GRITE_DAEMON_IDLE_TIMEOUT and GRITE_DEBUG, for
every client, from the mapping it is given (Policy.from_environ).
"""

from __future__ import annotations

import os
import sys
import time

from grite.ipc import wire
from grite.ipc.build import build_id, compute_build_id, install_dir
from grite.ipc.client import (
    CONNECT_TIMEOUT,
    HELLO_TIMEOUT,
    REQUEST_TIMEOUT,
    Connection,
    ServerHello,
)
from grite.ipc.paths import (
    RuntimePaths,
    build_socket,
    ensure_runtime_dir,
    paths_for_socket,
    runtime_paths,
)
from grite.ipc.wire import ConnectionClosed, FrameTimeout, IpcError
from grite.model import settings
from grite.model.errors import Environment, GriteError, InvalidArgs

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Generator, Mapping
    from types import TracebackType
    from typing import Literal, TypeVar

    T = TypeVar("T")
    Start = Literal["wait", "background", "never"]

__all__ = [
    "DECLINE_CODES",
    "BaseTransport",
    "Call",
    "DaemonRequired",
    "DaemonTransport",
    "FallbackTransport",
    "Interrupted",
    "Policy",
    "Unserved",
]

# Daemon answers meaning "not run here": the request may run elsewhere. Other errors are final.
# foreign_namespace: the client runs in another mount namespace (a sandbox), so the daemon
# runs nothing for it: the client runs the command itself, under its own restrictions.
DECLINE_CODES = frozenset({"busy", "version_mismatch", "bad_request", "foreign_namespace"})
# After a Ctrl-C, how long a client waits for the daemon to say whether the command was done.
INTERRUPT_WAIT = 10.0
# How long a client that retired an old daemon waits for it to exit before starting its own.
_RETIRE_WAIT = 5.0
# A transport starts a daemon at most once in this many seconds: a daemon that keeps dying
# costs a long-lived client one start per pause, not one per request.
_RESTART_PAUSE = 30.0


class Unserved(IpcError):
    """The daemon did not run this request; `cause` says why in one word.

    Causes: no_daemon, cold_start (a daemon is starting in the background), start_failed,
    unsafe_runtime_dir, upgrade (an old build was retired), other_build, busy,
    version_mismatch, bad_request, lost (the connection broke before the final frame),
    timeout, protocol (an unreadable frame).
    """

    def __init__(self, cause: str, message: str) -> None:
        super().__init__(message, {"cause": cause})
        self.cause = cause


class Interrupted(KeyboardInterrupt):
    """Ctrl-C while the daemon had a request of ours.

    `reply` is the daemon's final frame after it was told (the request cancelled before its
    write, or done before the Ctrl-C reached it); None with `sent` False when the request never
    reached the daemon (nothing was done), None with `sent` True when no answer came.
    """

    def __init__(self, reply: bytes | None, *, sent: bool) -> None:
        super().__init__()
        self.reply = reply
        self.sent = sent


class DaemonRequired(Environment):
    """GRITE_DAEMON=require, and the daemon did not serve the request."""

    def __init__(self, unserved: Unserved, log_file: str) -> None:
        super().__init__(
            f"the grite daemon did not serve this command ({unserved.cause}: "
            f"{unserved.message}); GRITE_DAEMON=require does not allow running it in-process. "
            f"See 'grite daemon status' and {log_file}, or unset GRITE_DAEMON",
            {"cause": unserved.cause},
        )
        self.cause = unserved.cause


class Call:
    """One request to run: its encoded body variant and its envelope's fields."""

    __slots__ = ("actor", "body", "repo_root", "request_id")

    def __init__(
        self,
        body: bytes,
        *,
        request_id: bytes | None = None,
        actor: str = "",
        repo_root: str = "",
    ) -> None:
        self.body = body  # msgpack of one tagged protocol.RequestBody
        self.request_id = os.urandom(16) if request_id is None else request_id
        self.actor = actor
        self.repo_root = repo_root

    def frame(self) -> bytes:
        """The Request envelope, encoded."""
        return wire.request(
            self.request_id, wire.Raw(self.body), repo_root=self.repo_root, actor=self.actor
        )


class BaseTransport:
    """Runs requests; `handle_request` returns the final frame of the reply (msgpack bytes)."""

    def handle_request(self, call: Call) -> bytes:
        """Run one request.

        Raises:
            Unserved: this transport could not run it (DaemonTransport).
        """
        raise NotImplementedError

    def close(self) -> None:
        """Release connections or repositories held between requests."""

    def __enter__(self) -> BaseTransport:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


class Policy:
    """Whether and how clients use the daemon.

    mode: "auto" (the daemon when it can serve, else in-process, recorded), "require" (the
    daemon or an error: for tests, benchmarks and users who want to know) or "off".
    """

    __slots__ = ("debug", "idle_timeout", "mode", "reply_timeout")

    MODES = ("auto", "require", "off")

    def __init__(self, mode: str = "auto", *, idle_timeout: int | None = None, debug: bool = False):
        if mode not in self.MODES:
            raise InvalidArgs(
                f"GRITE_DAEMON={mode!r} is not a daemon mode; use auto, require or off",
                {"value": mode},
            )
        self.mode = mode
        self.idle_timeout = idle_timeout
        self.debug = debug
        # GRITE_DAEMON_REPLY_TIMEOUT: seconds a client waits for each frame of a reply.
        self.reply_timeout = REQUEST_TIMEOUT

    @classmethod
    def from_environ(cls, environ: Mapping[str, str], *, no_daemon: bool = False) -> Policy:
        """The policy an environment asks for. `--no-daemon` and GRITE_NO_DAEMON win (off).

        Raises:
            InvalidArgs: GRITE_DAEMON is set to something else than auto, require or off.
        """
        mode = (environ.get("GRITE_DAEMON") or "auto").strip().lower()
        policy = cls(mode)
        if no_daemon or settings.no_daemon(environ):
            policy.mode = "off"
        idle = environ.get("GRITE_DAEMON_IDLE_TIMEOUT", "")
        policy.idle_timeout = int(idle) if idle.isdigit() else None
        policy.debug = settings.debug(environ)
        try:
            reply = float(environ.get("GRITE_DAEMON_REPLY_TIMEOUT") or REQUEST_TIMEOUT)
        except ValueError:
            reply = REQUEST_TIMEOUT
        policy.reply_timeout = reply if reply > 0 else REQUEST_TIMEOUT
        return policy

    @classmethod
    def choose(cls, setting: bool | str, environ: Mapping[str, str] | None) -> Policy:
        """A library client's policy: True takes the environment's (default os.environ),
        False is off, a string names the mode (idle timeout and debug still from the
        environment).

        Raises:
            InvalidArgs: the mode (given or from GRITE_DAEMON) does not exist.
        """
        policy = cls.from_environ(os.environ if environ is None else environ)
        if setting is not True:
            policy.mode = cls("off" if setting is False else str(setting)).mode
        return policy


def _wait_exit(pid: int, timeout: float) -> None:
    # Deliberately lazy: only after retiring an old daemon.
    from grite.ipc.spawner import wait_exit

    wait_exit(pid, timeout)


class DaemonTransport(BaseTransport):
    """Requests run by the per-user daemon, over one connection kept for the transport's life.

    Args:
        paths: the runtime paths (the main socket).
        environ: the environment the paths came from (for a build's own socket's paths).
        start: when no daemon answers: "wait" starts one and waits until it serves,
            "background" starts one without waiting and reports cold_start, "never" does not.
        idle_timeout: the idle timeout of a daemon started here (None: its default).
        timeout: bound in seconds on each reply frame.
        control: for control requests (status, stop): talk to whatever daemon the socket
            has, of any build; never start one, never retire one.
        socket_path: talk to this socket only (control requests to a build's own socket).
    """

    def __init__(
        self,
        paths: RuntimePaths,
        *,
        environ: Mapping[str, str] | None = None,
        start: Start = "wait",
        idle_timeout: int | None = None,
        timeout: float = REQUEST_TIMEOUT,
        connect_timeout: float = CONNECT_TIMEOUT,
        hello_timeout: float = HELLO_TIMEOUT,
        control: bool = False,
        socket_path: str | None = None,
    ) -> None:
        self.paths = paths
        self._environ = environ
        self._start = start
        self._idle_timeout = idle_timeout
        self._timeout = timeout
        self._connect_timeout = connect_timeout
        self._hello_timeout = hello_timeout
        self._control = control
        self._socket_path = socket_path
        self._conn: Connection | None = None
        self._last_start = -_RESTART_PAUSE
        self._deferred: RuntimePaths | None = None  # a background start not made yet
        self.server: ServerHello | None = None  # the hello of the daemon last talked to
        self.connected_to = ""  # and its socket
        self._greeting: Connection | None = None  # a connection being greeted
        self.answered: bytes | None = None  # the final frame of the last request, once read
        # Receives each Progress frame's elapsed milliseconds while a long request runs.
        self.on_progress: Callable[[int], None] | None = None

    # -- requests -----------------------------------------------------------------------------

    def handle_request(self, call: Call) -> bytes:
        self._greeting = self.answered = None
        try:
            self.answered = self._handle(call)
            return self.answered
        except KeyboardInterrupt:
            # Ctrl-C: the daemon must not go on with a write the user gave up on, and the user
            # must learn whether it was done. Closing our side tells the daemon; its answer
            # (cancelled, or the command's output) follows.
            conn = self._conn or self._greeting
            self._greeting = None
            sent = conn is not None and (conn.awaiting or conn.answer is not None)
            reply = conn.settle(INTERRUPT_WAIT) if conn is not None else None
            self._drop()
            if conn is not None:
                conn.close()
            raise Interrupted(reply, sent=sent) from None

    def _handle(self, call: Call) -> bytes:
        frame = call.frame()
        if self._conn is not None:
            try:
                self._conn.send(frame)
                return self._final(self._conn)
            except ConnectionClosed:
                # The daemon closed a connection kept from an earlier request (its idle
                # deadline, a restart): once more on a new one, same request id.
                self._drop()
            except Unserved:
                self._drop()
                raise
        for attempt in (1, 2):
            conn = self._open(frame)
            try:
                return self._final(conn)
            except Unserved:
                self._drop()
                raise
            except ConnectionClosed as exc:
                self._drop()
                # The daemon went away before answering: a restart (`systemctl restart`, an
                # upgrade retiring it) stops it between its hello and its reply. The service
                # manager hands the next connection to the next instance, and the request id
                # makes a second try safe (a write that did run is not recorded again).
                if attempt == 2:
                    raise Unserved("lost", exc.message) from exc
        raise AssertionError("not reached: the loop returns or raises")

    def _final(self, conn: Connection) -> bytes:
        try:
            data = conn.read_final(on_frame=self._progress)
        except FrameTimeout as exc:
            raise Unserved("timeout", exc.message) from exc
        except ConnectionClosed:
            raise
        except IpcError as exc:
            raise Unserved("protocol", exc.message) from exc
        kind, _, code = wire.reply_head(data)
        if kind == "error" and code in DECLINE_CODES:
            reply = wire.decode(data)
            said = reply.get("message") if isinstance(reply, dict) else None
            raise Unserved(code, f"the daemon declined the request ({code}: {said or '-'})")
        return data

    def _progress(self, frame: bytes) -> None:
        if self.on_progress is None:
            return
        try:
            reply = wire.decode(frame)
        except wire.WireError:
            return
        if isinstance(reply, dict) and reply.get("type") == "progress":
            elapsed = reply.get("elapsed_ms")
            if isinstance(elapsed, int):
                self.on_progress(elapsed)

    def stream(self, call: Call, frame_timeout: float | None) -> Generator[bytes, None, None]:
        """Send one request on a new connection and yield every frame of its reply.

        Raises:
            Unserved: no daemon could serve the request.
            IpcError: the connection broke during the reply.
        """
        conn = self._open(call.frame())
        try:
            yield from conn.frames(frame_timeout)
        finally:
            conn.close()
            if self._conn is conn:
                self._conn = None

    def connect(self) -> bool:
        """Open the connection now (starting a daemon as `start` allows); whether it worked."""
        if self._conn is None:
            try:
                self._open(None)
            except Unserved:
                return False
        return True

    def close(self) -> None:
        self._drop()

    def start_deferred(self) -> bool:
        """Make the background start a cold start asked for (once the command is done).

        Returns:
            Whether this call started a daemon (False: none was asked for, one is starting,
            or one answers already).
        """
        paths, self._deferred = self._deferred, None
        if paths is None:
            return False
        # Deliberately lazy, as in _started.
        from grite.ipc import spawner

        try:
            return spawner.start_detached(paths, idle_timeout=self._idle_timeout)
        except (GriteError, OSError):
            return False  # the next command tries again; this one is done

    def _drop(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    # -- finding the daemon -------------------------------------------------------------------

    def _open(self, first: bytes | None) -> Connection:
        """A greeted connection to a daemon that serves this build, `first` already sent."""
        self._drop()
        try:
            ensure_runtime_dir(self.paths)
        except GriteError as exc:
            raise Unserved("unsafe_runtime_dir", exc.message) from exc
        if self._control:
            path = self._socket_path or self.paths.socket
            conn = self._greet(path, first)
            if conn is None:
                raise Unserved("no_daemon", f"no grite daemon at {path}")
            return self._keep(conn)
        mine = build_id()
        own = build_socket(self.paths, mine)
        conn = self._greet(own, first)
        if conn is not None:
            if conn.server is not None and conn.server.speaks(mine):
                return self._keep(conn)
            conn.close()  # not ours after all (a stale file): the main socket decides
        conn = self._greet(self.paths.socket, first)
        if conn is None:
            return self._keep(self._started(self.paths, first))
        assert conn.server is not None
        if conn.server.speaks(mine):
            return self._keep(conn)
        other = conn.server
        conn.close()
        if other.install in ("", install_dir()) and compute_build_id() == mine:
            # An older build of this installation: an upgrade. This build is the one on disk
            # (a long-lived process of the old code must not retire the new), so it wins.
            self._retire(other)
            if self._start != "wait":
                raise Unserved(
                    "upgrade",
                    f"retired the daemon of build {other.build_id} (pid {other.pid}), an older "
                    "build of this installation; the next command starts this build's",
                )
            return self._keep(self._started(self.paths, first))
        # Another installation's daemon keeps the main socket; this build gets its own.
        return self._keep(self._started(self._paths_for(own), first))

    def _keep(self, conn: Connection) -> Connection:
        self._conn = conn
        self.server = conn.server
        self.connected_to = conn.path
        return conn

    def _paths_for(self, socket_path: str) -> RuntimePaths:
        return paths_for_socket(socket_path, self._environ)

    def _greet(self, path: str, first: bytes | None) -> Connection | None:
        """Connect and greet; None when nothing listens at `path`."""
        for attempt in (1, 2):
            conn = Connection.open(path, connect_timeout=self._connect_timeout)
            if conn is None:
                return None
            self._greeting = conn
            try:
                conn.greet(
                    build_id(),
                    install_dir(),
                    first=first,
                    hello_timeout=self._hello_timeout,
                    timeout=self._timeout,
                )
                self._greeting = None
                return conn
            except ConnectionClosed as exc:
                conn.close()
                # An activated daemon that was exiting took our connection from the queue
                # and closed it unserved (nothing was run); the service manager starts a new
                # instance for the next connection (self-bind: ENOENT, then a start), so once
                # more.
                if attempt == 2:
                    raise Unserved("lost", exc.message) from exc
            except FrameTimeout as exc:
                conn.close()
                raise Unserved("timeout", f"no hello from the daemon at {path}") from exc
            except IpcError as exc:
                conn.close()
                raise Unserved("protocol", exc.message) from exc
        return None  # not reached: the loop returns or raises

    def _started(self, paths: RuntimePaths, first: bytes | None) -> Connection:
        """Start a daemon on `paths.socket` as `start` allows; a greeted connection to it."""
        # Deliberately lazy: starting a daemon is the cold path (subprocess, select).
        from grite.ipc import spawner

        now = time.monotonic()
        if self._start == "never" or now - self._last_start < _RESTART_PAUSE:
            raise Unserved("no_daemon", f"no grite daemon at {paths.socket}")
        self._last_start = now
        if self._start == "background":
            # Started once this command is done (start_deferred): a daemon starting now would
            # take the CPU the command runs on in-process.
            self._deferred = paths
            raise Unserved(
                "cold_start", "no grite daemon was running; one starts in the background"
            )
        try:
            sock = spawner.ensure_daemon(paths, idle_timeout=self._idle_timeout)
        except GriteError as exc:
            raise Unserved("unsafe_runtime_dir", exc.message) from exc
        if sock is None:
            raise Unserved("start_failed", f"could not start a daemon; see {paths.log_file}")
        conn = self._greet(sock, first)
        if conn is None:
            raise Unserved("start_failed", f"the daemon started at {sock} went away")
        assert conn.server is not None
        if not conn.server.speaks(build_id()):
            conn.close()
            raise Unserved(
                "other_build",
                f"the daemon at {sock} runs build {conn.server.build_id}, not {build_id()}",
            )
        return conn

    def _retire(self, other: ServerHello) -> None:
        retire = Call(wire.encode({"type": "retire"}))
        conn = self._greet(self.paths.socket, None)
        if conn is not None:
            try:
                conn.send(retire.frame())
                conn.read_final(timeout=_RETIRE_WAIT)
            except IpcError:
                pass  # it may be exiting already; the wait below decides
            finally:
                conn.close()
        if self._start == "wait":
            _wait_exit(other.pid, _RETIRE_WAIT)


class FallbackTransport(BaseTransport):
    """The daemon when it serves, else the local transport, as the policy allows.

    Args:
        daemon: the daemon transport (None when the policy is off).
        local: builds the local transport on first need (it imports the heavy modules).
        policy: auto, require or off.
        client: who is asking, for the fallback record ("cli", "client", "batch").
        paths: where the fallback record and the daemon log are (None when the policy is off).
    """

    def __init__(
        self,
        daemon: DaemonTransport | None,
        local: Callable[[], BaseTransport],
        *,
        policy: Policy,
        client: str,
        paths: RuntimePaths | None,
    ) -> None:
        self.daemon = None if policy.mode == "off" else daemon
        self._make_local = local
        self._local: BaseTransport | None = None
        self.policy = policy
        self._client = client
        self._paths = paths
        self.served_by = ""  # "daemon" or "local": who ran the last request
        self.fallbacks = 0  # requests run locally because the daemon could not serve them
        self.last_unserved: Unserved | None = None

    @classmethod
    def for_environ(
        cls,
        environ: Mapping[str, str] | None,
        local: Callable[[], BaseTransport],
        *,
        client: str,
        policy: Policy | None = None,
        start: Start = "wait",
        timeout: float = REQUEST_TIMEOUT,
    ) -> FallbackTransport:
        """The transport a client uses, from its environment (default os.environ)."""
        env = os.environ if environ is None else environ
        pol = policy or Policy.from_environ(env)
        if pol.mode == "off":
            # No daemon to find and nothing to record: the runtime directory is not looked up.
            return cls(None, local, policy=pol, client=client, paths=None)
        paths = runtime_paths(env)
        if pol.debug and paths.note:
            sys.stderr.write(f"grite: {paths.note}\n")
        daemon = DaemonTransport(
            paths,
            environ=env,
            # Under `require` the daemon must serve, so a cold start waits for it.
            start="wait" if pol.mode == "require" else start,
            idle_timeout=pol.idle_timeout,
            timeout=pol.reply_timeout if timeout == REQUEST_TIMEOUT else timeout,
        )
        return cls(daemon, local, policy=pol, client=client, paths=paths)

    def handle_request(self, call: Call) -> bytes:
        return self.request(call, bytes)

    def request(self, call: Call, decode: Callable[[bytes], T]) -> T:
        """Run `call` and decode its final frame with `decode`.

        `decode` runs inside the policy: raising Unserved from it (a reply that makes no
        sense) counts as the daemon not serving. GriteErrors it raises pass through.

        Raises:
            DaemonRequired: the policy is require and the daemon did not serve.
        """
        if self.daemon is not None:
            try:
                result = decode(self.daemon.handle_request(call))
                self.served_by = "daemon"
                return result
            except Unserved as exc:
                self.last_unserved = exc
                if self.policy.mode == "require":
                    assert self._paths is not None  # a daemon transport comes with its paths
                    raise DaemonRequired(exc, self._paths.log_file) from exc
                self._note(exc)
        self.served_by = "local"
        return decode(self.local().handle_request(call))

    def local(self) -> BaseTransport:
        """The local transport (built on first use)."""
        if self._local is None:
            self._local = self._make_local()
        return self._local

    def _note(self, exc: Unserved) -> None:
        if exc.cause == "cold_start":
            # By design, not a fault: the first command runs here while the daemon starts.
            if self.policy.debug:
                sys.stderr.write(f"grite: {exc.message}; running in-process\n")
            return
        self.fallbacks += 1
        # Deliberately lazy: only a fallback writes the record.
        from grite.ipc import fallbacks

        assert self._paths is not None  # only a daemon transport falls back
        fallbacks.record(self._paths.fallback_log, self._client, exc.cause, exc.message)
        if self.policy.debug:
            sys.stderr.write(
                f"grite: daemon not used ({exc.cause}: {exc.message}); running in-process\n"
            )

    def finish(self) -> None:
        """After the command's output is written: start the daemon a cold start asked for."""
        if self.daemon is not None:
            self.daemon.start_deferred()

    def close(self) -> None:
        if self.daemon is not None:
            self.daemon.close()
        if self._local is not None:
            self._local.close()
