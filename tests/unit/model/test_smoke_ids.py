"""Id parsing: the user-facing rules for full ids and prefixes."""

import pytest

from grite.model.errors import InvalidArgs
from grite.model.ids import check_prefix, id_from_hex


def test_full_id_round_trips_through_hex() -> None:
    raw = bytes(range(16))
    assert id_from_hex(raw.hex(), 16) == raw


@pytest.mark.parametrize("bad", ["xyz", "0011", "00" * 17, ""])
def test_full_id_rejects_wrong_length_or_non_hex(bad: str) -> None:
    with pytest.raises(InvalidArgs):
        id_from_hex(bad, 16)


def test_prefix_is_lowercased_and_needs_four_hex_chars() -> None:
    assert check_prefix("ABCD") == "abcd"
    with pytest.raises(InvalidArgs, match="at least 4"):
        check_prefix("abc")
    with pytest.raises(InvalidArgs, match="hex"):
        check_prefix("zzzz")
