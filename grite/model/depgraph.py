"""The dependency graph between issues: cycle checks, ordering, cycle reports, the ready set.

Edges are stored on their source issue (`IssueProjection.dependencies`) and passed in here as
`deps`: a mapping from source issue id to its current `Dependency` list. `blocks` and
`depends_on` must stay acyclic (each type on its own, as in grite 0.5.3); `related_to` carries no constraint. Because sync merges edges written on different
clones, a cycle can still appear; every function here terminates and stays deterministic when
one does.

Pure: imports only grite.model, no I/O.
"""

from __future__ import annotations

import heapq
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import msgspec

from grite.model.projection import Dependency, IssueSummary

__all__ = [
    "ACYCLIC_DEP_TYPES",
    "Cycle",
    "find_cycles",
    "ready_issue_ids",
    "topological_order",
    "would_create_cycle",
]

ACYCLIC_DEP_TYPES = ("blocks", "depends_on")

Deps = Mapping[bytes, Iterable[Dependency]]


class Cycle(msgspec.Struct, frozen=True, kw_only=True):
    """A cycle of one dependency type: issue_ids[0] -> issue_ids[1] -> ... -> issue_ids[0]."""

    dep_type: str
    issue_ids: list[bytes]


def _targets(deps: Deps, source: bytes, dep_type: str) -> list[bytes]:
    return [d.target for d in deps.get(source, ()) if d.dep_type == dep_type]


def would_create_cycle(deps: Deps, src: bytes, target: bytes, dep_type: str) -> bool:
    """Whether adding the edge `src <dep_type> target` would close a cycle of that type.

    Args:
        deps: current edges by source issue id.
        src: the issue the edge would be stored on.
        target: the issue it points at.
        dep_type: "blocks", "depends_on" or "related_to".

    Returns:
        False for `related_to`; for an acyclic type, True if `src` is reachable from `target`
        over edges of the same type (a self edge counts). Edges of other types never count,
        so `A blocks B` next to `B depends_on A` is allowed.
    """
    if dep_type not in ACYCLIC_DEP_TYPES:
        return False
    if src == target:
        return True
    seen = {target}
    stack = [target]
    while stack:
        node = stack.pop()
        for nxt in _targets(deps, node, dep_type):
            if nxt == src:
                return True
            if nxt not in seen:
                seen.add(nxt)
                stack.append(nxt)
    return False


def topological_order(
    issue_ids: Sequence[bytes], deps: Deps, sort_key: Callable[[bytes], Any]
) -> list[bytes]:
    """Order issues so that each comes after everything it waits for.

    `A depends_on B` puts B before A; `A blocks B` puts A before B, since B waits for A.
    grite 0.5.3 ordered `blocks` like `depends_on` (target first), which reversed its meaning;
    we deliberately follow the words instead. `related_to`, self edges and edges to issues not
    in `issue_ids` are ignored.

    Kahn's algorithm; among the issues ready at each step, the smallest (sort_key(id), id)
    goes first, so the result depends only on the inputs. Issues left in a cycle (possible after
    a sync merged edges) are appended in (sort_key(id), id) order.

    Args:
        issue_ids: the issues to order (duplicates ignored).
        deps: edges by source issue id.
        sort_key: tie-break key, e.g. creation time.

    Returns:
        Every id of `issue_ids` exactly once.
    """
    keys = {i: (sort_key(i), i) for i in issue_ids}
    successors: dict[bytes, set[bytes]] = {i: set() for i in keys}
    indegree = dict.fromkeys(keys, 0)
    for source in keys:
        for d in deps.get(source, ()):
            target = d.target
            if target == source or target not in keys:
                continue
            if d.dep_type == "depends_on":
                before, after = target, source
            elif d.dep_type == "blocks":
                before, after = source, target
            else:
                continue
            if after not in successors[before]:
                successors[before].add(after)
                indegree[after] += 1
    ready = [keys[i] for i, n in indegree.items() if n == 0]
    heapq.heapify(ready)
    order: list[bytes] = []
    while ready:
        _, node = heapq.heappop(ready)
        order.append(node)
        for nxt in successors[node]:
            indegree[nxt] -= 1
            if indegree[nxt] == 0:
                heapq.heappush(ready, keys[nxt])
    if len(order) < len(keys):
        done = set(order)
        order.extend(i for _, i in sorted(keys[i] for i in keys if i not in done))
    return order


