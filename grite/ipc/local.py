"""The local transport: requests executed in this process, answering what the daemon would.

`execute` runs one request body against repository handles: a typed operation (Op, through
grite.ops.table) or a forwarded command line (RunArgv, through the argv runner the `grite`
command passes in: grite.cli.app.run_invocation; grite.Client never sends one). The daemon
runs `run_op` in its worker threads against its warm registry; LocalTransport runs it here and
encodes the same final frame the daemon sends, so a client handles one kind of reply whoever
served it. Heavy (dulwich, diskcache through grite.ops): imported only on the in-process path
and inside the daemon, never by the `grite` command's daemon path.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import msgspec

from grite.ipc import protocol
from grite.ipc.transport import BaseTransport, Call
from grite.model.errors import GriteError, InvalidArgs
from grite.ops.repo_handle import RepoHandle
from grite.ops.table import HandleProvider, is_sync, op_context, op_runner

if TYPE_CHECKING:
    from grite.model.invocation import Invocation, Outcome
    from grite.storage.repo import RepoPaths

__all__ = ["ArgvRunner", "LocalTransport", "OpenHandles", "execute", "run_op"]

# Runs a forwarded command line (grite.cli.app.run_invocation): only the CLI parses argv.
ArgvRunner = Callable[["Invocation", HandleProvider], "Outcome"]


def _encode_details(details: dict[str, object]) -> msgspec.Raw:
    try:
        return msgspec.Raw(protocol.encode(details))  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return msgspec.Raw(protocol.encode({k: str(v) for k, v in details.items()}))  # type: ignore[arg-type]


def run_op(
    op: protocol.Op, request_id: bytes, actor: str, handles: HandleProvider
) -> tuple[protocol.OpResult, str]:
    """Decode and run one Op; grite errors become an OpResult error (they are answers).

    Returns:
        The result and the notification source its writes count as ("sync" or
        "local_write").
    """
    runner = op_runner()
    warnings: list[str] = []
    source = "local_write"
    try:
        args = runner.decode(bytes(op.args))
        if is_sync(type(args)):
            source = "sync"
        ctx = op_context(
            cwd=op.cwd,
            opener=handles.get,
            request_id=request_id,
            now_ms=op.now_ms,
            actor=actor or None,
            data_dir=op.data_dir,
            warnings=warnings,
        )
        result = runner.run(ctx, args)
    except GriteError as err:
        error = protocol.OpError(
            code=err.code, message=err.message, details=_encode_details(err.details)
        )
        return protocol.OpResult(error=error, warnings=warnings), source
    data = msgspec.Raw(protocol.encode(result))
    return protocol.OpResult(data=data, warnings=warnings), source


def execute(
    body: protocol.RequestBody,
    request_id: bytes,
    actor: str,
    handles: HandleProvider,
    run_argv: ArgvRunner | None = None,
) -> protocol.ResultData:
    """Run an Op, or a RunArgv through `run_argv`, against `handles`.

    Raises:
        InvalidArgs: another request kind (status, watch, ...: only a daemon answers those),
            or a RunArgv without an argv runner.
    """
    if isinstance(body, protocol.Op):
        return run_op(body, request_id, actor, handles)[0]
    if isinstance(body, protocol.RunArgv) and run_argv is not None:
        return protocol.RunArgvResult(outcome=run_argv(body.invocation, handles))
    raise InvalidArgs(
        f"{protocol.request_tag(type(body))} is answered by the grite daemon only; "
        "run without --no-daemon and GRITE_DAEMON=off"
    )


def _close_all(handles: dict[str, RepoHandle]) -> None:
    """Close and forget every repository in `handles` (the dict itself is kept)."""
    opened = list(handles.values())
    handles.clear()
    for handle in opened:
        handle.close()


class OpenHandles:
    """A HandleProvider that keeps every repository it opened until close()."""

    def __init__(self) -> None:
        self._handles: dict[str, RepoHandle] = {}
        # Handles nobody closed (a grite.Client left open) are still closed when collected or
        # at interpreter exit: left to the end of shutdown, dulwich's pack finalizers print
        # tracebacks ("sys.meta_path is None") after an in-process sync.
        weakref.finalize(self, _close_all, self._handles)

    def get(self, paths: RepoPaths) -> RepoHandle:
        key = str(paths.git_dir)
        handle = self._handles.get(key)
        if handle is None:
            handle = RepoHandle.open(paths)
            self._handles[key] = handle
        return handle

    def close(self) -> None:
        _close_all(self._handles)


class LocalTransport(BaseTransport):
    """Runs requests in this process; repositories stay open until close().

    Args:
        run_argv: runs a forwarded command line (the `grite` command passes
            grite.cli.app.run_invocation); without it only typed operations run here.
    """

    def __init__(self, run_argv: ArgvRunner | None = None) -> None:
        self._handles = OpenHandles()
        self._run_argv = run_argv

    def handle_request(self, call: Call) -> bytes:
        try:
            body = protocol.decode_body(call.body)
        except msgspec.DecodeError as exc:
            raise InvalidArgs(f"undecodable request: {exc}") from exc
        try:
            data: Any = execute(body, call.request_id, call.actor, self._handles, self._run_argv)
        except GriteError as err:
            error = protocol.Error(
                request_id=call.request_id,
                code=err.code,
                message=err.message,
                details={k: str(v) for k, v in err.details.items()},
                exit_code=err.exit_code,
            )
            return protocol.encode(error)
        return protocol.encode(protocol.Result(request_id=call.request_id, data=data))

    def close(self) -> None:
        self._handles.close()
