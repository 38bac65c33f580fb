"""`--json` payloads are supersets of grite 0.5.3's: for every command both have, every key
0.5.3 prints is in our `data`, with the same JSON type. The table is taken from 0.5.3's source
(https://github.com/neul-labs/grite): the local path's payloads (crates/grite/src/commands/*.rs)
and, where its daemon path prints other keys, those too (crates/grite-daemon/src/worker.rs),
so a script written against either works. Runs through our daemon and in-process.

Keys of 0.5.3 that we do not print, and why, are listed in NOT_MATCHED (and in grite(1)).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from tests.conftest import Grite, git, make_repo

S, I, B, L, D, N = "str", "int", "bool", "list", "dict", "null"  # noqa: E741
_JSON_TYPES = {S: str, I: int, B: bool, L: list, D: dict, N: type(None)}

SUMMARY = {"issue_id": S, "title": S, "state": S, "labels": L, "assignees": L, "created_ts": I,
           "updated_ts": I, "comment_count": I}  # fmt: skip
WRITE = {"issue_id": S, "event_id": S, "wal_head": S + "|" + N}
PROJECTION = {"issue_id": S, "title": S, "body": S, "state": S, "labels": L, "assignees": L,
              "comments": L, "links": L, "attachments": L, "dependencies": L, "created_ts": I,
              "updated_ts": I}  # fmt: skip

# command -> {key: type}; "a|b" allows either; nested tables are checked on their first item.
TABLE: dict[str, dict[str, Any]] = {
    "init": {
        "actor_id": S,
        "data_dir": S,
        "repo_config": S,
        "action": S,
        "agents_md_action": S,
        "agents_md_path": S,
    },  # fmt: skip
    "actor init": {"actor_id": S, "label": S, "data_dir": S},
    "actor list": {"actors": [{"actor_id": S, "label": S + "|" + N, "data_dir": S}]},
    "actor show": {"actor": {"actor_id": S, "label": S + "|" + N, "created_ts": I}},
    "actor current": {"actor_id": S, "data_dir": S, "source": S},
    "actor use": {"default_actor": S, "repo_config": S},
    # local {issue_id, event_id, wal_head}; daemon: the projection + event_id + action
    "issue create": {**WRITE, **PROJECTION, "action": S},
    "issue list": {"issues": [SUMMARY], "total": I},
    # local {issue, events}; daemon: the projection (dependencies as {target, dep_type})
    "issue show": {
        "issue": SUMMARY,
        "events": [
            {
                "event_id": S,
                "issue_id": S,
                "actor": S,
                "ts_unix_ms": I,
                "parent": S + "|" + N,
                "kind": D,
            }
        ],  # fmt: skip
        **PROJECTION,
        "comments": [{"event_id": S, "actor": S, "ts_unix_ms": I, "body": S}],
        "links": [{"event_id": S, "url": S, "note": S + "|" + N}],
        "attachments": [{"event_id": S, "name": S, "sha256": S, "mime": S}],
        "dependencies": [{"target": S, "dep_type": S}],
    },
    "issue update": WRITE,
    "issue comment": WRITE,
    "issue label add": {**WRITE, "event_ids": L},
    "issue label remove": {**WRITE, "event_ids": L},
    "issue assignee add": {**WRITE, "event_ids": L},
    "issue assignee remove": {**WRITE, "event_ids": L},
    "issue link add": WRITE,
    "issue attachment add": WRITE,
    "issue close": {**WRITE, "state": S, "action": S},
    "issue reopen": {**WRITE, "state": S, "action": S},
    "issue dep add": {"event_id": S, "issue_id": S, "target": S, "dep_type": S, "action": S},
    "issue dep remove": {"event_id": S, "issue_id": S, "target": S, "dep_type": S, "action": S},
    "issue dep list": {
        "issue_id": S,
        "direction": S,
        "deps": [{"issue_id": S, "dep_type": S, "title": S}],
    },  # fmt: skip
    "issue dep topo": {
        "issues": [{"issue_id": S, "title": S, "state": S, "labels": L}],
        "order": S,
    },  # fmt: skip
    "db stats": {
        "path": S,
        "size_bytes": I,
        "event_count": I,
        "issue_count": I,
        "last_rebuild_ts": I + "|" + N,
        "events_since_rebuild": I,
        "days_since_rebuild": I + "|" + N,
        "rebuild_recommended": B,
    },  # fmt: skip
    "export": {"format": S, "output_path": S, "wal_head": S + "|" + N, "event_count": I},
    "rebuild": {
        "wal_head": S + "|" + N,
        "event_count": I,
        "issue_count": I,
        "from_snapshot": S + "|" + N,
        "snapshot_events": I + "|" + N,
    },  # fmt: skip
    "snapshot create": {"oid": S, "event_count": I, "wal_head": S},
    "snapshot list": {"snapshots": [{"oid": S, "timestamp": I, "ref_name": S}], "total": I},
    "snapshot gc": {"deleted": I, "kept": I},
    "sync": {
        "pulled": B,
        "pushed": B,
        "pull_events": I,
        "pull_wal_head": S + "|" + N,
        "push_success": B,
        "push_rebased": B,
        "push_events_rebased": I,
        "message": S,
        "success": B,
        "events": I,
        "wal_head": S + "|" + N,
        "rebased": B,
        "events_rebased": I,
        "backfilled": I,
    },  # fmt: skip
    "lock acquire": {
        "resource": S,
        "owner": S,
        "nonce": S,
        "expires_unix_ms": I,
        "ttl_seconds": I,
    },  # fmt: skip
    "lock renew": {"resource": S, "owner": S, "expires_unix_ms": I, "ttl_seconds": I},
    "lock status": {
        "locks": [
            {
                "resource": S,
                "owner": S,
                "expires_unix_ms": I,
                "time_remaining_seconds": I,
                "expired": B,
            }
        ],
        "total": I,
    },  # fmt: skip
    "lock release": {"resource": S, "released": B},
    "lock gc": {"removed": I, "kept": I},
    "doctor": {"checks": [{"id": S, "status": S, "message": S}], "applied": L},
    "context index": {"indexed": I, "skipped": I, "total_files": I},
    "context query": {"query": S, "matches": [{"symbol": S, "path": S}], "count": I},
    "context show": {
        "path": S,
        "language": S,
        "summary": S,
        "content_hash": S,
        "symbols": [{"name": S, "kind": S, "line_start": I, "line_end": I}],
        "symbol_count": I,
    },  # fmt: skip
    "context project KEY": {"key": S, "value": S},
    "context project": {"entries": [{"key": S, "value": S}], "count": I},
    "context set": {"key": S, "value": S, "action": S},
}

# 0.5.3 keys we do not print, with the reason (also in grite(1), COMPATIBILITY).
NOT_MATCHED = {
    # `daemon start|status|stop` print 0.5.3's daemon.lock fields, unenveloped; ours describe
    # our daemon (socket activation, one per user) in the envelope.
    "daemon status": "different daemon design",
    # `db check` and `db verify` do not exist here: `grite doctor` runs both checks.
    "db check": "use grite doctor",
    "db verify": "use grite doctor",
}


def _check(command: str, spec: dict[str, Any], data: dict[str, Any]) -> list[str]:
    problems = []
    for key, want in spec.items():
        if key not in data:
            problems.append(f"{command}: missing {key!r}")
            continue
        value = data[key]
        if isinstance(want, dict):
            problems += (
                _check(f"{command}.{key}", want, value)
                if isinstance(value, dict)
                else [f"{command}: {key!r} is not an object"]
            )
        elif isinstance(want, list):
            if not isinstance(value, list) or not value:
                problems.append(f"{command}: {key!r} should be a non-empty list here")
            else:
                problems += _check(f"{command}.{key}[0]", want[0], value[0])
        else:
            types = tuple(_JSON_TYPES[t] for t in want.split("|"))
            ok = isinstance(value, types) and not (isinstance(value, bool) and bool not in types)
            if not ok:
                problems.append(f"{command}: {key!r} is {type(value).__name__}, want {want}")
    return problems


def test_every_0_5_3_key_is_in_our_payloads(grite: Grite, tmp_path: Path) -> None:
    remote = tmp_path / "remote.git"
    git(tmp_path, "init", "-q", "--bare", str(remote))
    repo = make_repo(tmp_path / "repo")
    git(repo, "remote", "add", "origin", str(remote))
    (repo / "m.py").write_text("class Model:\n    def save(self):\n        pass\n")
    git(repo, "add", "-A")
    seen: dict[str, dict[str, Any]] = {}

    def run(name: str, *argv: str) -> dict[str, Any]:
        seen[name] = grite.json(repo, *argv)
        return seen[name]

    run("init", "init")
    other = run("actor init", "actor", "init", "--label", "bot")["actor_id"]
    run("actor list", "actor", "list")
    run("actor show", "actor", "show")
    run("actor current", "actor", "current")
    me = seen["actor current"]["actor_id"]
    run("actor use", "actor", "use", me)
    a = run("issue create", "issue", "create", "--title", "A", "--body", "b", "--label", "x")
    a_id = a["issue_id"]
    b_id = grite.json(repo, "issue", "create", "--title", "B")["issue_id"]
    run("issue update", "issue", "update", a_id, "--title", "A2")
    run("issue comment", "issue", "comment", a_id, "--body", "c")
    run("issue label add", "issue", "label", "add", a_id, "--label", "y")
    run("issue label remove", "issue", "label", "remove", a_id, "--label", "y")
    run("issue assignee add", "issue", "assignee", "add", a_id, "--user", "ann")
    run("issue assignee remove", "issue", "assignee", "remove", a_id, "--user", "ann")
    run("issue link add", "issue", "link", "add", a_id, "--url", "https://e.com", "--note", "n")
    sha = hashlib.sha256(b"f").hexdigest()
    run("issue attachment add", "issue", "attachment", "add", a_id, "--name", "f",
        "--sha256", sha, "--mime", "text/plain")  # fmt: skip
    run("issue dep add", "issue", "dep", "add", a_id, "--target", b_id)
    run("issue dep list", "issue", "dep", "list", a_id)
    run("issue dep topo", "issue", "dep", "topo")
    run("issue show", "issue", "show", a_id)
    run("issue list", "issue", "list")
    run("issue dep remove", "issue", "dep", "remove", a_id, "--target", b_id)
    run("issue close", "issue", "close", b_id)
    run("issue reopen", "issue", "reopen", b_id)
    run("context index", "context", "index")
    run("context query", "context", "query", "Mo")
    run("context show", "context", "show", "m.py")
    run("context set", "context", "set", "build", "make")
    run("context project KEY", "context", "project", "build")
    run("context project", "context", "project")
    run("lock acquire", "lock", "acquire", "path:src/")
    run("lock renew", "lock", "renew", "path:src/")
    run("lock status", "lock", "status")
    run("lock release", "lock", "release", "path:src/")
    run("lock gc", "lock", "gc")
    run("snapshot create", "snapshot", "create")
    run("snapshot list", "snapshot", "list")
    run("snapshot gc", "snapshot", "gc", "--keep", "5")
    run("export", "export", "--format", "json", "-o", str(tmp_path / "export.json"))
    run("rebuild", "rebuild")
    run("db stats", "db", "stats")
    run("doctor", "doctor")
    run("sync", "sync")
    problems = [p for name, spec in TABLE.items() for p in _check(name, spec, seen[name])]
    assert problems == []
    assert set(TABLE) == set(seen)
    # The values mean the same: a few spot checks of meaning, not only of type.
    assert seen["issue create"]["event_id"] == seen["issue create"]["event_ids"][0]
    assert seen["issue show"]["issue"]["comment_count"] == 1
    assert seen["issue show"]["dependencies"][0]["target"] == b_id
    assert seen["issue show"]["events"][0]["kind"] == {
        "IssueCreated": {"title": "A", "body": "b", "labels": ["x"]}
    }
    attached = next(e for e in seen["issue show"]["events"] if "AttachmentAdded" in e["kind"])
    assert attached["kind"]["AttachmentAdded"]["sha256"] == list(bytes.fromhex(sha))
    assert seen["actor show"]["actor"]["actor_id"] == me and other != me
    assert seen["issue list"]["total"] == len(seen["issue list"]["issues"])
    assert json.loads((tmp_path / "export.json").read_text())["meta"]["schema_version"] == 1
