"""Lock rules: resource parsing, conflicts (including path overlap), TTLs and ref names."""

from __future__ import annotations

import pytest

from grite.model.errors import InvalidArgs
from grite.model.leases import (
    LockRecord,
    conflicts_with,
    lock_ref_name,
    nonce_from_bytes,
    parse_resource,
    parse_ttl,
    paths_overlap,
)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("repo:global", "repo:global"),
        ("path:src/", "path:src/"),
        ("issue:ABCD1234", "issue:abcd1234"),
    ],
)
def test_valid_resources_are_kept(text: str, expected: str) -> None:
    assert parse_resource(text) == expected


@pytest.mark.parametrize("text", ["foo", "global", "branch:main", "path:", "issue:  ", ""])
def test_resource_without_a_known_namespace_is_invalid(text: str) -> None:
    with pytest.raises(InvalidArgs) as exc:
        parse_resource(text)
    assert "repo:global" in exc.value.message


@pytest.mark.parametrize(
    ("text", "seconds"),
    [(None, 300), ("300", 300), ("30s", 30), ("15m", 900), ("2h", 7200), ("1d", 86400), (60, 60)],
)
def test_ttl_units(text: str | int | None, seconds: int) -> None:
    assert parse_ttl(text) == seconds


@pytest.mark.parametrize("text", ["abc", "15x", "-5", "0", "1.5h", "", "m", "400d"])
def test_bad_ttl_is_invalid(text: str) -> None:
    with pytest.raises(InvalidArgs):
        parse_ttl(text)


@pytest.mark.parametrize(
    ("held", "wanted", "conflict"),
    [
        ("repo:global", "path:src/", True),
        ("repo:global", "issue:abcd", True),
        ("path:docs/", "repo:x", True),
        ("path:src/", "path:src/main.rs", True),
        ("path:src/main.rs", "path:src/", True),
        ("path:src/", "path:src", True),
        ("path:src/", "path:tests/", False),
        ("path:src", "path:srcx/a", False),
        ("path:src/main.rs", "path:src/lib.rs", False),
        ("path:src/", "issue:abc123", False),
        ("issue:abcd1234", "issue:abcd1234", True),
        ("issue:abcd", "issue:abcd1234ffff", True),
        ("issue:abcd1234", "issue:abcd9999", False),
    ],
)
def test_conflict_rules_are_symmetric(held: str, wanted: str, conflict: bool) -> None:
    assert conflicts_with(held, wanted) is conflict
    assert conflicts_with(wanted, held) is conflict


def test_paths_overlap_table() -> None:
    assert paths_overlap("src", "src/main.rs")
    assert not paths_overlap("src/main.rs", "src/lib.rs")


def test_ref_name_matches_grite_0_5_3() -> None:
    assert lock_ref_name("repo:global") == "refs/grite/locks/4fa20104a646a633"


def test_expiry_is_not_strict_and_nonce_is_a_uuid4() -> None:
    lock = LockRecord(owner="a", nonce="n", expires_unix_ms=1000, resource="repo:x")
    assert lock.expired(1000) and not lock.expired(999)
    assert lock.remaining_seconds(0) == 1 and lock.remaining_seconds(5000) == 0
    nonce = nonce_from_bytes(bytes(range(16)))
    assert len(nonce) == 36 and nonce[14] == "4" and nonce[19] in "89ab"
