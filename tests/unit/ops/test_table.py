"""The operation table in grite.ops: one entry per operation, one context builder, and callers
(grite.Client in-process) that run operations without loading the CLI."""

from __future__ import annotations

import inspect
import json
import subprocess
import sys
import typing
from pathlib import Path

import msgspec
import pytest

from grite.model import batch_commands
from grite.model.errors import GriteError, NotFound
from grite.model.requests import IssueCreateArgs
from grite.model.requests_sync import ExportArgs, SyncArgs
from grite.ops import table
from grite.ops.context import OpContext


def test_every_operation_takes_its_args_and_declares_its_result() -> None:
    runner = table.op_runner()
    for args_type, fn in table.OPERATIONS.items():
        assert issubclass(args_type, msgspec.Struct), args_type
        params = list(inspect.signature(fn).parameters)
        assert len(params) == 2, (fn, params)
        declared = typing.get_type_hints(fn)["return"]
        structs = typing.get_args(declared) or (declared,)
        assert all(issubclass(t, msgspec.Struct) for t in structs), (fn, declared)
        # One result Struct is what grite.Client decodes into; a union is decoded untyped.
        expected = declared if isinstance(declared, type) else None
        assert runner.result_type(args_type) is expected, fn


def test_the_table_is_what_batch_accepts() -> None:
    tags = {t.__struct_config__.tag for t in table.OPERATIONS}
    assert tags == set(batch_commands.COMMANDS)


def test_sync_counts_as_sync_and_a_write_does_not() -> None:
    synced = [t for t in table.OPERATIONS if table.is_sync(t)]
    assert synced == [SyncArgs]
    assert not table.is_sync(IssueCreateArgs) and not table.is_sync(ExportArgs)


def test_op_context_resolves_a_relative_data_dir_against_cwd(git_repo: Path) -> None:
    # The actor is looked up where the client meant: <cwd>/actors/me, not the daemon's cwd.
    with pytest.raises(NotFound) as caught:
        table.op_context(
            cwd=str(git_repo / "sub"),
            opener=lambda p: None,  # type: ignore[arg-type,return-value]
            request_id=b"r" * 16,
            now_ms=1,
            data_dir="actors/me",
        )
    assert f"{git_repo}/sub/actors/me/config.toml" in caught.value.message


def test_op_context_finds_the_repository_of_cwd(git_repo: Path) -> None:
    (git_repo / "sub").mkdir()
    ctx = table.op_context(
        cwd=str(git_repo / "sub"),
        opener=lambda p: None,  # type: ignore[arg-type,return-value]
        request_id=b"r" * 16,
        now_ms=1,
    )
    assert isinstance(ctx, OpContext)
    assert Path(ctx.paths.git_dir).resolve() == (git_repo / ".git").resolve()
    assert ctx.selector.actor is None and ctx.selector.data_dir is None


def test_op_context_refuses_an_actor_that_does_not_exist(git_repo: Path) -> None:
    with pytest.raises(GriteError, match="actor"):
        table.op_context(
            cwd=str(git_repo),
            opener=lambda p: None,  # type: ignore[arg-type,return-value]
            request_id=b"r" * 16,
            now_ms=1,
            actor="00" * 16,
        )


_CLIENT_IN_PROCESS = """
import json, sys
import grite
from grite.model.requests import IssueCreateArgs, IssueListArgs
with grite.Client(sys.argv[1], daemon=False) as c:
    created = c.call(IssueCreateArgs(title="from the table"))
    listed = c.call(IssueListArgs())
print(json.dumps({
    "titles": [i.title for i in listed.issues],
    "via_daemon": c.via_daemon,
    "cli": sorted(m for m in sys.modules if m.startswith("grite.cli.") or m == "grite.cli"),
}))
"""


def test_the_client_runs_operations_in_process_without_the_cli(
    git_repo: Path, isolated_env: dict[str, str]
) -> None:
    init = subprocess.run(
        [sys.executable, "-m", "grite", "init", "--no-agents-md"],
        cwd=git_repo, env={**isolated_env, "GRITE_NO_DAEMON": "1"},
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert init.returncode == 0, init.stderr
    proc = subprocess.run(
        [sys.executable, "-c", _CLIENT_IN_PROCESS, str(git_repo)],
        env=isolated_env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["titles"] == ["from the table"]
    assert out["via_daemon"] is False
    assert out["cli"] == []
