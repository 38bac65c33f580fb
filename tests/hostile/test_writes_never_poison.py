"""grite never writes what it would refuse to read: a write whose event breaks a bound (text
too long, a clock more than a day ahead) is refused up front with nothing recorded, so a
clone can never be the source of poison."""

from __future__ import annotations

import os
import time
from pathlib import Path

from grite.cli.app import run_invocation
from grite.model.invocation import Invocation
from tests.conftest import Grite, wal_head


def test_a_body_over_the_bound_is_refused_with_nothing_written(
    grite: Grite, git_repo: Path
) -> None:
    issue = grite.json(git_repo, "issue", "create", "--title", "x")["issue_id"]
    head = wal_head(git_repo)
    code, error = grite.error(
        git_repo, "issue", "comment", issue, "--body", "-", input="y" * (1024 * 1024 + 1)
    )
    assert code == 2 and error["code"] == "invalid_args", error
    assert "the body is 1,048,577 characters long; the limit is 1,048,576" in error["message"]
    assert wal_head(git_repo) == head
    grite.json(git_repo, "issue", "comment", issue, "--body", "-", input="y" * (1024 * 1024))


def test_a_clock_more_than_a_day_ahead_writes_nothing(git_repo: Path) -> None:
    def run(*argv: str, ahead_ms: int) -> tuple[int, str]:
        out = run_invocation(
            Invocation(
                argv=[*argv, "--json"],
                cwd=str(git_repo),
                env={},
                request_id=os.urandom(16),
                now_ms=time.time_ns() // 1_000_000 + ahead_ms,
            )
        )
        return out.exit_code, out.stdout

    code, _ = run("issue", "create", "--title", "today", ahead_ms=0)
    assert code == 0
    head = wal_head(git_repo)
    code, out = run("issue", "create", "--title", "from the future", ahead_ms=2 * 86_400_000)
    assert code == 2 and "more than 24 hours after" in out and "nothing was recorded" in out
    assert wal_head(git_repo) == head
    code, _ = run("issue", "create", "--title", "an hour fast", ahead_ms=3_600_000)
    assert code == 0
