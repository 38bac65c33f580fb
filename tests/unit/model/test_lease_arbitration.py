"""grite.model.lease_arbitration: how a clone's lock refs follow the remote's, and the first choice."""

from __future__ import annotations

import os

import pytest
from hypothesis import given
from hypothesis import strategies as st

from grite.model.lease_arbitration import Follow, first_choice, follow_remote

KEEP, TAKE = Follow.KEEP, Follow.TAKE


@pytest.mark.parametrize(
    ("local", "tracked", "remote", "ff", "want"),
    [
        (None, None, None, False, KEEP),  # nothing anywhere
        (None, None, "r", False, TAKE),  # a lease another clone took: learn it
        ("l", "l", "r", False, TAKE),  # renewed or taken over on the remote
        ("l", "l", None, False, TAKE),  # released or collected on the remote
        ("l", None, None, False, KEEP),  # taken with --local, not pushed yet
        (None, "t", "t", False, KEEP),  # released with --local, not pushed yet
        ("l", None, "r", False, KEEP),  # both took it: keep ours, sync reports the clash
        ("l", None, "r", True, TAKE),  # the remote's descends from ours: follow it
        ("x", "x", "x", False, KEEP),  # unchanged
        (None, "t", "r", False, TAKE),  # we dropped a lease the remote has renewed since
    ],
)
def test_follow_remote(
    local: str | None, tracked: str | None, remote: str | None, ff: bool, want: Follow
) -> None:
    assert follow_remote(local, tracked, remote, ff) is want


def test_a_lone_claimer_starts_at_the_oldest() -> None:
    for _ in range(50):
        assert first_choice(10, 0, os.urandom(16)) == 0
    assert first_choice(0, 5, os.urandom(16)) == 0
    assert first_choice(1, 5, os.urandom(16)) == 0


def test_concurrent_claimers_spread_over_the_first_few() -> None:
    picks = {first_choice(100, 3, os.urandom(16)) for _ in range(400)}
    assert picks == {0, 1, 2, 3}


@given(st.integers(0, 500), st.integers(0, 50), st.binary(min_size=8, max_size=32))
def test_first_choice_stays_in_the_window_and_repeats_for_a_seed(
    free: int, contenders: int, seed: bytes
) -> None:
    pick = first_choice(free, contenders, seed)
    assert 0 <= pick <= max(0, min(free, contenders + 1) - 1)
    assert first_choice(free, contenders, seed) == pick
