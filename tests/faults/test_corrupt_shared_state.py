"""Scenario 4: damaged WAL data (shared through git, so it can arrive from anywhere).

What the user gets, decided here and implemented in Wal.read_good_entries / RepoHandle:
- damage is what may still be repaired: a missing object, an object that no longer matches its
  git id (a local disk fault); a commit whose own bytes break the format (a wrong event id, a
  field out of range) is not damage but an invalid commit, skipped by every reader
  (test_an_invalid_commit_is_skipped_by_every_reader_and_bricks_nothing);
- the strict reader (doctor, sync, export) refuses the damage with CorruptData naming the commit;
- `grite doctor` reports the commit (exit 0 as a report; its `wal` check is not ok);
- reads keep answering from the history BEFORE the oldest damaged commit (commits after it are
  held back, not skipped, so a repaired commit is picked up later), with a warning on stderr
  naming the commit: the good data stays readable, in a fresh clone's rebuild as well;
- writes are refused (exit 5, JSON code `corrupt`, the commit named): appending on top of
  damage would hide the new write from every reader.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import zlib
from collections.abc import Callable
from pathlib import Path

import msgspec
import pytest

from grite.model.errors import CorruptData
from grite.model.events import Event, IssueCreated
from grite.model.hashing import make_event
from grite.storage.wal import InvalidWalCommit, Wal
from tests.faults.conftest import STRICT, FaultEnv, assert_served, git, init_repo
from tests.wal_forge import forge_commit, set_ref

ACTOR = b"\x07" * 16


def _new_issue(title: str, n: int) -> Event:
    return make_event(
        issue_id=bytes([n]) * 16,
        actor=ACTOR,
        ts_unix_ms=1_790_000_000_000 + n,
        kind=IssueCreated(title=title, body="", labels=[]),
    )


def _append(repo: Path, events: list[Event]) -> str:
    wal = Wal(str(repo / ".git"))
    try:
        head = wal.head()
        commit = wal.write_commit(ACTOR, events, head)
        assert wal.compare_and_set(head, commit)
        return commit
    finally:
        wal.close()


def _object_path(repo: Path, oid: str) -> Path:
    return repo / ".git" / "objects" / oid[:2] / oid[2:]


def _chunk_oid(repo: Path, commit: str) -> str:
    listing = git(repo, "ls-tree", "-r", commit).stdout.split("\n")
    line = next(x for x in listing if x.endswith(".bin"))
    return line.split()[2]


def _tamper_chunk(repo: Path, commit: str) -> None:
    oid = _chunk_oid(repo, commit)
    path = _object_path(repo, oid)
    raw = bytearray(zlib.decompress(path.read_bytes()))
    raw[-3] ^= 0x55  # inside the CBOR of the last event
    path.chmod(0o644)
    path.write_bytes(zlib.compress(bytes(raw)))


def _drop_chunk(repo: Path, commit: str) -> None:
    path = _object_path(repo, _chunk_oid(repo, commit))
    path.rename(repo.parent / "missing-object")  # kept to repair it later, as a fetch would


Damage = Callable[[Path], str]


def _tampered(repo: Path) -> str:
    bad = _append(repo, [_new_issue("damaged", 2)])
    _tamper_chunk(repo, bad)
    return bad


def _wrong_event_id(repo: Path) -> str:
    # Re-encoded with another event id: chunk name and meta hash match, only the id check fails.
    event = msgspec.structs.replace(_new_issue("forged", 2), event_id=b"\x11" * 32)
    bad = forge_commit(repo, events=[event])
    set_ref(repo, bad)
    return bad


def _missing_blob(repo: Path) -> str:
    bad = _append(repo, [_new_issue("lost", 2)])
    _drop_chunk(repo, bad)
    return bad


def _ref_to_blob(repo: Path) -> str:
    blob = git(repo, "hash-object", "-w", "--stdin", check=True).stdout.strip()
    (repo / ".git" / "refs" / "grite" / "wal").write_text(blob + "\n")
    return blob


CASES: dict[str, Damage] = {
    "tampered-chunk": _tampered,
    "missing-blob": _missing_blob,
    "ref-to-blob": _ref_to_blob,
}


def _run(fenv: FaultEnv, repo: Path, mode: str, *args: str) -> tuple[int, dict, str]:  # type: ignore[type-arg]
    env = dict(fenv.env, GRITE_NO_DAEMON="1") if mode == "local" else dict(fenv.env, **STRICT)
    proc = fenv.run(repo, *args, "--json", env=env)
    assert_served(proc)
    return proc.returncode, json.loads(proc.stdout), proc.stderr


@pytest.mark.parametrize("mode", ["local", "daemon"])
@pytest.mark.parametrize("case", sorted(CASES))
def test_damaged_wal_is_refused_reported_and_good_data_stays_readable(
    fault_env: FaultEnv, tmp_path: Path, case: str, mode: str
) -> None:
    repo = init_repo(fault_env)
    good = fault_env.local(repo, "issue", "create", "--title", "good")["issue_id"]
    fault_env.local(repo, "issue", "comment", good, "--body", "still here")
    bad = CASES[case](repo)
    if case != "ref-to-blob":
        _append(repo, [_new_issue("after the damage", 3)])  # held back behind the bad commit

    # The strict reader refuses it, naming the commit.
    wal = Wal(str(repo / ".git"))
    try:
        with pytest.raises(CorruptData) as caught:
            wal.read_entries()
    finally:
        wal.close()
    assert bad in caught.value.message and caught.value.details["commit"] == bad

    # Writes are refused with the commit named.
    code, doc, _ = _run(fault_env, repo, mode, "issue", "create", "--title", "new")
    assert code == 5, doc
    assert doc["error"]["code"] == "corrupt" and bad in doc["error"]["message"], doc

    # Reads answer from the good history, with a warning naming the commit.
    code, doc, err = _run(fault_env, repo, mode, "issue", "list", "--state", "all")
    assert code == 0, doc
    assert sorted(i["title"] for i in doc["data"]["issues"]) == ["good"]
    code, shown, _ = _run(fault_env, repo, mode, "issue", "show", good)
    assert code == 0 and shown["data"]["comments"][0]["body"] == "still here"
    assert "warning:" in err and bad in err, err

    # A rebuild from nothing (a fresh clone, a deleted view) gives the same answer, except
    # when the ref itself is not a commit: then no history at all is reachable from it.
    expected = [] if case == "ref-to-blob" else ["good"]
    copy = tmp_path / "copy"
    shutil.copytree(repo, copy)
    shutil.rmtree(copy / ".git" / "grite" / "view")
    code, doc, _ = _run(fault_env, copy, "local", "issue", "list", "--state", "all")
    assert code == 0 and sorted(i["title"] for i in doc["data"]["issues"]) == expected

    # grite doctor reports the damaged commit.
    proc = fault_env.run(repo, "--no-daemon", "doctor", "--json")
    report = json.loads(proc.stdout)
    assert bad in proc.stdout, report
    if report.get("ok"):
        checks = {c["id"]: c for c in report["data"]["checks"]}
        assert checks["wal"]["status"] != "ok", checks["wal"]

    if case == "missing-blob":
        # Repaired (the object comes back, e.g. fetched again): the held-back commits appear,
        # without the ref moving.
        path = _object_path(repo, _chunk_oid_from_backup(repo))
        path.parent.mkdir(exist_ok=True)
        (repo.parent / "missing-object").rename(path)
        code, doc, err = _run(fault_env, repo, mode, "issue", "list", "--state", "all")
        assert code == 0 and "warning:" not in err, err
        titles = sorted(i["title"] for i in doc["data"]["issues"])
        assert titles == ["after the damage", "good", "lost"], titles
        code, shown, _ = _run(fault_env, repo, mode, "issue", "show", (bytes([2]) * 16).hex())
        assert code == 0 and shown["data"]["title"] == "lost", shown


@pytest.mark.parametrize("mode", ["local", "daemon"])
def test_an_invalid_commit_is_skipped_by_every_reader_and_bricks_nothing(
    fault_env: FaultEnv, tmp_path: Path, mode: str
) -> None:
    """A commit whose own bytes break the format (here an event whose id does not match its
    content, the chunk and meta hashes being right) reads the same on every clone forever: it
    is skipped, everything before and after it is used, writes go on, and every command and
    doctor name it."""
    repo = init_repo(fault_env)
    good = fault_env.local(repo, "issue", "create", "--title", "good")["issue_id"]
    bad = _wrong_event_id(repo)
    _append(repo, [_new_issue("after the bad commit", 3)])

    wal = Wal(str(repo / ".git"))
    try:
        with pytest.raises(InvalidWalCommit) as caught:
            wal.read_commit(bad)
        titles = [e.kind.title for entry in wal.read_entries() for e in entry.events]  # type: ignore[union-attr]
    finally:
        wal.close()
    assert caught.value.details["commit"] == bad and "event_id mismatch" in caught.value.message
    assert titles == ["good", "after the bad commit"]

    code, doc, _ = _run(fault_env, repo, mode, "issue", "create", "--title", "new")
    assert code == 0, doc
    code, doc, err = _run(fault_env, repo, mode, "issue", "list", "--state", "all")
    assert code == 0, doc
    assert sorted(i["title"] for i in doc["data"]["issues"]) == [
        "after the bad commit",
        "good",
        "new",
    ]
    assert "warning:" in err and bad in err and "ignored" in err, err
    code, shown, _ = _run(fault_env, repo, mode, "issue", "show", good)
    assert code == 0 and shown["data"]["title"] == "good"

    copy = tmp_path / "copy"
    shutil.copytree(repo, copy)
    shutil.rmtree(copy / ".git" / "grite" / "view")
    code, doc, err = _run(fault_env, copy, "local", "issue", "list", "--state", "all")
    assert code == 0 and len(doc["data"]["issues"]) == 3 and bad in err

    proc = fault_env.run(repo, "--no-daemon", "doctor", "--json")
    report = json.loads(proc.stdout)
    assert proc.returncode == 0, report
    checks = {c["id"]: c for c in report["data"]["checks"]}
    assert checks["wal"]["status"] == "warn" and bad in checks["wal"]["message"], checks
    assert checks["view"]["status"] == "ok", checks


def _chunk_oid_from_backup(repo: Path) -> str:
    # A loose object's name is the SHA-1 of its decompressed bytes (header included).
    return hashlib.sha1(zlib.decompress((repo.parent / "missing-object").read_bytes())).hexdigest()