def _strong_components(nodes: list[bytes], edges: dict[bytes, list[bytes]]) -> list[list[bytes]]:
    # Iterative Tarjan: recursion would overflow on long dependency chains.
    index: dict[bytes, int] = {}
    low: dict[bytes, int] = {}
    on_stack: set[bytes] = set()
    stack: list[bytes] = []
    components: list[list[bytes]] = []
    counter = 0
    for root in nodes:
        if root in index:
            continue
        work: list[tuple[bytes, int]] = [(root, 0)]
        while work:
            node, pos = work.pop()
            if pos == 0:
                index[node] = low[node] = counter
                counter += 1
                stack.append(node)
                on_stack.add(node)
            succ = edges.get(node, [])
            descended = False
            while pos < len(succ):
                nxt = succ[pos]
                pos += 1
                if nxt not in index:
                    work.append((node, pos))
                    work.append((nxt, 0))
                    descended = True
                    break
                if nxt in on_stack:
                    low[node] = min(low[node], index[nxt])
            if descended:
                continue
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                components.append(component)
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
    return components


def _shortest_cycle_through(
    start: bytes, edges: dict[bytes, list[bytes]], members: set[bytes]
) -> list[bytes]:
    came_from: dict[bytes, bytes] = {}
    queue = deque([start])
    while queue:
        node = queue.popleft()
        for nxt in edges.get(node, []):
            if nxt not in members:
                continue
            if nxt == start:
                path = [node]
                while path[-1] != start:
                    path.append(came_from[path[-1]])
                path.reverse()
                return path
            if nxt not in came_from:
                came_from[nxt] = node
                queue.append(nxt)
    raise AssertionError("a strongly connected component always has a cycle through each member")


def find_cycles(deps: Deps) -> list[Cycle]:
    """Report the cycles among `blocks` edges and among `depends_on` edges (for doctor).

    One cycle per strongly connected component of each type: the shortest one through the
    component's smallest id, starting there. Self edges are one-issue cycles.

    Returns:
        Cycles sorted by (dep_type, issue_ids); empty when the graph is sound.
    """
    cycles: list[Cycle] = []
    for dep_type in ACYCLIC_DEP_TYPES:
        edges: dict[bytes, list[bytes]] = {}
        nodes: set[bytes] = set()
        for source, ds in deps.items():
            targets = sorted({d.target for d in ds if d.dep_type == dep_type})
            if targets:
                edges[source] = targets
                nodes.add(source)
                nodes.update(targets)
        for component in _strong_components(sorted(nodes), edges):
            start = min(component)
            if len(component) == 1 and start not in edges.get(start, []):
                continue
            path = _shortest_cycle_through(start, edges, set(component))
            cycles.append(Cycle(dep_type=dep_type, issue_ids=path))
    cycles.sort(key=lambda c: (c.dep_type, c.issue_ids))
    return cycles


def ready_issue_ids(summaries: Iterable[IssueSummary], deps: Deps) -> list[bytes]:
    """Open issues nothing open holds back.

    An open issue is ready when none of its `depends_on` targets is open and no open issue
    `blocks` it. Targets that are not among `summaries` (unknown or invisible) hold nothing.

    Returns:
        Ready issue ids ordered by (created_ts, issue_id).
    """
    rows = list(summaries)
    open_ids = {s.issue_id for s in rows if s.state == "open"}
    blocked: set[bytes] = set()
    for source in open_ids:
        for d in deps.get(source, ()):
            if d.dep_type == "blocks" and d.target != source:
                blocked.add(d.target)
            elif d.dep_type == "depends_on" and d.target in open_ids and d.target != source:
                blocked.add(source)
    ready = [s for s in rows if s.issue_id in open_ids and s.issue_id not in blocked]
    ready.sort(key=lambda s: (s.created_ts, s.issue_id))
    return [s.issue_id for s in ready]
