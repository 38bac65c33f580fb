"""`grite.Client`: the Python API for agent harnesses and tools.

One Client talks to one repository over ONE persistent daemon connection, with a method per
operation returning the typed result Structs of grite.model.requests (and requests_agents);
`call(args)` runs any operation, including the sync and lock areas'. Errors raise the
grite.model.errors classes with their `code` and `exit_code`. Requests go through
grite.ipc.transport like every client's: the daemon when it can serve, else the same operation
in this process (grite.ipc.local, with one repository handle kept open for the Client's life),
as the daemon policy says: `daemon=True` takes it from the environment (GRITE_DAEMON: auto,
require or off; GRITE_NO_DAEMON), or pass "auto", "require" (the daemon or an error, for
tests and harnesses that must know) or False. A daemon lost mid-call is replaced by a retry
of the same request (same request id and clock, so a write is applied once). `served_by`
says who ran the last call and `fallbacks` how many calls ran here because the daemon could
not serve them. `watch()` iterates over the repository's notifications on a second connection
(it needs the daemon).

    with grite.Client("path/to/repo") as g:
        for n in g.watch():
            ...

Imports only the standard library, msgspec, grite.ipc and grite.model at module level, so
`import grite` and `grite.Client` stay cheap; the in-process machinery (argh, dulwich,
diskcache) loads only when it is needed. Not thread-safe: use one Client per thread. Reads no
environment variables itself: pass `environ` to point it at another runtime directory.
"""

from __future__ import annotations

import os
import time
from collections.abc import Generator, Iterator, Mapping
from types import TracebackType
from typing import TYPE_CHECKING, Any, TypeVar

import msgspec

from grite.ipc import protocol
from grite.ipc.transport import Call, DaemonTransport, FallbackTransport, Policy, Unserved
from grite.ipc.wire import FrameTimeout, IpcError
from grite.model import notifications
from grite.model import requests as rq
from grite.model.errors import (
    Conflict,
    CorruptData,
    Environment,
    GriteError,
    InvalidArgs,
    NotFound,
)
from grite.model.notifications import Notification
from grite.model.requests_agents import (
    IssueClaimArgs,
    IssueClaimResult,
    IssueReadyArgs,
    IssueReadyResult,
)

if TYPE_CHECKING:
    from grite.ipc.transport import BaseTransport

__all__ = ["Client", "error_from_code"]

T = TypeVar("T")

_ERRORS: dict[str, type[GriteError]] = {
    "invalid_args": InvalidArgs,
    "not_found": NotFound,
    "conflict": Conflict,
    "environment": Environment,
    "corrupt": CorruptData,
}
_encoder = msgspec.msgpack.Encoder()
# How long a watch keeps trying to reach a daemon again after losing one.
_RESUME_SECONDS = 10.0
_RESUME_PAUSE = 0.5


def error_from_code(
    code: str, message: str, details: dict[str, object] | None = None
) -> GriteError:
    """The grite.model.errors exception for a wire error code (GriteError for others)."""
    cls = _ERRORS.get(code)
    if cls is not None:
        return cls(message, details)
    err = GriteError(message, details)
    err.code = code  # keeps the daemon's code (e.g. "internal") for the caller to see
    return err


def _local() -> BaseTransport:
    # Deliberately lazy: the operations pull in dulwich and diskcache.
    from grite.ipc.local import LocalTransport

    return LocalTransport()


def _op_result(frame: bytes, request_id: bytes) -> protocol.OpResult:
    """The OpResult in a reply's final frame; raises the error an Error frame carries.

    Raises:
        Unserved: the frame makes no sense as a reply to this Op.
        GriteError: the daemon answered with an error (final: not retried).
    """
    try:
        final = protocol.decode_response(frame)
    except msgspec.DecodeError as exc:
        raise Unserved("protocol", f"unreadable reply to an Op: {exc}") from exc
    if final.request_id not in (request_id, b""):  # type: ignore[union-attr]
        raise Unserved("protocol", "the daemon answered another request id")
    if isinstance(final, protocol.Error):
        raise error_from_code(final.code, final.message, dict(final.details))
    if isinstance(final, protocol.Result) and isinstance(final.data, protocol.OpResult):
        return final.data
    raise Unserved("protocol", f"the daemon answered an Op with {type(final).__name__}")


