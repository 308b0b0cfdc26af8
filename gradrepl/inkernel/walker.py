"""The one walk over an autograd graph, through each node's `next_functions`, shared by the
kernel-side readers of a graph: the tracer (the nodes a backward call may run and the leaves it
may write), the graph view (nodes numbered depth-first) and the Jacobian view (nodes in
topological order). Each caller passes its own limit.

Never imports torch: a graph is read through `next_functions` and `variable` only.
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Walk:
    """Each node reachable from the starts, once, in depth-first preorder (a node's first input
    first). `nodes` holds every node, so the ids in `position` stay theirs while the walk lives.

    A node's `next_functions` are read again where needed rather than kept: a tuple kept for
    each of thousands of nodes makes Python's garbage collector run full collections."""

    nodes: list[Any]
    position: dict[int, int]  # id(node) -> its index in `nodes`
    cut: bool  # the limit stopped the walk while some node was still unvisited
    pending: list[Any] = field(default_factory=list)  # where a cut walk would have gone on

    def __len__(self) -> int:
        return len(self.nodes)

    def leaves(self) -> list[Any]:
        """The leaf tensors the graph's AccumulateGrad nodes write into, in walk order."""
        found = []
        for node in self.nodes:
            holds = _HOLDS_A_LEAF.get(type(node))
            if holds or (holds is None and _holds_a_leaf(type(node), node)):
                found.append(node.variable)
        return found


def walk(starts: Iterable[Any], limit: int) -> Walk:
    """The nodes reachable from `starts` (None entries skipped), at most `limit` of them."""
    nodes: list[Any] = []
    position: dict[int, int] = {}
    stack = [node for node in reversed(list(starts)) if node is not None]
    cut = False
    while stack:
        node = stack.pop()
        if id(node) in position:
            continue
        if len(nodes) >= limit:
            cut = True
            stack.append(node)
            break
        position[id(node)] = len(nodes)
        nodes.append(node)
        for child, _ in reversed(node.next_functions):
            if child is not None and id(child) not in position:
                stack.append(child)
    return Walk(nodes, position, cut, stack if cut else [])


def leaves_past(walked: Walk, limit: int) -> list[Any]:
    """The AccumulateGrad nodes a cut walk did not reach, found by going on from where it
    stopped without keeping the nodes (at most `limit` more looked at): however big the
    graph, its leaves can be named."""
    seen = set(walked.position)
    stack = list(walked.pending)
    found: list[Any] = []
    looked = 0
    while stack and looked < limit:
        node = stack.pop()
        if id(node) in seen:
            continue
        seen.add(id(node))
        looked += 1
        if _holds_a_leaf(type(node), node):
            found.append(node)
        for child, _ in node.next_functions:
            if child is not None and id(child) not in seen:
                stack.append(child)
    return found


def topological(walked: Walk, starts: Iterable[Any], priority: Callable[[Any], int] | None = None,
                limit: int | None = None) -> list[Any]:
    """The walked nodes, each after every walked node that passes it a gradient (at most `limit`).

    Of the nodes ready at a step, the one of highest `priority` comes first, the earliest ready
    on a tie. A start the walk did not reach (it stopped at its limit) is listed, not followed."""
    waiting: dict[int, int] = {}  # id(node) -> how many walked nodes pass it a gradient
    for walked_node in walked.nodes:
        for child, _ in walked_node.next_functions:
            if child is not None:
                waiting[id(child)] = waiting.get(id(child), 0) + 1
    rank = priority or (lambda node: 0)
    arrival = itertools.count()
    ready: list[tuple[int, int, Any]] = []
    queued: set[int] = set()
    for node in starts:
        if node is not None and id(node) not in queued and not waiting.get(id(node)):
            queued.add(id(node))
            heapq.heappush(ready, (-rank(node), next(arrival), node))
    order: list[Any] = []
    while ready and (limit is None or len(order) < limit):
        node = heapq.heappop(ready)[2]
        order.append(node)
        if id(node) not in walked.position:
            continue
        for child, _ in node.next_functions:
            if child is None or id(child) not in walked.position:
                continue
            waiting[id(child)] -= 1
            if waiting[id(child)] == 0:
                heapq.heappush(ready, (-rank(child), next(arrival), child))
    return order


def node_name(node: Any) -> str:
    """What a node is called wherever gradrepl names one: its type's name (MulBackward0), or
    for a C++ node without a Python class of its own (type CppFunction) the name torch gives
    it (`torch::autograd::Identity`)."""
    name = type(node).__name__
    if name != "CppFunction":
        return name
    try:
        return str(node.name())
    except Exception:
        return name


NodeKey = tuple[int, str, int]


def node_key(node: Any) -> NodeKey:
    """Tells a node apart while it lives and from the nodes made after it: its id, type and
    sequence number (a node cannot be weakly referenced)."""
    try:
        number = int(node._sequence_nr())
    except Exception:
        number = -1
    return id(node), type(node).__name__, number


_HOLDS_A_LEAF: dict[type, bool] = {}  # node type -> whether it has `variable` (AccumulateGrad)


def accumulated_leaf(node: Any) -> Any:
    """The leaf tensor an AccumulateGrad node writes into; None for any other node."""
    return node.variable if _holds_a_leaf(type(node), node) else None


def _holds_a_leaf(kind: type, node: Any) -> bool:
    holds = _HOLDS_A_LEAF.get(kind)
    if holds is None:
        holds = _HOLDS_A_LEAF[kind] = hasattr(node, "variable")
    return holds
