"""Attack 10: forged requests over the daemon's real socket.

Any process of the user can connect to the daemon and send a request no `grite` client would
make: a negative clock (written as an event the reader then refuses: the repository would take
no writes afterwards), an empty request id on two creates (the same issue id twice: the second
overwrites the first), a NUL byte in the cwd (an internal error). The daemon checks every field
first (grite.daemon.validation) and answers `bad_request` naming it; nothing is written, and the
daemon keeps serving.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from grite.ipc import protocol
from grite.ipc.paths import runtime_paths
from grite.model.invocation import Invocation
from tests.conftest import Grite, TypedConnection, assert_fsck_clean, make_repo, wal_head


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def create(repo: Path, *, rid: bytes, **override: object) -> Invocation:
    fields: dict[str, object] = {
        "argv": ["issue", "create", "--title", "forged", "--json"],
        "cwd": str(repo),
        "env": {},
        "request_id": rid,
        "now_ms": now_ms(),
    }
    fields.update(override)
    return Invocation(**fields)  # type: ignore[arg-type]


def send(sock: str, inv: Invocation, *, rid: bytes, actor: str = "") -> protocol.Error:
    with TypedConnection.open(sock) as conn:
        reply = conn.request(protocol.RunArgv(invocation=inv), request_id=rid, actor=actor)
    assert isinstance(reply, protocol.Error), reply
    return reply


RID = b"\x01" * 16
# (case, the forged invocation, the request id of the envelope, actor, what the error names)
CASES: list[tuple[str, Callable[[Path], Invocation], bytes, str, str]] = [
    ("negative now_ms", lambda r: create(r, rid=RID, now_ms=-1), RID, "", "now_ms"),
    ("now_ms far ahead", lambda r: create(r, rid=RID, now_ms=now_ms() + 10**12), RID, "", "now_ms"),
    ("empty request id", lambda r: create(r, rid=b""), b"", "", "request_id"),
    ("short request id", lambda r: create(r, rid=b"x"), b"x", "", "request_id"),
    ("NUL in cwd", lambda r: create(r, rid=RID, cwd=f"{r}\0/x"), RID, "", "NUL"),
    ("relative cwd", lambda r: create(r, rid=RID, cwd="victim"), RID, "", "absolute"),
    ("missing cwd", lambda r: create(r, rid=RID, cwd=f"{r}/gone"), RID, "", "cwd"),
    ("NUL in argv", lambda r: create(r, rid=RID, argv=["issue", "create", "--title", "a\0b"]),
     RID, "", "NUL"),
    ("bad env name", lambda r: create(r, rid=RID, env={"A=B": "x"}), RID, "", "env"),
    ("huge env", lambda r: create(r, rid=RID, env={f"V{i}": "x" for i in range(300)}), RID, "",
     "env"),
    ("zero columns", lambda r: create(r, rid=RID, columns=0), RID, "", "columns"),
    ("bad actor", lambda r: create(r, rid=RID), RID, "../../etc", "actor"),
]  # fmt: skip


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_a_forged_request_is_refused_naming_the_field_and_writes_nothing(
    isolated_env: dict[str, str],
    tmp_path: Path,
    case: tuple[str, Callable[..., Invocation], bytes, str, str],
) -> None:
    _name, forge, rid, actor, names = case
    grite = Grite(isolated_env, "daemon")
    repo = make_repo(tmp_path / "victim")
    first = grite.json(repo, "issue", "create", "--title", "kept")["issue_id"]
    head = wal_head(repo)
    sock = runtime_paths(isolated_env).socket

    error = send(sock, forge(repo), rid=rid, actor=actor)

    assert error.code == "bad_request", error
    assert names in error.message and "malformed request" in error.message, error.message
    assert wal_head(repo) == head  # nothing written
    # The daemon still serves, and the repository still takes writes.
    with TypedConnection.open(sock) as conn:
        assert isinstance(conn.request(protocol.Ping()), protocol.Result)
    titles = [i["title"] for i in grite.json(repo, "issue", "list")["issues"]]
    assert titles == ["kept"]
    grite.json(repo, "issue", "create", "--title", "after")
    assert grite.json(repo, "issue", "show", first)["title"] == "kept"
    assert_fsck_clean(repo)


def test_the_same_request_id_twice_cannot_overwrite_an_issue(
    isolated_env: dict[str, str], tmp_path: Path
) -> None:
    """Two forged creates with one valid request id are one write, applied once (the retry
    rule), never two issues with one id; with an empty id both are refused."""
    grite = Grite(isolated_env, "daemon")
    repo = make_repo(tmp_path / "victim")
    grite.json(repo, "issue", "create", "--title", "kept")
    sock = runtime_paths(isolated_env).socket
    for _ in range(2):
        assert send(sock, create(repo, rid=b""), rid=b"").code == "bad_request"
    rid = os.urandom(16)
    with TypedConnection.open(sock) as conn:
        for title in ("one", "two"):
            inv = create(repo, rid=rid, argv=["issue", "create", "--title", title, "--json"])
            reply = conn.request(protocol.RunArgv(invocation=inv), request_id=rid)
            assert isinstance(reply, protocol.Result), reply
    issues = grite.json(repo, "issue", "list")["issues"]
    assert len({i["issue_id"] for i in issues}) == len(issues)
    assert sorted(i["title"] for i in issues)[0] == "kept"
    assert len(issues) <= 3
