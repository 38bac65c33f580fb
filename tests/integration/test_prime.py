"""`grite prime` in both modes: the budget on a 10,000-issue repository, the ready queue it shows,
claims and locks, per-actor "changed since", AGENTS.md rules, and the hook format."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

from grite.model.events import DependencyAdded, IssueCreated, StateChanged
from grite.model.hashing import make_event
from grite.model.requests_prime import estimate_tokens
from grite.storage.wal import Wal, append_with_retry
from tests.conftest import Grite, git

ACTOR = bytes.fromhex("42" * 16)
_ID_LINE = re.compile(r"^- `([0-9a-f]{12})` ", re.MULTILINE)


def _seed(repo: Path, n: int) -> None:
    """n issues in a few WAL commits: long, hostile titles; every 3rd waits on the one before;
    every 10th closed. Written straight to the WAL, as a clone would receive them."""
    wal = Wal(str(repo / ".git"))
    ids = [bytes([i % 256]) + os.urandom(15) for i in range(n)]
    events = []
    for i, issue in enumerate(ids):
        title = f"issue {i} " + "word " * 3 + "\nwith `ticks` and \x1b[31mescapes " + "pad " * 30
        events.append(
            make_event(
                issue_id=issue,
                actor=ACTOR,
                ts_unix_ms=1_700_000_000_000 + i,
                kind=IssueCreated(title=title, body="b", labels=[f"l{i % 7}", "area/long-label"]),
            )
        )
        if i % 3 == 2:
            events.append(
                make_event(
                    issue_id=issue,
                    actor=ACTOR,
                    ts_unix_ms=1_700_000_100_000 + i,
                    kind=DependencyAdded(target=ids[i - 1], dep_type="depends_on"),
                )
            )
        if i % 10 == 0:
            events.append(
                make_event(
                    issue_id=issue,
                    actor=ACTOR,
                    ts_unix_ms=1_700_000_200_000 + i,
                    kind=StateChanged(state="closed"),
                )
            )
    for start in range(0, len(events), 2000):
        append_with_retry(wal, ACTOR, events[start : start + 2000])
    wal.close()


def test_prime_fits_the_budget_on_10000_issues_and_shows_the_ready_queue(
    grite: Grite, git_repo: Path
) -> None:
    _seed(git_repo, 10_000)
    (git_repo / "AGENTS.md").write_text("# Rules\n\n" + "- run the tests before closing\n" * 200)
    out = grite.run(git_repo, "prime", check=True)
    assert out.stderr == ""
    text = out.stdout
    assert estimate_tokens(text) <= 1500, estimate_tokens(text)
    ready = grite.json(git_repo, "issue", "ready")
    shown = _ID_LINE.findall(text.split("## Ready", 1)[1].split("\n## ", 1)[0])
    assert shown, text
    assert shown == [r["issue_id"][:12] for r in ready["issues"][: len(shown)]]
    assert f"## Ready ({ready['total']}, oldest first)" in text
    assert "more: `grite issue ready`" in text
    # WAL titles are untrusted: one printable line each, no backticks or escapes.
    assert "\x1b" not in text and "with 'ticks'" in text
    assert "## Project rules (AGENTS.md)" in text and "run the tests" in text
    small = grite.run(git_repo, "prime", "--max-tokens", "400", check=True).stdout
    assert estimate_tokens(small) <= 400
    assert "grite issue ready --claim" in small  # the commands are never cut


def test_prime_lists_claims_locks_and_changes_since_the_actors_last_prime(
    grite: Grite, git_repo: Path
) -> None:
    a = grite.json(git_repo, "issue", "create", "--title", "first")["issue_id"]
    b = grite.json(git_repo, "issue", "create", "--title", "second")["issue_id"]
    first = grite.json(git_repo, "prime")
    assert first["since_ms"] is None and first["changed"] == []
    assert [i["issue_id"] for i in first["ready"]] == [a, b]
    claim = grite.json(git_repo, "issue", "ready", "--claim")
    assert claim["issue"]["issue_id"] == a
    grite.json(git_repo, "lock", "acquire", "path:src/", "--ttl", "10m")
    grite.json(git_repo, "issue", "comment", b, "--body", "progress")
    second = grite.json(git_repo, "prime")
    assert second["since_wal_head"] == first["wal_head"]
    assert {i["issue_id"] for i in second["changed"]} == {a, b}
    assert [c["issue_id"] for c in second["claimed"]] == [a] and second["claimed"][0]["mine"]
    assert {lk["resource"] for lk in second["locks"]} == {f"issue:{a}", "path:src/"}
    md = second["markdown"]
    assert "## Claimed (1)" in md and "## Locks (2)" in md and "(claimed)" in md
    # Nothing happened since: an empty change list, and --no-record keeps the mark.
    third = grite.json(git_repo, "prime", "--no-record")
    assert third["changed_total"] == 0 and third["since_wal_head"] == second["wal_head"]
    # Another actor has its own mark: its first prime lists no changes.
    other = grite.json(git_repo, "actor", "init", "--label", "bot")["actor_id"]
    theirs = grite.json(git_repo, "--actor", other, "prime")
    assert theirs["since_ms"] is None and theirs["actor"] == other
    mark = git_repo / ".git" / "grite" / "actors" / other / "prime.json"
    assert json.loads(mark.read_text())["wal_head"] == theirs["wal_head"]


def test_prime_hook_format_is_the_session_start_answer(grite: Grite, git_repo: Path) -> None:
    grite.json(git_repo, "issue", "create", "--title", "hooked")
    out = grite.run(git_repo, "prime", "--hook", check=True)
    answer = json.loads(out.stdout)
    assert answer["hookSpecificOutput"]["hookEventName"] == "SessionStart"
    assert "hooked" in answer["hookSpecificOutput"]["additionalContext"]


def test_prime_output_is_identical_in_both_modes(
    grite_local: Grite, isolated_env: dict[str, str], git_repo: Path
) -> None:
    grite_local.json(git_repo, "issue", "create", "--title", "same")
    git(git_repo, "config", "user.name", "Test")
    local = grite_local.run(git_repo, "prime", "--no-record", check=True)
    daemon = Grite(isolated_env, "daemon").run(git_repo, "prime", "--no-record", check=True)
    assert local.stdout == daemon.stdout


def test_prime_refuses_a_budget_too_small(grite: Grite, git_repo: Path) -> None:
    code, err = grite.error(git_repo, "prime", "--max-tokens", "10")
    assert code == 2 and "--max-tokens" in err["message"]
