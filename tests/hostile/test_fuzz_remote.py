"""A seeded fuzzer of the ingest gate: real WAL chunks and meta.jsons (written by grite's own
writer), mutated at random, committed to a real remote, then pulled by a victim clone.

Each case forges one commit on the remote's WAL and runs `grite sync --pull` in-process
(`run_invocation`, the code the daemon runs too); every 40th case goes through the real CLI
in a child process, in turn in-process (`--no-daemon`) and through the daemon. Whatever the mutation, the invariants of tests/hostile hold:
- the sync either refuses with a clean `corrupt` error naming the forged commit (or the remote,
  when the remote itself cannot be read) and leaves the victim's WAL where it was, or accepts a
  commit that every reader accepts (checked with the strict reader);
- no internal error, no crash, reads keep working afterwards (checked every 5th case);
- nothing is written outside the repositories.

Cases are split into batches (a fresh remote and victim each) so that fetched packs do not
pile up. GRITE_FUZZ_SEED picks the seed (default 20261201) and GRITE_FUZZ_CASES the cases per
batch (default 125: 16 batches, 2,000 cases); a failure names its seed, batch and case.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import time
from collections import Counter
from pathlib import Path
from typing import Any

import cbor2
import pytest

from grite.cli.app import run_invocation
from grite.model.chunk import chunk_hash, decode_chunk
from grite.model.events import (
    AssigneeAdded,
    AssigneeRemoved,
    AttachmentAdded,
    CommentAdded,
    ContextUpdated,
    DependencyAdded,
    DependencyRemoved,
    Event,
    EventKind,
    IssueCreated,
    IssueUpdated,
    LabelAdded,
    LabelRemoved,
    LinkAdded,
    ProjectContextUpdated,
    StateChanged,
    Symbol,
    kind_from_payload,
)
from grite.model.hashing import compute_event_id, make_event
from grite.model.invocation import Invocation
from grite.storage.wal import Wal
from tests.conftest import GRITE, git, make_repo, wal_head
from tests.hostile.conftest import bare, files_outside
from tests.wal_forge import HEADER, forge_commit, set_ref

SEED = int(os.environ.get("GRITE_FUZZ_SEED", "20261201"))
CASES_PER_BATCH = int(os.environ.get("GRITE_FUZZ_CASES", "125"))
BATCHES = 16
CLI_EVERY = 40
# Reads are checked after every few cases (and at the end of each batch).
LIST_EVERY = 5
# What the entry prints when a command did not run through the daemon (tests/conftest.py).
FALLBACK_MARK = "grite: daemon not used"
ACTOR = bytes(range(16))


def _kinds(rng: random.Random) -> list[EventKind]:
    target = rng.randbytes(16)
    return [
        IssueCreated(title="fuzz title", body="a body\nwith lines", labels=["bug", "p1"]),
        IssueUpdated(title="renamed", body=None),
        CommentAdded(body="a comment"),
        LabelAdded(label="triage"),
        LabelRemoved(label="bug"),
        StateChanged(state="closed"),
        LinkAdded(url="https://example.com/x", note="see"),
        AssigneeAdded(user="alice"),
        AssigneeRemoved(user="bob"),
        AttachmentAdded(name="log.txt", sha256=rng.randbytes(32), mime="text/plain"),
        DependencyAdded(target=target, dep_type="blocks"),
        DependencyRemoved(target=target, dep_type="related_to"),
        ContextUpdated(
            path="src/x.py",
            language="python",
            symbols=[Symbol(name="f", kind="function", line_start=1, line_end=3)],
            summary="1 function",
            content_hash=rng.randbytes(32),
        ),
        ProjectContextUpdated(key="build", value="make"),
    ]


def _templates(scratch: Path, rng: random.Random) -> list[tuple[bytes, bytes]]:
    """(chunk, meta.json) pairs exactly as grite's writer stores them."""
    make_repo(scratch)
    wal = Wal(str(scratch / ".git"))
    issue = rng.randbytes(16)
    now = time.time_ns() // 1_000_000
    kinds = _kinds(rng)
    batches: list[list[Event]] = [
        [make_event(issue_id=issue, actor=ACTOR, ts_unix_ms=now - 5000 + i, kind=k)]
        for i, k in enumerate(kinds)
    ]
    batches.append(
        [
            make_event(issue_id=issue, actor=ACTOR, ts_unix_ms=now - 100 + i, kind=k)
            for i, k in enumerate(kinds[:6])
        ]
    )
    batches.append(
        [
            make_event(
                issue_id=issue,
                actor=ACTOR,
                ts_unix_ms=now - 50,
                kind=CommentAdded(body="signed"),
                sig=rng.randbytes(64),
            )
        ]
    )
    pairs = []
    head = None
    try:
        for events in batches:
            head = wal.write_commit(ACTOR, events, head)
            listing = git(scratch, "ls-tree", "-r", head).stdout.split("\n")
            blobs = {line.split("\t")[1]: line.split()[2] for line in listing if line}
            chunk_path = next(p for p in blobs if p.endswith(".bin"))
            pairs.append((_blob(scratch, blobs[chunk_path]), _blob(scratch, blobs["meta.json"])))
    finally:
        wal.close()
    return pairs