class Client:
    """A connection to one grite repository.

    Args:
        repo: a directory inside the repository (default: the current directory).
        actor: act as this actor id (like --actor); default: the repository's default actor.
        data_dir: actor data directory (like --data-dir / GRITE_HOME).
        daemon: True (default): the policy of the environment (GRITE_DAEMON, GRITE_NO_DAEMON);
            "auto": the daemon (started when none runs), else in-process; "require": the
            daemon or a DaemonRequired error; False or "off": in-process.
        timeout: bound in seconds on each daemon reply.
        environ: environment to find the daemon's runtime directory and policy in (default
            os.environ).

    The daemon connection is opened (and a daemon started) on the first call.

    Raises:
        InvalidArgs: `daemon` (or GRITE_DAEMON) names no daemon mode.
    """

    def __init__(
        self,
        repo: str = ".",
        *,
        actor: str | None = None,
        data_dir: str | None = None,
        daemon: bool | str = True,
        timeout: float = 60.0,
        environ: Mapping[str, str] | None = None,
    ) -> None:
        self.repo = os.path.abspath(repo)
        self.actor = actor
        self.data_dir = data_dir
        self.timeout = timeout
        self.warnings: list[str] = []  # warnings of the last call (e.g. lock policy)
        self._environ = environ
        self._transport = FallbackTransport.for_environ(
            environ, _local, client="client", policy=Policy.choose(daemon, environ), timeout=timeout
        )
        self._paths = self._transport.daemon.paths if self._transport.daemon else None

    # -- connection ------------------------------------------------------------------------

    @property
    def via_daemon(self) -> bool:
        """Whether calls go to the daemon: who served the last call, else whether a daemon
        answers now (this connects, starting one if needed)."""
        if self._transport.served_by:
            return self._transport.served_by == "daemon"
        daemon = self._transport.daemon
        return daemon is not None and daemon.connect()

    @property
    def served_by(self) -> str:
        """ "daemon" or "local": who ran the last call ("" before the first)."""
        return self._transport.served_by

    @property
    def fallbacks(self) -> int:
        """Calls run in this process because the daemon could not serve them."""
        return self._transport.fallbacks

    def close(self) -> None:
        """Close the daemon connection and any repository opened in-process."""
        self._transport.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # -- generic calls ---------------------------------------------------------------------

    def call(self, args: Any, result_type: type[T] | None = None) -> T:
        """Run any operation given its args Struct; returns its result Struct.

        Args:
            args: e.g. `grite.model.requests.IssueShowArgs(issue="abcd")`.
            result_type: the result Struct to decode into (default: the operation's own).

        Raises:
            GriteError: the operation failed (a subclass for each code).
        """
        data = self._run(_encoder.encode(args))
        kind = result_type or self._result_type(type(args))
        if kind is None:
            return msgspec.msgpack.decode(data)  # type: ignore[no-any-return]
        return msgspec.msgpack.decode(data, type=kind)

    def call_packed(self, packed: bytes) -> Any:
        """Run an operation given as msgpack of its args; returns plain data (dicts, lists).

        This is what `grite batch` uses: no Struct types are needed on the daemon path.
        """
        return msgspec.msgpack.decode(self._run(packed))

    def _result_type(self, args_type: type) -> type | None:
        # Deliberately lazy: the operation table (whose annotations name the result types)
        # pulls in dulwich and diskcache; a caller who passes the result type never loads it.
        from grite.ops.table import op_runner

        return op_runner().result_type(args_type)

    def _run(self, packed: bytes) -> msgspec.Raw:
        """Run once; the msgpack of the result."""
        rid = os.urandom(16)
        op = protocol.Op(
            args=msgspec.Raw(packed),
            cwd=self.repo,
            now_ms=time.time_ns() // 1_000_000,
            data_dir=self.data_dir,
        )
        call = Call(protocol.encode(op), request_id=rid, actor=self.actor or "")
        result = self._transport.request(call, lambda frame: _op_result(frame, rid))
        self.warnings = list(result.warnings)
        if result.error is not None:
            error = result.error
            details = msgspec.msgpack.decode(error.details) if error.details else {}
            raise error_from_code(error.code, error.message, details)
        return result.data

    # -- notifications ---------------------------------------------------------------------

    def _watch_connection(
        self, call: Call, timeout: float | None
    ) -> Generator[bytes, None, None] | None:
        if self._paths is None:
            return None
        daemon = DaemonTransport(self._paths, environ=self._environ, start="wait")
        try:
            frames = daemon.stream(call, timeout)
            first = next(frames)
        except (IpcError, StopIteration):
            daemon.close()
            return None

        def rest() -> Generator[bytes, None, None]:
            try:
                yield first
                yield from frames
            finally:
                frames.close()
                daemon.close()

        return rest()

    def watch(
        self, since: str | None = None, *, timeout: float | None = None, resume: bool = True
    ) -> Iterator[Notification]:
        """Yield the repository's notifications as they happen, on a second connection.

        The first live notification is a Subscribed naming the head the stream starts after.
        When the daemon goes away (stopped, upgraded, crashed), the stream reconnects (starting
        a daemon) and resumes after the last WAL head it delivered, so nothing is missed or
        repeated; each reconnection yields a new Subscribed.

        Args:
            since: a WAL head (from a WalAdvanced or Subscribed); everything after it is
                replayed first. NULL_HEAD replays the whole WAL.
            timeout: give up (FrameTimeout) when nothing arrives for this many seconds.
            resume: reconnect after losing the daemon (default); False ends the iteration.

        Raises:
            Environment: no daemon is available (notifications come from the daemon).
            GriteError: the daemon refused (e.g. NotFound for an unknown `since`).
        """
        if self._paths is None:
            raise Environment(
                "watching needs the grite daemon, and this Client runs in-process; create it "
                "with daemon=True"
            )
        cursor = since
        first = True
        while True:
            body = protocol.encode(protocol.Watch(cwd=self.repo, since=cursor))
            call = Call(body, actor=self.actor or "")
            frames = self._watch_connection(call, timeout)
            # A daemon that is retiring or still starting gets a few seconds to make way.
            deadline = time.monotonic() + (0 if first else _RESUME_SECONDS)
            delay = 0.05
            while frames is None and time.monotonic() < deadline:
                time.sleep(delay)
                delay = min(delay * 2, 0.5)
                frames = self._watch_connection(call, timeout)
            first = False
            if frames is None:
                raise Environment(
                    "watching needs the grite daemon, and none could be started; see "
                    "'grite daemon status' and the daemon log"
                )
            try:
                for data in frames:
                    try:
                        frame = protocol.decode_response(data)
                    except msgspec.DecodeError:
                        continue  # an unknown non-final kind (the connection checked finals)
                    if isinstance(frame, protocol.Notification):
                        note = notifications.decode(frame.body) if frame.body else None
                        if isinstance(note, notifications.WalAdvanced):
                            cursor = note.wal_head
                        elif isinstance(note, notifications.Subscribed):
                            cursor = note.wal_head or notifications.NULL_HEAD
                        if note is not None:
                            yield note
                    elif isinstance(frame, protocol.Error):
                        raise error_from_code(frame.code, frame.message, dict(frame.details))
            except FrameTimeout:
                raise
            except IpcError:
                pass  # the daemon went away mid-stream: resume below
            finally:
                frames.close()
            if not resume:
                return
            # The daemon said goodbye or vanished: give it a moment to exit before a new one.
            time.sleep(_RESUME_PAUSE)

    # -- one method per operation ----------------------------------------------------------

    def issue_create(
        self, title: str, body: str = "", labels: list[str] | None = None
    ) -> rq.IssueWriteResult:
        return self.call(
            rq.IssueCreateArgs(title=title, body=body, labels=labels or []), rq.IssueWriteResult
        )

    def issue_list(
        self,
        state: str = "open",
        labels: list[str] | None = None,
        assignee: str | None = None,
        search: str | None = None,
        sort: str = "created",
        limit: int | None = None,
    ) -> rq.IssueListResult:
        args = rq.IssueListArgs(
            state=state,  # type: ignore[arg-type]
            labels=labels or [],
            assignee=assignee,
            search=search,
            sort=sort,  # type: ignore[arg-type]
            limit=limit,
        )
        return self.call(args, rq.IssueListResult)

    def issue_show(self, issue: str) -> rq.IssueView:
        return self.call(rq.IssueShowArgs(issue=issue), rq.IssueView)

    def issue_update(
        self, issue: str, title: str | None = None, body: str | None = None
    ) -> rq.IssueWriteResult:
        return self.call(
            rq.IssueUpdateArgs(issue=issue, title=title, body=body), rq.IssueWriteResult
        )

    def issue_comment(self, issue: str, body: str) -> rq.IssueWriteResult:
        return self.call(rq.IssueCommentArgs(issue=issue, body=body), rq.IssueWriteResult)

    def issue_close(self, issue: str) -> rq.IssueWriteResult:
        return self.call(rq.IssueCloseArgs(issue=issue), rq.IssueWriteResult)

    def issue_reopen(self, issue: str) -> rq.IssueWriteResult:
        return self.call(rq.IssueReopenArgs(issue=issue), rq.IssueWriteResult)

    def label_add(self, issue: str, *labels: str) -> rq.IssueWriteResult:
        return self.call(rq.IssueLabelArgs(issue=issue, add=list(labels)), rq.IssueWriteResult)

    def label_remove(self, issue: str, *labels: str) -> rq.IssueWriteResult:
        return self.call(rq.IssueLabelArgs(issue=issue, remove=list(labels)), rq.IssueWriteResult)

    def assignee_add(self, issue: str, *users: str) -> rq.IssueWriteResult:
        return self.call(rq.IssueAssigneeArgs(issue=issue, add=list(users)), rq.IssueWriteResult)

    def assignee_remove(self, issue: str, *users: str) -> rq.IssueWriteResult:
        return self.call(rq.IssueAssigneeArgs(issue=issue, remove=list(users)), rq.IssueWriteResult)

    def link_add(self, issue: str, url: str, note: str | None = None) -> rq.IssueWriteResult:
        return self.call(rq.IssueLinkArgs(issue=issue, url=url, note=note), rq.IssueWriteResult)

    def attach(self, issue: str, name: str, sha256: str, mime: str) -> rq.IssueWriteResult:
        args = rq.IssueAttachArgs(issue=issue, name=name, sha256=sha256, mime=mime)
        return self.call(args, rq.IssueWriteResult)

    def dep_add(self, issue: str, target: str, dep_type: str = "depends_on") -> rq.DepWriteResult:
        return self.call(
            rq.IssueDepArgs(issue=issue, target=target, dep_type=dep_type), rq.DepWriteResult
        )

    def dep_remove(
        self, issue: str, target: str, dep_type: str = "depends_on"
    ) -> rq.DepWriteResult:
        args = rq.IssueDepArgs(issue=issue, target=target, dep_type=dep_type, remove=True)
        return self.call(args, rq.DepWriteResult)

    def dep_list(self, issue: str, reverse: bool = False) -> rq.DepListResult:
        return self.call(rq.IssueDepListArgs(issue=issue, reverse=reverse), rq.DepListResult)

    def dep_topo(self, state: str = "open", labels: list[str] | None = None) -> rq.DepTopoResult:
        args = rq.IssueDepTopoArgs(state=state, labels=labels or [])  # type: ignore[arg-type]
        return self.call(args, rq.DepTopoResult)

    def issue_ready(self, labels: list[str] | None = None) -> IssueReadyResult:
        """Open issues nothing open holds back, oldest first (created_ts, issue_id)."""
        return self.call(IssueReadyArgs(labels=labels or []), IssueReadyResult)

    def claim(
        self, labels: list[str] | None = None, ttl: str | None = None, *, local: bool = False
    ) -> IssueClaimResult:
        """Lease and assign the first unclaimed ready issue.

        With a grite remote (`origin`, or `[sync] remote`), the lease is taken on the remote,
        so agents on other clones never get the same issue; `local=True` leases in this clone
        only.

        Raises:
            NotFound: no unclaimed ready issue is left.
            Environment: the grite remote cannot be reached (nothing was taken).
        """
        args = IssueClaimArgs(labels=labels or [], ttl=ttl, local=local)
        return self.call(args, IssueClaimResult)
