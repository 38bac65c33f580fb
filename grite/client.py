"""`grite.Client`: the Python API for agent harnesses and tools.

One Client talks to one repository over ONE persistent daemon connection, with a method per
operation returning the typed result Structs of grite.model.requests (and requests_agents);
`call(args)` runs any operation, including the sync and lock areas'. Errors raise the
grite.model.errors classes with their `code` and `exit_code`. When no daemon can be reached
(or `daemon=False`) the same operations run in this process, through the same code
(grite.cli.app.OPERATIONS via grite.ops.agents.OpRunner), with one repository handle kept open
for the Client's life; a daemon lost mid-call is replaced by an in-process retry of the same
request (same request id and clock, so a write is applied once). `watch()` iterates over the
repository's notifications on a second connection (it needs the daemon).

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
from collections.abc import Iterator, Mapping
from types import TracebackType
from typing import TYPE_CHECKING, Any, TypeVar

import msgspec

from grite.ipc import protocol
from grite.ipc.client import Connection, DaemonUnavailable
from grite.ipc.framing import FrameTimeout, IpcError
from grite.ipc.paths import runtime_paths
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
    from grite.ops.agents import OpRunner
    from grite.ops.repo_handle import RepoHandle
    from grite.storage.repo import RepoPaths

__all__ = ["Client", "error_from_code"]

T = TypeVar("T")

# Daemon answers meaning "not run there": the call then runs in this process.
_FALL_BACK_CODES = frozenset({"busy", "version_mismatch", "bad_request"})
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


class Client:
    """A connection to one grite repository.

    Args:
        repo: a directory inside the repository (default: the current directory).
        actor: act as this actor id (like --actor); default: the repository's default actor.
        data_dir: actor data directory (like --data-dir / GRITE_HOME).
        daemon: use the per-user daemon (started when none runs); False runs in-process.
        timeout: bound in seconds on each daemon reply.
        environ: environment to find the daemon's runtime directory in (default os.environ).

    The daemon connection is opened (and a daemon started) on the first call; an
    unreachable daemon means running in-process, never an error.
    """

    def __init__(
        self,
        repo: str = ".",
        *,
        actor: str | None = None,
        data_dir: str | None = None,
        daemon: bool = True,
        timeout: float = 60.0,
        environ: Mapping[str, str] | None = None,
    ) -> None:
        self.repo = os.path.abspath(repo)
        self.actor = actor
        self.data_dir = data_dir
        self.timeout = timeout
        self.warnings: list[str] = []  # warnings of the last call (e.g. lock policy)
        self._environ = environ
        self._use_daemon = daemon
        self._conn: Connection | None = None
        self._runner: OpRunner | None = None
        self._handles: dict[str, RepoHandle] = {}
        # Connected on first use: an idle connection that never sent a request would hold a
        # stopping daemon until the connection's read deadline.
        self._tried = False

    # -- connection ------------------------------------------------------------------------

    @property
    def via_daemon(self) -> bool:
        """Whether calls go to the daemon (False: they run in this process); connects."""
        self._ensure_connection()
        return self._conn is not None

    def _ensure_connection(self) -> None:
        if self._conn is None and self._use_daemon:
            # The first time a daemon may be started; later, one that came back is used.
            self._conn = self._connect(spawn=not self._tried)
            self._tried = True

    def _connect(self, *, spawn: bool) -> Connection | None:
        try:
            paths = runtime_paths(self._environ)
            try:
                return Connection.open(paths.socket, timeout=self.timeout)
            except DaemonUnavailable:
                if not spawn:
                    return None
                # Deliberately lazy: subprocess is only needed to start a daemon.
                from grite.ipc import spawner

                idle = (self._environ or {}).get("GRITE_DAEMON_IDLE_TIMEOUT", "")
                sock = spawner.ensure_daemon(
                    paths, idle_timeout=int(idle) if idle.isdigit() else None
                )
                return None if sock is None else Connection.open(sock, timeout=self.timeout)
        except (IpcError, GriteError, OSError):
            return None  # the daemon is never needed for correctness

    def _drop(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def close(self) -> None:
        """Close the daemon connection and any repository opened in-process."""
        self._drop()
        handles, self._handles = self._handles, {}
        for handle in handles.values():
            handle.close()

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
        result = self._run(_encoder.encode(args))
        if isinstance(result, msgspec.Raw):
            kind = result_type or self._local_runner().result_type(type(args))
            if kind is None:
                return msgspec.msgpack.decode(result)  # type: ignore[no-any-return]
            return msgspec.msgpack.decode(result, type=kind)
        return result  # type: ignore[no-any-return]

    def call_packed(self, packed: bytes) -> Any:
        """Run an operation given as msgpack of its args; returns plain data (dicts, lists).

        This is what `grite batch` uses: no Struct types are needed on the daemon path.
        """
        result = self._run(packed)
        if isinstance(result, msgspec.Raw):
            return msgspec.msgpack.decode(result)
        return result

    def _run(self, packed: bytes) -> Any:
        """Run once: a Raw result from the daemon, or a Struct when run in-process."""
        rid = os.urandom(16)
        now_ms = time.time_ns() // 1_000_000
        self.warnings = []
        self._ensure_connection()
        if self._conn is not None:
            op = protocol.Op(
                args=msgspec.Raw(packed), cwd=self.repo, now_ms=now_ms, data_dir=self.data_dir
            )
            try:
                final = self._conn.request(op, request_id=rid, actor=self.actor or "")
            except IpcError:
                self._drop()  # lost before the final frame: retried here, applied once
            else:
                if isinstance(final, protocol.Result) and isinstance(final.data, protocol.OpResult):
                    self.warnings = list(final.data.warnings)
                    error = final.data.error
                    if error is not None:
                        details = msgspec.msgpack.decode(error.details) if error.details else {}
                        raise error_from_code(error.code, error.message, details)
                    return final.data.data
                if isinstance(final, protocol.Error) and final.code not in _FALL_BACK_CODES:
                    raise error_from_code(final.code, final.message, dict(final.details))
                self._drop()
        return self._run_here(packed, rid, now_ms)

    def _local_runner(self) -> OpRunner:
        if self._runner is None:
            # Deliberately lazy: the operations table pulls in argh, dulwich and diskcache.
            from grite.cli import app
            from grite.ops.agents import OpRunner

            self._runner = OpRunner(app.OPERATIONS)
        return self._runner

    def _open(self, paths: RepoPaths) -> RepoHandle:
        key = str(paths.git_dir)
        handle = self._handles.get(key)
        if handle is None:
            from grite.ops.repo_handle import RepoHandle  # loaded by _local_runner already

            handle = RepoHandle.open(paths)
            self._handles[key] = handle
        return handle

    def _run_here(self, packed: bytes, rid: bytes, now_ms: int) -> Any:
        runner = self._local_runner()
        args = runner.decode(packed)
        return runner.run(
            args,
            cwd=self.repo,
            opener=self._open,
            request_id=rid,
            now_ms=now_ms,
            actor=self.actor,
            data_dir=self.data_dir,
            warnings=self.warnings,
        )

    # -- notifications ---------------------------------------------------------------------

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
        if not self._use_daemon:
            raise Environment(
                "watching needs the grite daemon, and this Client runs in-process; create it "
                "with daemon=True"
            )
        cursor = since
        first = True
        while True:
            conn = self._connect(spawn=True)
            # A daemon that is retiring or still starting gets a few seconds to make way.
            deadline = time.monotonic() + (0 if first else _RESUME_SECONDS)
            delay = 0.05
            while conn is None and time.monotonic() < deadline:
                time.sleep(delay)
                delay = min(delay * 2, 0.5)
                conn = self._connect(spawn=True)
            first = False
            if conn is None:
                raise Environment(
                    "watching needs the grite daemon, and none could be started; see "
                    "'grite daemon status' and the daemon log"
                )
            try:
                body = protocol.Watch(cwd=self.repo, since=cursor)
                for frame in conn.stream(body, actor=self.actor or "", frame_timeout=timeout):
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
                conn.close()
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