def _blob(repo: Path, oid: str) -> bytes:
    return subprocess.run(
        ["git", "cat-file", "blob", oid], cwd=repo, capture_output=True, check=True
    ).stdout


# -- mutations --------------------------------------------------------------------------------


def _random_value(rng: random.Random, depth: int = 0) -> Any:
    choice = rng.randrange(16)
    if choice == 0:
        return rng.randrange(-(2**70), 2**70)
    if choice == 1:
        return rng.choice([0, 1, -1, 2**32, 2**63, 2**64 - 1, 253_402_300_800_000])
    if choice == 2:
        return rng.random() * 1e20
    if choice == 3:
        return rng.choice([True, False, None])
    if choice == 4:
        return rng.randbytes(rng.choice([0, 1, 15, 16, 17, 31, 32, 33, 63, 64, 65, 200]))
    if choice == 5:
        return "".join(chr(rng.randrange(0, 0x3000)) for _ in range(rng.randrange(0, 40)))
    if choice == 6:
        return "\x1b[2J\u202e" * rng.randrange(1, 5)
    if choice == 7 and depth < 3:
        return [_random_value(rng, depth + 1) for _ in range(rng.randrange(0, 5))]
    if choice == 8 and depth < 3:
        return {str(rng.randrange(9)): _random_value(rng, depth + 1) for _ in range(2)}
    if choice == 9:
        tag = rng.choice([0, 1, 2, 3, 25, 28, 29, 30, 37, 256, 258, 55799, rng.randrange(2**16)])
        return cbor2.CBORTag(tag, _random_value(rng, depth + 1) if depth < 3 else 0)
    if choice == 10:
        return "x" * rng.choice([4097, 1024 * 1024 + 1])
    if choice == 11:
        return [["n", "k", 1, 2]] * rng.choice([65_537, 3])
    if choice == 12:
        return ["label"] * rng.choice([1025, 2])
    if choice == 13:
        return [[[[[[[[["deep"]]]]]]]]]
    if choice == 14:
        return rng.choice(["open", "closed", "blocks", "depends_on", "related_to", ""])
    return rng.randrange(0, 20)


def _paths(node: Any, prefix: tuple[int, ...] = ()) -> list[tuple[int, ...]]:
    found = [prefix]
    if isinstance(node, list):
        for i, child in enumerate(node):
            found += _paths(child, (*prefix, i))
    return found


def _set(node: Any, path: tuple[int, ...], value: Any) -> Any:
    if not path:
        return value
    node[path[0]] = _set(node[path[0]], path[1:], value)
    return node


def _reid(records: Any) -> None:
    """Give mutated records their right event ids where their fields still parse, so that
    validation past the id check (ranges, timestamps, shape) is reached too."""
    if not isinstance(records, list):
        return
    for rec in records:
        try:
            kind = kind_from_payload(rec[5], rec[6])
            rec[0] = compute_event_id(rec[1], rec[2], rec[3], rec[4], kind)
        except Exception:  # the mutation broke a field: the id stays as it was
            continue


