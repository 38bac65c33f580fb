"""What a daemon request executes: a forwarded command line or a typed operation.

Both run the operations of grite.cli.app.OPERATIONS against the registry's warm handles, in the
supervisor's thread pool. The CLI app, and with it argh, dulwich and diskcache, is imported
lazily here, only ever inside the daemon and after it has reported ready.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import msgspec

from grite.daemon.registry import RequestHandles
from grite.ipc import protocol
from grite.model.errors import GriteError

if TYPE_CHECKING:
    from grite.model.invocation import Invocation, Outcome
    from grite.ops.agents import OpRunner

__all__ = ["default_executor", "discover", "op_runner", "run_op"]


def default_executor(inv: Invocation, handles: RequestHandles) -> Outcome:
    # Deliberately lazy, and only ever in the daemon: the CLI app pulls argh, dulwich and
    # diskcache, which the daemon loads in a worker thread after it has reported ready.
    from grite.cli import app

    return app.run_invocation(inv, handles)


def op_runner() -> OpRunner:
    # Deliberately lazy, like default_executor: the operations table pulls in the whole CLI.
    from grite.cli import app
    from grite.ops.agents import OpRunner

    return OpRunner(app.OPERATIONS)


def _encode_details(details: dict[str, object]) -> msgspec.Raw:
    try:
        return msgspec.Raw(protocol.encode(details))  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return msgspec.Raw(protocol.encode({k: str(v) for k, v in details.items()}))  # type: ignore[arg-type]


def run_op(
    runner: OpRunner, op: protocol.Op, request_id: bytes, actor: str, handles: RequestHandles
) -> tuple[protocol.OpResult, str]:
    """Decode and run one Op; grite errors become an OpResult error (they are answers)."""
    warnings: list[str] = []
    source = "local_write"
    try:
        args = runner.decode(bytes(op.args))
        tag = type(args).__struct_config__.tag
        if isinstance(tag, str) and tag.startswith("sync"):
            source = "sync"
        result = runner.run(
            args,
            cwd=op.cwd,
            opener=handles.get,  # type: ignore[arg-type]
            request_id=request_id,
            now_ms=op.now_ms,
            actor=actor or None,
            data_dir=op.data_dir,
            warnings=warnings,
        )
    except GriteError as err:
        error = protocol.OpError(
            code=err.code, message=err.message, details=_encode_details(err.details)
        )
        return protocol.OpResult(error=error, warnings=warnings), source
    data = msgspec.Raw(protocol.encode(result))
    return protocol.OpResult(data=data, warnings=warnings), source


def discover(cwd: str) -> Any:
    # Deliberately lazy: storage pulls in dulwich, loaded in a worker thread after ready.
    from grite.storage.repo import discover_repo

    return discover_repo(cwd)
