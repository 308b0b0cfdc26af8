"""Runs of alike iterations along a graph's chains, folded into one node each, and the bound on
how many nodes a graph's description holds. Pure: it reads protocol GraphNodes (all of the
graph's, as the probe described them) and never touches torch.

Found here, in the kernel, rather than by the front end: a 20,000-node recurrence then crosses
the comm as a dozen nodes, not as megabytes of JSON, and `gradrepl graph --json` prints the
same folded graph the app draws.

The chains are graph_layout's. Along one chain, a node with everything drawn under it is a
block; blocks i and i + p are alike when they draw the same (node names, saved values, saved
tensors with their shapes, states and names, inputs without grad, how many nodes pass each a
gradient) and their references lead to the same node, or to the node at the same place
relative to them (the block before, in a recurrence). A run is at least MIN_ITERATIONS
iterations of p alike blocks (p up to MAX_PERIOD); its first and last iterations are kept and
described, those between are counted. Only what is alike is folded: a named tensor, a saved
tensor modified in place or a node that another part of the graph uses breaks the run there.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

from gradrepl.protocol import GraphNode, GraphRepeat
from gradrepl.protocol.graph_layout import UNDESCRIBED, Chain, Layout, lay_out

MIN_ITERATIONS = 5
MAX_PERIOD = 8


@dataclass(frozen=True)
class Run:
    """`count` iterations of `period` blocks on `chain`, from its step `start`."""

    chain: Chain
    start: int
    period: int
    count: int

    @property
    def begin(self) -> int:
        return self.chain.steps[self.start]

    def block_start(self, iteration: int) -> int:
        return self.chain.steps[self.start + iteration * self.period]

    @property
    def end(self) -> int:
        after = self.start + self.count * self.period
        return self.chain.steps[after] if after < len(self.chain.steps) else self.chain.end


def fold_repeats(nodes: Sequence[GraphNode]) -> tuple[GraphNode, ...]:
    """The graph with each run of alike iterations as one node (GraphNode.repeat), every node
    numbered in the order it is drawn."""
    if not nodes:
        return ()
    layout = lay_out(nodes)
    runs = find_runs(nodes, layout)
    return _Folding(nodes, layout, runs).emit()


def find_runs(nodes: Sequence[GraphNode], layout: Layout) -> list[Run]:
    """The runs on every chain of the layout, in the order of the entries they start at."""
    looks, passing = _looks(nodes)
    runs: list[Run] = []
    for chain in layout.chains:
        if len(chain.steps) >= MIN_ITERATIONS:
            runs.extend(_runs_on(chain, layout, looks, passing))
    runs.sort(key=lambda run: run.begin)
    return runs


ROOT_PASSING = -1  # the root's gradient comes from the backward call: alike any count


def _looks(nodes: Sequence[GraphNode]) -> tuple[list[int], list[int]]:
    """What each node shows, its number and inputs aside, as a number (alike nodes, alike
    numbers), and how many nodes pass each a gradient (an input used twice counts once). The
    root's tensor name is the graph's title, not part of the pattern."""
    passing = [0] * len(nodes)
    for node in nodes:
        for child in set(node.next):
            if 0 <= child < len(nodes):
                passing[child] += 1
    if nodes:
        passing[0] = ROOT_PASSING
    known: dict[tuple[Any, ...], int] = {}
    looks = []
    for number, node in enumerate(nodes):
        look = (node.name, None if number == 0 else node.tensor, node.leaf, node.saved, node.values,
                node.no_grad_inputs, node.note, node.repeat, len(node.next))
        looks.append(known.setdefault(look, len(known)))
    return looks, passing


@dataclass(frozen=True)
class _Block:
    """A chain's node with everything drawn under it: what each entry shows, how many nodes
    pass each node a gradient, and where each reference leads (the node; where it is drawn
    relative to this block, when on this chain)."""

    shape: tuple[tuple[str, int, int], ...]
    passing: tuple[int, ...]
    refs: tuple[tuple[int, tuple[int, int] | None], ...]


def _runs_on(chain: Chain, layout: Layout, looks: list[int], passing: list[int]) -> list[Run]:
    blocks = [_block(chain, index, layout, looks, passing) for index in range(len(chain.steps))]
    count = len(blocks)

    def alike(i: int, j: int) -> bool:
        a, b = blocks[i], blocks[j]
        if a.shape != b.shape:
            return False
        if a.passing != b.passing and not all(x == y or ROOT_PASSING in (x, y)
                                              for x, y in zip(a.passing, b.passing, strict=True)):
            return False
        return a.refs == b.refs or all(_same_target(x, y) for x, y in zip(a.refs, b.refs, strict=True))

    runs: list[Run] = []
    index = 0
    while index < count:
        best: tuple[int, int] | None = None  # (blocks covered, period)
        for period in range(1, MAX_PERIOD + 1):
            if index + period * MIN_ITERATIONS > count:
                break
            if best is not None and period % best[1] == 0:
                continue  # a multiple of a period that repeats covers no more than it does
            matched = index
            while matched + period < count and alike(matched, matched + period):
                matched += 1
            iterations = (matched - index + period) // period
            if iterations >= MIN_ITERATIONS and (best is None or iterations * period > best[0]):
                best = (iterations * period, period)
        if best is None:
            index += 1
            continue
        covered, period = best
        runs.append(Run(chain, index, period, covered // period))
        index += covered
    return runs


def _same_target(a: tuple[int, tuple[int, int] | None], b: tuple[int, tuple[int, int] | None]) -> bool:
    """Two references at the same place of two blocks lead alike: to the same node, or to
    nodes drawn at the same place relative to their blocks."""
    return a[0] == b[0] or (a[1] is not None and a[1] == b[1])


def _block(chain: Chain, index: int, layout: Layout, looks: list[int], passing: list[int]) -> _Block:
    entries = layout.entries
    steps = chain.steps
    start = steps[index]
    end = steps[index + 1] if index + 1 < len(steps) else chain.end
    shape: list[tuple[str, int, int]] = []
    passed: list[int] = []
    refs: list[tuple[int, tuple[int, int] | None]] = []
    for position in range(start, end):
        entry = entries[position]
        depth = entry.depth - chain.depth
        kind = entry.kind
        if kind == "node":
            shape.append((kind, depth, looks[entry.number]))
            passed.append(passing[entry.number])
            continue
        shape.append((kind, depth, -1))
        if kind == "ref":
            drawn = layout.drawn_at.get(entry.number, -1)
            relative = None
            if steps[0] <= drawn < chain.end:
                block = bisect_right(steps, drawn) - 1
                relative = (block - index, drawn - steps[block])
            refs.append((entry.number, relative))
    return _Block(tuple(shape), tuple(passed), tuple(refs))


class _Folding:
    """The folded graph: the layout's entries in order, each run's middle iterations left out
    and the run itself placed before its first iteration."""

    def __init__(self, nodes: Sequence[GraphNode], layout: Layout, runs: list[Run]) -> None:
        self.nodes = nodes
        self.layout = layout
        self.runs = runs
        self.order: list[int | Run] = []  # in the new order: an old node number, or a run
        self.new_of: dict[int, int] = {}  # old node number -> new
        self.run_new: dict[int, int] = {}  # id(run) -> its new number
        self.dropped: dict[int, int] = {}  # a node of a middle iteration -> its run's new number
        self.first_of: dict[int, Run] = {}  # a run's first node -> the run
        self.bodies: dict[int, tuple[list[int], list[int]]] = {}  # id(run) -> new numbers of its first, last iteration

    def emit(self) -> tuple[GraphNode, ...]:
        entries = self.layout.entries
        starts = {run.begin: run for run in self.runs}
        active: list[Run] = []  # the runs whose entries the walk is in, innermost last
        position = 0
        while position < len(entries):
            while active and position >= active[-1].end:
                active.pop()
            run = starts.get(position)
            if run is not None:
                self._place(run, active, position)
                self.run_new[id(run)] = len(self.order) - 1
                self.bodies[id(run)] = ([], [])
                self.first_of[entries[position].number] = run
                active.append(run)
            if active:
                inner = active[-1]
                middle_end = inner.block_start(inner.count - 1)
                if inner.block_start(1) <= position < middle_end:
                    for skipped in entries[position:middle_end]:
                        if skipped.kind == "node":
                            self.dropped[skipped.number] = self.run_new[id(inner)]
                    position = middle_end
                    continue
            entry = entries[position]
            if entry.kind == "node":
                self.new_of[entry.number] = len(self.order)
                self._place(entry.number, active, position)
            position += 1
        return tuple(self._node(item) for item in self.order)

    def _place(self, item: int | Run, active: list[Run], position: int) -> None:
        """Puts a node or a run next in the new order; inside a run, in its first or last iteration."""
        if active:
            inner = active[-1]
            first, last = self.bodies[id(inner)]
            (first if position < inner.block_start(1) else last).append(len(self.order))
        self.order.append(item)

    def _node(self, item: int | Run) -> GraphNode:
        entries = self.layout.entries
        if isinstance(item, Run):
            first, last = self.bodies[id(item)]
            steps = item.chain.steps[item.start:item.start + item.period]
            following = item.start + item.count * item.period
            after = () if following >= len(item.chain.steps) else (entries[item.chain.steps[following]].number,)
            nodes = sum(1 for entry in entries[item.begin:item.end] if entry.kind == "node")
            return GraphNode(" → ".join(self.nodes[entries[step].number].name for step in steps),
                             next=tuple(self._target(child, item.begin) for child in after),
                             repeat=GraphRepeat(item.count, item.period, nodes, tuple(first), tuple(last)))
        source = self.layout.drawn_at.get(item, -1)
        node = self.nodes[item]
        return replace(node, next=tuple(self._target(child, source) for child in node.next))

    def _target(self, child: int, source: int) -> int:
        """The new number of an input of the node drawn at `source`: a run's first node, met from
        outside the run, is the run; a node of a middle iteration is its run."""
        if child < 0:
            return UNDESCRIBED
        run = self.first_of.get(child)
        if run is not None and not run.begin <= source < run.end:
            return self.run_new[id(run)]
        if child in self.new_of:
            return self.new_of[child]
        return self.dropped.get(child, UNDESCRIBED)


def bound(nodes: Sequence[GraphNode], limit: int) -> tuple[GraphNode, ...]:
    """At most `limit` nodes, the first in drawing order, and besides them every leaf's
    AccumulateGrad (however big the graph, its leaves are listed) and the iterations of every
    run kept. An input left out is UNDESCRIBED."""
    if len(nodes) <= limit:
        return tuple(nodes)
    keep = bytearray(len(nodes))
    kept = 0
    for number, node in enumerate(nodes):
        if keep[number] or (kept >= limit and node.leaf is None):
            continue
        stack = [number]
        while stack:
            member = stack.pop()
            if 0 <= member < len(nodes) and not keep[member]:
                keep[member] = 1
                kept += 1
                repeat = nodes[member].repeat
                if repeat is not None:
                    stack.extend((*repeat.first, *repeat.last))
    new_of: dict[int, int] = {}
    for number in range(len(nodes)):
        if keep[number]:
            new_of[number] = len(new_of)

    def renumbered(numbers: tuple[int, ...]) -> tuple[int, ...]:
        return tuple(new_of.get(n, UNDESCRIBED) for n in numbers)

    out = []
    for number, node in enumerate(nodes):
        if keep[number]:
            repeat = node.repeat
            if repeat is not None:
                repeat = replace(repeat, first=renumbered(repeat.first), last=renumbered(repeat.last))
            out.append(replace(node, next=renumbered(node.next), repeat=repeat))
    return tuple(out)