def _mutate_chunk(rng: random.Random, chunk: bytes) -> tuple[bytes, str]:
    kind = rng.randrange(10)
    data = bytearray(chunk)
    if kind == 0:
        for _ in range(rng.randrange(1, 6)):
            data[rng.randrange(len(data))] ^= 1 << rng.randrange(8)
        return bytes(data), "bit flips"
    if kind == 1:
        cut = rng.randrange(len(data))
        return bytes(data[:cut]), f"truncated at {cut}"
    if kind == 2:
        at = rng.randrange(len(data))
        return bytes(data[:at] + rng.randbytes(rng.randrange(1, 9)) + data[at:]), "inserted bytes"
    if kind == 3:
        at = rng.randrange(18, len(data))
        return bytes(data[:at] + bytes([rng.choice([0xD8, 0xD9, 0x9F, 0x5F, 0x7F, 0xBF, 0xFF, 0xFB])]) + data[at:]), "inserted a head byte"  # fmt: skip
    records = cbor2.loads(chunk[18:])
    path = rng.choice(_paths(records))
    records = _set(records, path, _random_value(rng))
    if kind <= 7:
        _reid(records)
    sharing = kind == 9
    try:
        body = cbor2.dumps(records, value_sharing=sharing, string_referencing=sharing)
    except Exception:  # a value cbor2 cannot write back: keep the raw bit flips instead
        return bytes(data), "unencodable mutation"
    return HEADER + body, f"value at {path}{' (shared refs)' if sharing else ''}"


def _benign(rng: random.Random, chunk: bytes) -> tuple[bytes, str]:
    if rng.random() < 0.5:
        return chunk, "unchanged"
    records = cbor2.loads(chunk[18:])
    for rec in records:
        payload = rec[6]
        for i, value in enumerate(payload):
            if isinstance(value, str) and value not in _ENUMS:
                payload[i] = "".join(chr(rng.randrange(0x20, 0x3000)) for _ in range(12))
    _reid(records)
    return HEADER + cbor2.dumps(records), "new text, ids recomputed"


_ENUMS = frozenset({"open", "closed", "blocks", "depends_on", "related_to"})


def _mutate_meta(rng: random.Random, meta: bytes, parent: str) -> tuple[bytes, str]:
    kind = rng.randrange(6)
    if kind == 0:
        data = bytearray(meta)
        data[rng.randrange(len(data))] = rng.randrange(256)
        return bytes(data), "byte"
    doc: Any = json.loads(meta)
    key = rng.choice(["schema_version", "actor_id", "chunk_hash", "prev_wal", "extra"])
    if kind == 1:
        doc.pop(key, None)
        return json.dumps(doc).encode(), f"dropped {key}"
    value = rng.choice(
        [
            None,
            0,
            2,
            -1,
            2**80,
            "",
            "..//dev/zero",
            "/dev/zero",
            parent.upper(),
            "0" * 40,
            "f" * 64,
            "A" * 32,
            [],
            {"nested": [[[[1]]]]},
            1.5,
            True,
        ]
    )
    doc[key] = value
    if kind == 5:
        doc = {"outer": doc, "x": "[" * 10}
    return json.dumps(doc).encode(), f"{key} = {value!r}"[:80]


# -- the run ----------------------------------------------------------------------------------


def _sync_in_process(victim: Path, env: dict[str, str]) -> tuple[int, dict[str, Any]]:
    out = run_invocation(
        Invocation(
            argv=["sync", "--pull", "--json"],
            cwd=str(victim),
            env=env,
            request_id=os.urandom(16),
            now_ms=time.time_ns() // 1_000_000,
        )
    )
    assert "Traceback" not in out.stderr, out.stderr
    return out.exit_code, json.loads(out.stdout)


