"""Attack 4: a 1.6 MB chunk whose 200,000 labels are CBOR shared references (tags 28/29) to one
1 MB string: computing the event id serialised ~200 GB and the process (the daemon, then the
in-process fallback) aborted before the id was ever checked.

Now no CBOR tag is part of the chunk format: the chunk is refused at the first tag, before any
hashing, in a few milliseconds and constant memory; the daemon keeps serving.
"""

from __future__ import annotations

import os

import cbor2

from tests.conftest import wal_head
from tests.hostile.conftest import Victim
from tests.wal_forge import HEADER, forge_commit, set_ref

COPIES = 200_000
SIZE = 1024 * 1024


def _bomb() -> bytes:
    labels = (
        b"\x9a"
        + COPIES.to_bytes(4, "big")
        + cbor2.dumps(cbor2.CBORTag(28, "x" * SIZE))
        + cbor2.dumps(cbor2.CBORTag(29, 0)) * (COPIES - 1)
    )
    head = cbor2.dumps([os.urandom(32), os.urandom(16), os.urandom(16), 1_700_000_000_000, None, 1])
    record = b"\x88" + head[1:] + b"\x83" + cbor2.dumps("t") + cbor2.dumps("b") + labels + b"\xf6"
    chunk = HEADER + b"\x81" + record
    assert 1_500_000 < len(chunk) < 1_700_000
    return chunk


def test_a_shared_reference_bomb_is_refused_before_hashing(victim: Victim) -> None:
    v = victim
    head, titles = wal_head(v.repo), v.titles()
    bomb = _bomb()
    bad = v.forge_on_remote(chunk=bomb)

    error = v.refused("sync")  # daemon mode: served by the daemon, which survives it
    assert f"WAL commit {bad} is invalid" in error["message"]
    assert "CBOR tag 28 is not part of the chunk format" in error["message"]
    assert wal_head(v.repo) == head
    v.assert_unharmed(head, titles)

    # Already stored: every reader skips it the same way.
    stored = forge_commit(v.repo, chunk=bomb)
    set_ref(v.repo, stored)
    proc = v.run("issue", "list", "--state", "all", "--json")
    assert proc.returncode == 0 and f"WAL commit {stored} is invalid" in proc.stderr
    v.ok("rebuild")
    report = v.ok("doctor")
    assert stored in next(c for c in report["checks"] if c["id"] == "wal")["message"]


def test_an_oversized_chunk_is_refused_by_its_size_alone(victim: Victim) -> None:
    """A chunk over 16 MiB (here 20 MB of zeros, a few kB compressed) is refused from the size
    in its object header, before it is inflated, hashed or decoded."""
    v = victim
    head, titles = wal_head(v.repo), v.titles()
    big = b"\0" * (20 * 1024 * 1024)
    bad = v.forge_on_remote(chunk=big)
    error = v.refused("sync")
    assert bad in error["message"] and "more than the 16777216 allowed" in error["message"]
    stored = forge_commit(v.repo, chunk=big)
    set_ref(v.repo, stored)
    proc = v.run("issue", "list", "--json")
    assert proc.returncode == 0 and "chunk is 20971520 bytes" in proc.stderr
    set_ref(v.repo, str(head))
    v.assert_unharmed(head, titles)
