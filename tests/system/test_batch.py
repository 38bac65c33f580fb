"""`grite batch`: JSON-lines commands over one connection (or in-process), one result each."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import make_repo
from tests.system.conftest import DaemonEnv


def _batch(denv: DaemonEnv, repo: Path, lines: list[str], *args: str, local: bool = False):  # type: ignore[no-untyped-def]
    # The daemon runs strict: a command that fell back in-process fails instead.
    env = dict(denv.env, GRITE_NO_DAEMON="1") if local else dict(denv.env, GRITE_DAEMON="require")
    return subprocess.run(
        [sys.executable, "-m", "grite.cli.entry", "batch", *args],
        cwd=repo,
        env=env,
        input="".join(line + "\n" for line in lines),
        capture_output=True,
        text=True,
        timeout=120,
    )


def denv_status(denv: DaemonEnv) -> str:
    return denv.run("daemon", "status", "--json").stdout


@pytest.mark.parametrize("local", [False, True], ids=["daemon", "local"])
def test_a_thousand_mixed_commands_return_a_thousand_results_in_order(
    daemon_env: DaemonEnv, tmp_path: Path, local: bool
) -> None:
    repo = make_repo(tmp_path / "repo")
    lines = []
    for i in range(100):
        lines.append(json.dumps({"type": "issue_create", "title": f"t{i}", "labels": ["b"]}))
        lines += [json.dumps({"type": "issue_list", "limit": 1, "sort": "updated"})] * 3
        lines += [json.dumps({"type": "issue_ready", "labels": ["b"]})] * 3
        lines += [json.dumps({"type": "issue_show", "issue": "ffff"})] * 3  # not found
    proc = _batch(daemon_env, repo, lines, local=local)
    assert bool(daemon_env.daemon_pids()) is not local
    out = [json.loads(line) for line in proc.stdout.splitlines()]
    assert len(out) == 1000, proc.stderr
    assert proc.returncode == 3  # the first failure's status
    for i in range(100):
        group = out[10 * i : 10 * i + 10]
        created = group[0]
        assert created["ok"] and created["data"]["title"] == f"t{i}"
        for listed in group[1:4]:
            assert listed["data"]["issues"][0]["issue_id"] == created["data"]["issue_id"]
        for ready in group[4:7]:
            assert ready["data"]["total"] == i + 1
        for missing in group[7:]:
            assert missing["ok"] is False and missing["error"]["code"] == "not_found"
    assert "daemon not used" not in proc.stderr
    if not local:
        status = json.loads(denv_status(daemon_env))
        assert status["data"]["fallbacks_24h"] == 0
        assert status["data"]["requests_served"] >= 1000


def test_batch_output_matches_the_cli_json_and_stop_on_error_stops(
    daemon_env: DaemonEnv, tmp_path: Path
) -> None:
    repo = make_repo(tmp_path / "repo")
    created = _batch(daemon_env, repo, ['{"type": "issue_create", "title": "x"}'])
    issue = json.loads(created.stdout)["data"]["issue_id"]
    show = _batch(daemon_env, repo, [json.dumps({"type": "issue_show", "issue": issue})])
    cli = daemon_env.run("issue", "show", issue, "--json", cwd=str(repo))
    assert json.loads(show.stdout) == json.loads(cli.stdout)
    lines = ["not json", '{"type": "nope"}', '{"type": "issue_list"}']
    proc = _batch(daemon_env, repo, lines)
    out = [json.loads(line) for line in proc.stdout.splitlines()]
    assert [o["ok"] for o in out] == [False, False, True]
    assert out[0]["error"]["code"] == out[1]["error"]["code"] == "invalid_args"
    assert proc.returncode == 2
    stopped = _batch(daemon_env, repo, lines, "--stop-on-error")
    assert len(stopped.stdout.splitlines()) == 1 and stopped.returncode == 2


@pytest.mark.parametrize("local", [False, True], ids=["daemon", "local"])
def test_unknown_keys_and_types_are_errors_naming_line_and_key(
    daemon_env: DaemonEnv, tmp_path: Path, local: bool
) -> None:
    repo = make_repo(tmp_path / "repo")
    lines = [
        json.dumps({"type": "issue_create", "title": "x", "label": ["bug"]}),
        json.dumps({"type": "issue_creat", "title": "x"}),
        json.dumps({"type": "issue_create", "title": "x", "labels": "bug"}),
        json.dumps({"type": "issue_list"}),
    ]
    proc = _batch(daemon_env, repo, lines, local=local)
    out = [json.loads(line) for line in proc.stdout.splitlines()]
    assert proc.returncode == 2 and len(out) == 4, proc.stderr
    first, second, third, listed = out
    assert first["ok"] is False and first["error"]["details"] == {
        "line": 1, "type": "issue_create", "key": "label"
    }  # fmt: skip
    assert (
        'unknown key "label" for issue_create (did you mean "labels"?)'
        in (first["error"]["message"])
    )
    assert (
        'line 2: unknown command type "issue_creat" (did you mean "issue_create"?)'
        in (second["error"]["message"])
    )
    assert (
        "line 3: issue_create: Expected `array`, got `str` - at `$.labels`"
        in (third["error"]["message"])
    )
    assert listed["ok"] and listed["data"]["issues"] == []  # nothing was created