def _sync_cli(victim: Path, env: dict[str, str], daemon: bool) -> tuple[int, dict[str, Any]]:
    """The real CLI in a child process: in-process (--no-daemon) or through the daemon."""
    if daemon:
        env = {k: v for k, v in env.items() if k != "GRITE_NO_DAEMON"}
        env["GRITE_DEBUG"] = "1"
    proc = subprocess.run(
        [*GRITE, "sync", "--pull", "--json"],
        cwd=victim,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert "Traceback" not in proc.stderr, proc.stderr
    if daemon:
        assert FALLBACK_MARK not in proc.stderr, proc.stderr
    return proc.returncode, json.loads(proc.stdout)


def _list_works(victim: Path, env: dict[str, str]) -> None:
    out = run_invocation(
        Invocation(
            argv=["issue", "list", "--json"],
            cwd=str(victim),
            env=env,
            request_id=os.urandom(16),
            now_ms=time.time_ns() // 1_000_000,
        )
    )
    assert out.exit_code == 0, out


@pytest.mark.parametrize("batch", range(BATCHES))
def test_mutated_remote_commits_never_get_past_the_gate(
    batch: int, tmp_path: Path, isolated_env: dict[str, str]
) -> None:
    rng = random.Random(SEED * 1000 + batch)
    env = {**isolated_env, "GRITE_NO_DAEMON": "1"}
    templates = _templates(tmp_path / "scratch", rng)
    remote = bare(tmp_path / "remote.git")
    victim = make_repo(tmp_path / "victim")
    git(victim, "remote", "add", "origin", str(remote))
    # A shared history to start from: the first template, on both sides.
    base = forge_commit(remote, chunk=templates[0][0], meta=templates[0][1], parents=[])
    set_ref(remote, base)
    code, doc = _sync_in_process(victim, env)
    assert code == 0 and wal_head(victim) == base, doc
    before = files_outside(tmp_path, victim, remote, tmp_path / "scratch", tmp_path / "home")

    outcomes: Counter[str] = Counter()
    for case in range(CASES_PER_BATCH):
        where = f"seed {SEED}, batch {batch}, case {case}"
        chunk, meta = rng.choice(templates)
        meta_doc = json.loads(meta)
        meta_doc["prev_wal"] = base
        meta = json.dumps(meta_doc, indent=2).encode()
        what = rng.random()
        forge: dict[str, Any] = {"parents": [base]}
        if what < 0.05:
            # Benign: a real commit, or one whose text changed and ids were recomputed. These
            # must get through (and then read back through the strict reader).
            chunk, desc = _benign(rng, chunk)
            meta_doc["chunk_hash"] = chunk_hash(chunk)
            meta = json.dumps(meta_doc, indent=2).encode()
        elif what < 0.65:
            chunk, desc = _mutate_chunk(rng, chunk)
            meta_doc["chunk_hash"] = chunk_hash(chunk)  # right hash: the content is tested
            meta = json.dumps(meta_doc, indent=2).encode()
        elif what < 0.9:
            meta, desc = _mutate_meta(rng, meta, base)
        else:
            shape = rng.randrange(5)
            desc = ["no parent", "two parents", "commit time 0", "year 9999", "wrong name"][shape]
            if shape == 0:
                forge["parents"] = []
            elif shape == 1:
                forge["parents"] = [base, base]
            elif shape == 2:
                forge["commit_time"] = 0
            elif shape == 3:
                forge["commit_time"] = 253_402_300_000
            else:
                forge["chunk_name"] = "0" * 64 + ".bin"
        bad = forge_commit(remote, chunk=chunk, meta=meta, **forge)
        set_ref(remote, bad)
        if case % CLI_EVERY == 0:
            code, doc = _sync_cli(victim, env, daemon=(case // CLI_EVERY) % 2 == 1)
        else:
            code, doc = _sync_in_process(victim, env)
        if code == 0:
            # Accepted: then every reader accepts it too.
            assert wal_head(victim) == bad, (where, desc, doc)
            wal = Wal(str(victim / ".git"))
            try:
                wal.read_commit(bad)
            finally:
                wal.close()
            outcomes["accepted"] += 1
            set_ref(victim, base)  # back to the shared history for the next case
        else:
            assert code == 5, (where, desc, doc)
            error = doc["error"]
            assert error["code"] == "corrupt", (where, desc, error)
            named = bad in error["message"] or "cannot read" in error["message"]
            assert named and "'origin'" in error["message"], (where, desc, error)
            assert wal_head(victim) == base, (where, desc)
            outcomes[_reason(error["message"])] += 1
        if case % LIST_EVERY == 0:
            _list_works(victim, env)
        set_ref(remote, base)

    _list_works(victim, env)
    assert sum(outcomes.values()) == CASES_PER_BATCH
    # The fuzzer reaches past the decoder: refusals for several reasons, and some acceptances.
    assert len(outcomes) >= 5 and outcomes["accepted"] > 0, outcomes
    after = files_outside(tmp_path, victim, remote, tmp_path / "scratch", tmp_path / "home")
    assert after == before


def _reason(message: str) -> str:
    for marker in (
        "CBOR tag",
        "CBOR does not decode",
        "event_id mismatch",
        "ts_unix_ms",
        "characters, more than",
        "entries, more than",
        "meta.json",
        "prev_wal",
        "fails its hash",
        "parents",
        "must be",
        "expects",
        "expected",
        "cannot read",
        "not where a chunk belongs",
    ):
        if marker in message:
            return marker
    return "other"


def test_the_templates_are_what_grite_writes(tmp_path: Path) -> None:
    """The fuzzer starts from real data: every template decodes and names its chunk."""
    for chunk, meta in _templates(tmp_path / "scratch", random.Random(SEED)):
        assert decode_chunk(chunk)
        assert json.loads(meta)["chunk_hash"] == chunk_hash(chunk)
