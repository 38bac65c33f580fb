"""`grite completion bash|zsh|fish`: the scripts load in the real shells and complete commands,
flags, issue ids and labels (the latter from a real repository, through the real `grite`)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import Grite


def _shell(name: str) -> str:
    path = shutil.which(name)
    assert path, f"{name} is not installed; .ci/run installs it (apt-get install {name})"
    return path


@pytest.fixture
def scripts(grite_local: Grite, git_repo: Path, tmp_path: Path) -> dict[str, Path]:
    out = {}
    for shell, name in (("bash", "grite.bash"), ("zsh", "_grite"), ("fish", "grite.fish")):
        proc = grite_local.run(git_repo, "completion", shell, check=True)
        assert proc.stderr == ""
        path = tmp_path / shell / name
        path.parent.mkdir()
        path.write_text(proc.stdout)
        out[shell] = path
    return out


def _env(grite: Grite) -> dict[str, str]:
    # The completion functions run `grite`: this build's, first on PATH.
    return dict(grite.env, PATH=f"{Path(sys.executable).parent}:{os.environ['PATH']}")


def _bash_complete(grite: Grite, repo: Path, script: Path, *words: str) -> list[str]:
    line = " ".join(f"'{w}'" for w in words)
    program = (
        f"source {script}\nCOMP_WORDS=({line})\nCOMP_CWORD={len(words) - 1}\n"
        '_shtab_grite\nprintf "%s\\n" "${COMPREPLY[@]}"\n'
    )
    proc = subprocess.run(
        [_shell("bash"), "--norc", "-c", program],
        cwd=repo,
        env=_env(grite),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    return [w for w in proc.stdout.splitlines() if w]


def test_bash_completes_commands_subcommands_and_flags(
    grite_local: Grite, git_repo: Path, scripts: dict[str, Path]
) -> None:
    assert _bash_complete(grite_local, git_repo, scripts["bash"], "grite", "iss") == ["issue"]
    assert _bash_complete(grite_local, git_repo, scripts["bash"], "grite", "issue", "cr") == [
        "create"
    ]
    flags = _bash_complete(grite_local, git_repo, scripts["bash"], "grite", "issue", "list", "--s")
    assert set(flags) == {"--state", "--search", "--sort"}
    agents = _bash_complete(grite_local, git_repo, scripts["bash"], "grite", "setup", "c")
    assert set(agents) == {"claude", "codex", "cursor"}


def test_bash_completes_issue_ids_and_labels_from_the_view(
    grite_local: Grite, git_repo: Path, scripts: dict[str, Path]
) -> None:
    made = grite_local.json(git_repo, "issue", "create", "--title", "x", "--label", "bug")
    other = grite_local.json(git_repo, "issue", "create", "--title", "y", "--label", "p1")
    ids = _bash_complete(grite_local, git_repo, scripts["bash"], "grite", "issue", "show", "")
    assert set(ids) == {made["issue_id"], other["issue_id"]}
    prefix = made["issue_id"][:6]
    ids = _bash_complete(grite_local, git_repo, scripts["bash"], "grite", "issue", "close", prefix)
    assert ids == [made["issue_id"]]
    labels = _bash_complete(
        grite_local, git_repo, scripts["bash"], "grite", "issue", "list", "--label", ""
    )
    assert labels == ["bug", "p1"]


def test_fish_script_loads_and_completes(
    grite_local: Grite, git_repo: Path, scripts: dict[str, Path]
) -> None:
    made = grite_local.json(git_repo, "issue", "create", "--title", "x")
    program = (
        f"source {scripts['fish']}; complete -C 'grite iss'; complete -C 'grite issue cr'; "
        "complete -C 'grite issue show '"
    )
    proc = subprocess.run(
        [_shell("fish"), "--no-config", "-c", program],
        cwd=git_repo,
        env=_env(grite_local),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0 and proc.stderr == "", proc.stderr
    words = [line.split("\t")[0] for line in proc.stdout.splitlines()]
    assert words == ["issue", "create", made["issue_id"]]


def test_zsh_script_parses_and_registers_with_compinit(
    grite_local: Grite, git_repo: Path, scripts: dict[str, Path]
) -> None:
    fpath = scripts["zsh"].parent
    program = (
        f"fpath=({fpath} $fpath); autoload -Uz compinit; compinit -u -d {fpath}/.zcompdump; "
        "print -r -- $_comps[grite]; autoload +X _grite && print loaded"
    )
    syntax = subprocess.run(
        [_shell("zsh"), "-n", str(scripts["zsh"])], capture_output=True, text=True, timeout=60
    )
    assert syntax.returncode == 0, syntax.stderr
    proc = subprocess.run(
        [_shell("zsh"), "-f", "-c", program],
        env=_env(grite_local),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["_grite", "loaded"]


def test_completion_needs_no_repository_and_refuses_other_shells(
    grite_local: Grite, tmp_path: Path
) -> None:
    out = grite_local.run(tmp_path, "completion", "bash", check=True)
    # The `complete` line registers the function for `grite` (its options vary with shtab's
    # release; the other tests load the script in a real bash and complete with it).
    assert re.search(r"^complete .*-F _shtab_grite grite$", out.stdout, re.MULTILINE), out.stdout
    bad = grite_local.run(tmp_path, "completion", "tcsh")
    assert bad.returncode == 2 and "invalid choice" in bad.stderr
