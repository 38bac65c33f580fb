"""Dependency graph: cycle checks per type, deterministic topological order, cycle reports, ready set."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from grite.model.depgraph import (
    Cycle,
    find_cycles,
    ready_issue_ids,
    topological_order,
    would_create_cycle,
)
from grite.model.projection import Dependency, IssueSummary

A, B, C, D, E = (bytes([i]) * 16 for i in range(1, 6))


def dep(target: bytes, dep_type: str = "depends_on") -> Dependency:
    return Dependency(target=target, dep_type=dep_type)


def by_id(issue_id: bytes) -> bytes:
    return issue_id


# --- would_create_cycle ----------------------------------------------------------------------


@pytest.mark.parametrize("dep_type", ["blocks", "depends_on"])
def test_self_edge_of_an_acyclic_type_is_a_cycle(dep_type: str) -> None:
    assert would_create_cycle({}, A, A, dep_type)


def test_self_edge_of_related_to_is_allowed() -> None:
    assert not would_create_cycle({}, A, A, "related_to")


@pytest.mark.parametrize("dep_type", ["blocks", "depends_on"])
def test_two_cycle_is_detected(dep_type: str) -> None:
    deps = {B: [dep(A, dep_type)]}
    assert would_create_cycle(deps, A, B, dep_type)


@pytest.mark.parametrize("dep_type", ["blocks", "depends_on"])
def test_three_cycle_is_detected(dep_type: str) -> None:
    deps = {B: [dep(C, dep_type)], C: [dep(A, dep_type)]}
    assert would_create_cycle(deps, A, B, dep_type)


def test_chain_without_back_edge_is_no_cycle() -> None:
    deps = {B: [dep(C)], C: [dep(D)]}
    assert not would_create_cycle(deps, A, B, "depends_on")
    assert not would_create_cycle(deps, D, A, "depends_on")


def test_cycle_through_a_diamond_is_detected() -> None:
    deps = {B: [dep(C), dep(D)], C: [dep(E)], D: [dep(E)], E: [dep(A)]}
    assert would_create_cycle(deps, A, B, "depends_on")


def test_edges_of_another_type_do_not_close_a_cycle() -> None:
    deps = {B: [dep(A, "blocks")], C: [dep(A, "related_to")]}
    assert not would_create_cycle(deps, A, B, "depends_on")
    assert not would_create_cycle({B: [dep(A, "depends_on")]}, A, B, "blocks")


def test_mixed_type_path_is_not_followed() -> None:
    deps = {B: [dep(C, "blocks")], C: [dep(A, "depends_on")]}
    assert not would_create_cycle(deps, A, B, "depends_on")
    assert not would_create_cycle(deps, A, B, "blocks")


def test_related_to_never_creates_a_cycle() -> None:
    deps = {B: [dep(A, "related_to")]}
    assert not would_create_cycle(deps, A, B, "related_to")


def test_existing_cycle_elsewhere_does_not_hang_or_block() -> None:
    deps = {B: [dep(C)], C: [dep(B)]}
    assert not would_create_cycle(deps, A, B, "depends_on")


# --- topological_order -----------------------------------------------------------------------


def test_depends_on_puts_the_target_first() -> None:
    assert topological_order([A, B], {A: [dep(B, "depends_on")]}, by_id) == [B, A]


def test_blocks_puts_the_source_first() -> None:
    assert topological_order([A, B], {B: [dep(A, "blocks")]}, by_id) == [B, A]
    assert topological_order([A, B], {A: [dep(B, "blocks")]}, by_id) == [A, B]


def test_blocks_and_equivalent_depends_on_agree() -> None:
    blocks = topological_order([A, B, C], {C: [dep(A, "blocks")]}, by_id)
    depends = topological_order([A, B, C], {A: [dep(C, "depends_on")]}, by_id)
    assert blocks == depends == [B, C, A]


def test_related_to_does_not_order() -> None:
    assert topological_order([B, A], {A: [dep(B, "related_to")]}, by_id) == [A, B]


def test_ties_are_broken_by_sort_key_then_id() -> None:
    created = {A: 30, B: 10, C: 20, D: 10}
    assert topological_order([A, B, C, D], {}, created.__getitem__) == [B, D, C, A]


def test_sort_key_chooses_among_ready_issues_at_each_step() -> None:
    # D waits for A; among {A, B, C} the key picks C, B, A; D becomes ready after A.
    key = {A: 3, B: 2, C: 1, D: 0}
    deps = {D: [dep(A)]}
    assert topological_order([A, B, C, D], deps, key.__getitem__) == [C, B, A, D]


def test_edges_to_issues_outside_the_set_are_ignored() -> None:
    deps = {A: [dep(E)], B: [dep(A)]}
    assert topological_order([B, A], deps, by_id) == [A, B]


def test_issues_left_in_a_cycle_are_appended_in_key_order() -> None:
    key = {A: 5, B: 4, C: 3, D: 0}
    deps = {A: [dep(B)], B: [dep(C)], C: [dep(A)]}
    assert topological_order([A, B, C, D], deps, key.__getitem__) == [D, C, B, A]


def test_self_edge_does_not_hold_an_issue_back() -> None:
    assert topological_order([A, B], {B: [dep(B)]}, by_id) == [A, B]


def test_duplicate_ids_and_edges_are_counted_once() -> None:
    deps = {A: [dep(B), dep(B)]}
    assert topological_order([A, B, A], deps, by_id) == [B, A]


_ids = [bytes([i]) * 16 for i in range(6)]
_edges = st.dictionaries(
    st.sampled_from(_ids),
    st.lists(
        st.builds(
            Dependency,
            target=st.sampled_from(_ids),
            dep_type=st.sampled_from(["blocks", "depends_on", "related_to"]),
        ),
        max_size=4,
    ),
)


def _ordering_pairs(deps: dict[bytes, list[Dependency]]) -> set[tuple[bytes, bytes]]:
    pairs = set()
    for source, ds in deps.items():
        for d in ds:
            if d.target != source and d.dep_type == "depends_on":
                pairs.add((d.target, source))
            elif d.target != source and d.dep_type == "blocks":
                pairs.add((source, d.target))
    return pairs


def _has_order_cycle(pairs: set[tuple[bytes, bytes]]) -> bool:
    # Naive oracle: repeatedly drop issues nothing must precede.
    remaining = set(_ids)
    while remaining:
        free = {i for i in remaining if not any(b in remaining and a == i for b, a in pairs)}
        if not free:
            return True
        remaining -= free
    return False


@settings(max_examples=200, deadline=None)
@given(deps=_edges, ids=st.permutations(_ids))
def test_topological_order_is_a_deterministic_permutation_respecting_edges(
    deps: dict[bytes, list[Dependency]], ids: list[bytes]
) -> None:
    order = topological_order(ids, deps, by_id)
    assert sorted(order) == sorted(_ids)
    assert order == topological_order(sorted(ids), deps, by_id)
    pairs = _ordering_pairs(deps)
    if not _has_order_cycle(pairs):
        pos = {issue: i for i, issue in enumerate(order)}
        for before, after in pairs:
            assert pos[before] < pos[after]


def test_cross_type_contradiction_falls_back_to_key_order() -> None:
    # A blocks B (A first) and A depends_on B (B first): allowed per type, unorderable together.
    deps = {A: [dep(B, "blocks"), dep(B, "depends_on")]}
    assert not would_create_cycle({A: [dep(B, "blocks")]}, A, B, "depends_on")
    assert topological_order([B, A, C], deps, by_id) == [C, A, B]


# --- find_cycles -----------------------------------------------------------------------------


def test_sound_graph_has_no_cycles() -> None:
    deps = {A: [dep(B), dep(C, "blocks"), dep(A, "related_to")], B: [dep(C)]}
    assert find_cycles(deps) == []


def test_find_cycles_reports_self_edges_and_cycles_per_type() -> None:
    deps = {
        A: [dep(B), dep(A, "blocks")],
        B: [dep(C)],
        C: [dep(A), dep(D, "blocks")],
        D: [dep(C, "blocks")],
    }
    assert find_cycles(deps) == [
        Cycle(dep_type="blocks", issue_ids=[A]),
        Cycle(dep_type="blocks", issue_ids=[C, D]),
        Cycle(dep_type="depends_on", issue_ids=[A, B, C]),
    ]


def test_cross_type_loop_is_not_a_cycle() -> None:
    deps = {A: [dep(B, "blocks")], B: [dep(A, "depends_on")]}
    assert find_cycles(deps) == []


def test_find_cycles_reports_the_shortest_cycle_through_the_smallest_id() -> None:
    # A -> B -> C -> A and A -> D -> A share one component; the 2-cycle is reported.
    deps = {A: [dep(B), dep(D)], B: [dep(C)], C: [dep(A)], D: [dep(A)]}
    assert find_cycles(deps) == [Cycle(dep_type="depends_on", issue_ids=[A, D])]


def _reachable(deps: dict[bytes, list[Dependency]], start: bytes, dep_type: str) -> set[bytes]:
    """Issues reachable from `start` over one or more edges of `dep_type`."""
    seen: set[bytes] = set()
    todo = [d.target for d in deps.get(start, []) if d.dep_type == dep_type]
    while todo:
        node = todo.pop()
        if node not in seen:
            seen.add(node)
            todo.extend(d.target for d in deps.get(node, []) if d.dep_type == dep_type)
    return seen


@settings(max_examples=200, deadline=None)
@given(deps=_edges)
def test_find_cycles_reports_one_real_cycle_per_strongly_connected_component(
    deps: dict[bytes, list[Dependency]],
) -> None:
    cycles = find_cycles(deps)
    for cycle in cycles:
        ids = cycle.issue_ids
        assert len(set(ids)) == len(ids)
        for i, source in enumerate(ids):
            target = ids[(i + 1) % len(ids)]
            assert dep(target, cycle.dep_type) in deps[source]
    for dep_type in ("blocks", "depends_on"):
        reach = {i: _reachable(deps, i, dep_type) for i in _ids}
        # Each issue on a cycle belongs to a component named by its smallest member.
        expected_starts = {min(j for j in reach[i] if i in reach[j]) for i in _ids if i in reach[i]}
        starts = [c.issue_ids[0] for c in cycles if c.dep_type == dep_type]
        assert sorted(starts) == sorted(expected_starts)
    assert all(c.dep_type != "related_to" for c in cycles)


def test_long_chain_does_not_recurse_too_deep() -> None:
    ids = [i.to_bytes(16, "big") for i in range(5000)]
    deps = {ids[i]: [dep(ids[i + 1])] for i in range(len(ids) - 1)}
    deps[ids[-1]] = [dep(ids[0])]
    (cycle,) = find_cycles(deps)
    assert len(cycle.issue_ids) == 5000
    assert cycle.issue_ids[0] == ids[0]
    assert would_create_cycle(
        {k: v for k, v in deps.items() if k != ids[-1]}, ids[-1], ids[0], "depends_on"
    )
    assert (
        topological_order(ids[::-1], {k: v for k, v in deps.items() if k != ids[-1]}, by_id)
        == ids[::-1]
    )


# --- ready_issue_ids -------------------------------------------------------------------------


def summary(issue_id: bytes, state: str = "open", created_ts: int = 0) -> IssueSummary:
    return IssueSummary(
        issue_id=issue_id,
        title="t",
        state=state,
        labels=[],
        assignees=[],
        created_ts=created_ts,
        updated_ts=created_ts,
        comment_count=0,
        author=b"",
    )


def test_open_issue_without_dependencies_is_ready() -> None:
    assert ready_issue_ids([summary(A)], {}) == [A]


def test_closed_issue_is_never_ready() -> None:
    assert ready_issue_ids([summary(A, "closed")], {}) == []


def test_issue_depending_on_an_open_issue_is_not_ready() -> None:
    deps = {A: [dep(B, "depends_on")]}
    assert ready_issue_ids([summary(A), summary(B)], deps) == [B]


def test_issue_depending_on_a_closed_issue_is_ready() -> None:
    deps = {A: [dep(B, "depends_on")]}
    assert ready_issue_ids([summary(A), summary(B, "closed")], deps) == [A]


def test_issue_blocked_by_an_open_issue_is_not_ready() -> None:
    deps = {B: [dep(A, "blocks")]}
    assert ready_issue_ids([summary(A), summary(B)], deps) == [B]


def test_issue_blocked_by_a_closed_issue_is_ready() -> None:
    deps = {B: [dep(A, "blocks")]}
    assert ready_issue_ids([summary(A), summary(B, "closed")], deps) == [A]


def test_related_to_and_unknown_targets_hold_nothing_back() -> None:
    deps = {A: [dep(B, "related_to"), dep(E, "depends_on")]}
    assert ready_issue_ids([summary(A, created_ts=2), summary(B, created_ts=1)], deps) == [B, A]


def test_ready_order_is_by_created_ts_then_id() -> None:
    rows = [summary(C, created_ts=5), summary(B, created_ts=1), summary(A, created_ts=5)]
    assert ready_issue_ids(rows, {}) == [B, A, C]
