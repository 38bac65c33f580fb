"""Attack 8: titles, labels and comments from a remote were printed raw: ANSI erase sequences,
OSC 52 clipboard writes, OSC 8 hidden links, `\\r` overwrites, bidirectional overrides; the
Markdown export inserted bodies unquoted.

Now every string that came from the WAL or a ref is shown escaped by human output (one
function, grite.model.display.printable), bodies and comments keep only their newlines and
tabs, the Markdown export block-quotes bodies and escapes markup; JSON stays exact. The test
pulls one hostile issue (every field hostile) and a hostile lock, then checks the bytes of
every human-output command.
"""

from __future__ import annotations

import json
import os
import re

from dulwich.objects import Blob, Commit, Tree
from dulwich.repo import Repo

from grite.model.display import printable
from grite.model.events import (
    AssigneeAdded,
    AttachmentAdded,
    CommentAdded,
    DependencyAdded,
    IssueCreated,
    LinkAdded,
)
from grite.model.hashing import make_event
from grite.model.leases import lock_ref_name
from tests.hostile.conftest import Victim, now_ms

HOSTILE = (
    "T\x1b[2J\x1b[H"  # erase the screen, cursor home
    "\x1b]52;c;cHduZWQ=\x07"  # OSC 52: write the clipboard
    "\x1b]8;;https://evil.example\x1b\\click\x1b]8;;\x1b\\"  # OSC 8: a hidden link
    "ok\rFAKE"  # overwrite the line
    "\u202eevil\u2066"  # bidirectional override and isolate
    "\x9b31m\x7f\x00"  # C1 CSI, DEL, NUL
)
# The same, as a command-line argument can carry it (no NUL).
HOSTILE_ARG = HOSTILE.replace("\x00", "")
# What a terminal must never receive from data (newlines are checked per field below).
FORBIDDEN = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


def _hostile_issue(v: Victim) -> bytes:
    issue = os.urandom(16)
    actor = os.urandom(16)
    ts = now_ms() - 60_000
    kinds = [
        IssueCreated(title=HOSTILE, body=f"line one\n{HOSTILE}\nline three", labels=[HOSTILE]),
        CommentAdded(body=f"{HOSTILE}\r\nsecond line"),
        LinkAdded(url=HOSTILE, note=HOSTILE),
        AssigneeAdded(user=HOSTILE),
        AttachmentAdded(name=HOSTILE, sha256=bytes(32), mime=HOSTILE),
    ]
    events = [
        make_event(issue_id=issue, actor=actor, ts_unix_ms=ts + i, kind=k)
        for i, k in enumerate(kinds)
    ]
    events.append(
        make_event(
            issue_id=bytes.fromhex(v.issues[1]),
            actor=actor,
            ts_unix_ms=ts + 10,
            kind=DependencyAdded(target=issue, dep_type="related_to"),
        )
    )
    v.forge_on_remote(events=events)
    return issue


def _hostile_lock(v: Victim) -> None:
    """A lock ref as another clone (or a mirror fetch) brings it: owner and resource hostile."""
    body = {
        "owner": HOSTILE,
        "nonce": "00000000-0000-4000-8000-000000000000",
        "expires_unix_ms": now_ms() + 3_600_000,
        "resource": f"repo:{HOSTILE}",
    }
    with Repo(str(v.repo / ".git")) as r:
        blob = Blob.from_string(json.dumps(body, indent=2).encode())
        tree = Tree()
        tree.add(b"lock.json", 0o100644, blob.id)
        commit = Commit()
        commit.tree = tree.id
        commit.author = commit.committer = b"mallory <m@example.com>"
        commit.author_time = commit.commit_time = now_ms() // 1000
        commit.author_timezone = commit.commit_timezone = 0
        commit.message = b"Lock"
        for obj in (blob, tree, commit):
            r.object_store.add_object(obj)
        r.refs[lock_ref_name(f"repo:{HOSTILE}").encode()] = commit.id


def _check(output: str, what: str) -> None:
    found = FORBIDDEN.search(output)
    assert found is None, f"{what} printed {found.group()!r}:\n{output}"  # type: ignore[union-attr]
    for line in output.split("\n"):
        assert not line.startswith("FAKE"), f"{what} let a field start a line: {line!r}"


def test_every_field_of_a_hostile_issue_is_printed_escaped(victim: Victim) -> None:
    v = victim
    issue = _hostile_issue(v).hex()
    v.ok("sync")  # the data is valid: it arrives, it is only ever shown escaped
    _hostile_lock(v)
    v.ok("actor", "init", "--label", HOSTILE_ARG)
    shown = printable(HOSTILE)
    assert "\\x1b[2J" in shown and "\\u202e" in shown and "\\r" in shown

    commands = [
        ("issue", "list"),
        ("issue", "list", "--state", "all"),
        ("issue", "show", issue),
        ("issue", "dep", "list", v.issues[1]),
        ("issue", "dep", "list", issue, "--reverse"),
        ("issue", "dep", "topo"),
        ("issue", "ready"),
        ("export", "--format", "md"),
        ("lock", "status"),
        ("actor", "list"),
        ("doctor",),
        ("db", "stats"),
        ("sync",),
        ("issue", "ready", "--claim"),
    ]
    outputs = {}
    for args in commands:
        proc = v.run(*args)
        assert proc.returncode == 0, (args, proc.stderr)
        _check(proc.stdout, " ".join(args))
        _check(proc.stderr, " ".join(args) + " (stderr)")
        outputs[args] = proc.stdout

    show = outputs[("issue", "show", issue)]
    assert show.startswith(shown + "\n")  # the title: escaped, on its own line
    assert f"line one\n{shown}\nline three" in show  # body lines kept, controls escaped
    assert f"    {shown}\n    second line" in show  # a CRLF is a line break, not \r
    for field in (f"Labels: {shown}", f"Assignees: {shown}", f"  {shown}  ({shown})"):
        assert field in show, field
    assert f"  {shown}  {shown}  sha256:" in show  # attachment name and mime
    assert shown in outputs[("issue", "list")] and shown in outputs[("issue", "ready")]
    assert shown in outputs[("issue", "dep", "list", v.issues[1])]
    assert f"repo:{shown}" in outputs[("lock", "status")]
    assert printable(HOSTILE_ARG) in outputs[("actor", "list")]
    md = outputs[("export", "--format", "md")]
    assert "> line one\n> " in md  # the body is block-quoted
    assert "### T\\\\x1b\\[2J" in md  # Markdown markup in the title escaped too

    # JSON stays exact: the same bytes as were written.
    data = v.ok("issue", "show", issue)
    assert data["title"] == HOSTILE and data["labels"] == [HOSTILE]
    assert data["comments"][0]["body"] == f"{HOSTILE}\r\nsecond line"
    locks = v.ok("lock", "status")["locks"]
    assert {"owner": HOSTILE, "resource": f"repo:{HOSTILE}"} in [
        {"owner": x["owner"], "resource": x["resource"]} for x in locks
    ]


def test_error_messages_quoting_data_are_escaped(victim: Victim) -> None:
    proc = victim.run("issue", "show", HOSTILE[:8])
    assert proc.returncode == 2
    _check(proc.stderr, "error")
    assert "\\x1b" in proc.stderr
