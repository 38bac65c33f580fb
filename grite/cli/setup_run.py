"""Running `grite setup <agent>` and `grite install-skill` in the client process.

The files are the user's own (instruction files, agent settings), so they are read and written
here, by the user's `grite` process, never by the daemon. Each file is read once, every edit
planned for it is applied in turn (grite.cli.setup_agents), and it is written atomically, with
its mode kept, only if it changed; `--dry-run` prints a unified diff instead and writes nothing.
Directories that removal leaves empty are removed up to the scope's root.
"""

from __future__ import annotations

import difflib
import os
from typing import Any

import msgspec

from grite.cli import render
from grite.cli.setup_agents import SetupTarget, plan
from grite.ipc.paths import runtime_paths
from grite.model.errors import Environment, InvalidArgs
from grite.model.invocation import Invocation
from grite.storage.config import write_atomic
from grite.storage.repo import discover_repo

__all__ = ["SetupFile", "SetupResult", "run_install_skill", "run_setup"]


class SetupFile(msgspec.Struct, frozen=True, kw_only=True):
    path: str
    action: str  # created, updated, removed, unchanged
    changes: list[str]


class SetupResult(msgspec.Struct, frozen=True, kw_only=True):
    agent: str
    scope: str  # "project" or "global"
    root: str
    dry_run: bool
    remove: bool
    files: list[SetupFile]
    notes: list[str]
    diff: str | None = None
    # grite 0.5.3's `install-skill` answered with these two; kept for its callers.
    path: str | None = None
    action: str | None = None


def _read(path: str) -> str | None:
    try:
        with open(path, encoding="utf-8") as f:
            return f.read()
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as exc:
        raise Environment(f"cannot read {path}: {exc}; nothing was changed") from exc


def _target(inv: Invocation, global_scope: bool, remove: bool, force: bool, mcp: bool) -> Any:
    home = inv.env.get("HOME") or os.path.expanduser("~")
    config_home = inv.env.get("XDG_CONFIG_HOME") or os.path.join(home, ".config")
    root = home if global_scope else discover_repo(inv.cwd).repo_root
    return SetupTarget(
        root=root,
        home=home,
        config_home=config_home,
        socket=runtime_paths().socket,
        global_scope=global_scope,
        remove=remove,
        force=force,
        mcp=mcp,
    )


def _prune_dirs(path: str, root: str) -> None:
    directory = os.path.dirname(path)
    while directory.startswith(root + os.sep) and directory != root:
        try:
            os.rmdir(directory)
        except OSError:
            return  # not empty (or not ours to remove)
        directory = os.path.dirname(directory)


def _write(path: str, new: str | None, old: str | None, root: str) -> None:
    try:
        if new is None:
            os.remove(path)
            _prune_dirs(path, root)
            return
        mode = os.stat(path).st_mode & 0o7777 if old is not None else 0o644
        write_atomic(path, new.encode("utf-8"), mode, remedy="check that you may write it")
    except OSError as exc:
        raise Environment(f"cannot write {path}: {exc}") from exc


def setup(
    inv: Invocation,
    agent: str,
    *,
    dry_run: bool,
    remove: bool,
    global_scope: bool,
    mcp: bool,
    force: bool,
) -> SetupResult:
    """Plan and (unless dry_run) apply the setup of `agent`.

    Raises:
        InvalidArgs: unknown agent or scope; a TOML file that the change would break.
        Conflict: a file grite would own exists and is the user's (without force).
        Environment: a file cannot be read or written.
    """
    target = plan(agent, _target(inv, global_scope, remove, force, mcp))
    by_path: dict[str, list[Any]] = {}
    for edit in target.edits:
        by_path.setdefault(edit.path, []).append(edit)
    files: list[SetupFile] = []
    diffs: list[str] = []
    writes: list[tuple[str, str | None, str | None]] = []
    for path, edits in by_path.items():
        old = _read(path)
        new = old
        for edit in edits:
            new = edit.apply(new)
        rel = os.path.relpath(path, target.root) if not global_scope else path
        if new == old:
            action = "unchanged"
        elif new is None:
            action = "removed"
        else:
            action = "created" if old is None else "updated"
        files.append(SetupFile(path=rel, action=action, changes=[e.what for e in edits]))
        if new != old:
            writes.append((path, new, old))
            diffs.extend(
                difflib.unified_diff(
                    (old or "").splitlines(keepends=True),
                    (new or "").splitlines(keepends=True),
                    fromfile=f"a/{rel}" if old is not None else "/dev/null",
                    tofile=f"b/{rel}" if new is not None else "/dev/null",
                )
            )
    if not dry_run:
        for path, new, old in writes:
            _write(path, new, old, target.root)
    return SetupResult(
        agent=agent,
        scope="global" if global_scope else "project",
        root=target.root,
        dry_run=dry_run,
        remove=remove,
        files=files,
        notes=target.notes,
        diff="".join(diffs) if dry_run else None,
    )


def _human(result: SetupResult) -> str:
    lines: list[str] = []
    if result.dry_run:
        lines.append(result.diff or "")
    for f in result.files:
        verb = f.action if not result.dry_run or f.action == "unchanged" else f"would be {f.action}"
        lines.append(f"{f.path}: {verb} ({'; '.join(f.changes)})")
    lines.extend(f"note: {n}" for n in result.notes)
    if result.dry_run:
        lines.append("dry run: nothing was written")
    return "\n".join(line.rstrip("\n") for line in lines if line) + "\n"


def run_setup(
    inv: Invocation,
    _parser: Any,
    *,
    agent: str,
    dry_run: bool,
    remove: bool,
    global_scope: bool,
    mcp: bool,
    force: bool,
    json: bool,
    quiet: bool,
) -> tuple[int, str, str]:
    """`grite setup`: (exit status, stdout, stderr). GriteErrors propagate to the CLI."""
    if remove and force:
        raise InvalidArgs("--force only applies when adding; --remove never replaces files")
    result = setup(
        inv,
        agent,
        dry_run=dry_run,
        remove=remove,
        global_scope=global_scope,
        mcp=mcp,
        force=force,
    )
    if json:
        return 0, render.json_success(result), ""
    return 0, "" if quiet and not dry_run else _human(result), ""


def run_install_skill(
    inv: Invocation, _parser: Any, *, global_scope: bool, force: bool, json: bool, quiet: bool
) -> tuple[int, str, str]:
    """grite 0.5.3's `install-skill [--global] [--force]`: `setup claude` under its old name."""
    result = setup(
        inv,
        "claude",
        dry_run=False,
        remove=False,
        global_scope=global_scope,
        mcp=False,
        force=force,
    )
    skill = result.files[0]
    path = skill.path if global_scope else os.path.join(result.root, skill.path)
    result = msgspec.structs.replace(
        result, path=path, action="created" if skill.action == "created" else "updated"
    )
    if json:
        return 0, render.json_success(result), ""
    return 0, "" if quiet else _human(result), ""
