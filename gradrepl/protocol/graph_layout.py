"""How a Graph is drawn: as chains. Shared by the probe, which finds the repeated runs along
the chains of the whole graph (inkernel/repeats.py), and the renderers, which draw the chains
of the graph it sent (render/graph.py): one rule, so both read the same picture.

A chain starts at a node and goes on through the input that leads furthest (the longest path
to a leaf; on a tie, the first input): a node's other inputs are drawn indented under it, each
a chain of its own, and the chain itself goes on at the same depth, so a 10,000-node
recurrence is as wide as one node. A chain's whole path is laid down before any of its
branches, so a branch that meets a node further down the chain refers to it ("drawn below")
rather than drawing it there. Every node is drawn once, where it is first met; anywhere else
it is a reference. A run node (`GraphNode.repeat`) has its first and last iteration drawn
under it (`body`), separated by a gap entry; the nodes of its iterations are drawn nowhere else.

Pure and standard library only: it reads GraphNode's `next` and `repeat`, nothing else.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

from gradrepl.protocol.graph import GraphNode

EntryKind = Literal["node", "ref", "cut", "gap", "unreached"]

UNDESCRIBED = -1  # a `next` number for an input the probe did not describe
_FAR = 1 << 60  # how far an undescribed input leads: further than anything described


@dataclass(frozen=True)
class Entry:
    """One line of the drawing, in order. `node`: a node drawn here (`continues` when it is the
    next node of the chain of the node drawn before it at this depth); `ref`: a node drawn
    elsewhere (`below` when further down; `other_iteration` when it is a node of another iteration
    of the run this is drawn in, which is the run); `cut`: an input the probe did not describe; `gap`:
    between a run's first and last iteration; `unreached`: before the nodes no drawn node
    leads to (leaves kept past the point where the description stopped)."""

    kind: EntryKind
    number: int
    depth: int
    continues: bool = False
    below: bool = False
    other_iteration: bool = False  # ref: to a node of another iteration of the run it is drawn in


@dataclass
class Chain:
    """Where a chain's nodes are in `Layout.entries`: `steps` the positions of its nodes, `end`
    the position after the last one's branches."""

    depth: int
    steps: list[int] = field(default_factory=list)
    end: int = 0


@dataclass
class Layout:
    entries: list[Entry]
    chains: list[Chain]
    drawn_at: dict[int, int]  # node number -> position of the entry that draws it


def weight(node: GraphNode) -> int:
    """How many steps of a chain a node stands for: a run, all of its iterations."""
    repeat = node.repeat
    return max(repeat.count * repeat.period, 1) if repeat is not None else 1


def heights(nodes: Sequence[GraphNode]) -> list[int]:
    """The length of the longest path from each node to a leaf, in chain steps (an input the
    probe did not describe leads further than any)."""
    count = len(nodes)
    height = [0] * count
    state = bytearray(count)  # 0: not met, 1: its inputs being measured, 2: measured
    for start in range(count):
        if state[start]:
            continue
        state[start] = 1
        stack = [(start, 0)]
        while stack:
            number, index = stack[-1]
            inputs = nodes[number].next
            while index < len(inputs) and not (0 <= inputs[index] < count and state[inputs[index]] == 0):
                index += 1
            if index < len(inputs):
                child = inputs[index]
                stack[-1] = (number, index + 1)
                state[child] = 1
                stack.append((child, 0))
                continue
            stack.pop()
            best = -1
            for child in inputs:
                if not 0 <= child < count:
                    best = _FAR
                elif state[child] == 2 and height[child] > best:  # a cycle (built by hand) is not followed
                    best = height[child]
            height[number] = _FAR if best >= _FAR else weight(nodes[number]) + best
            state[number] = 2
    return height


def lay_out(nodes: Sequence[GraphNode]) -> Layout:
    """The drawing of the graph from node 0, then of any node it does not reach."""
    return _Drawing(nodes).run()


class _Drawing:
    def __init__(self, nodes: Sequence[GraphNode]) -> None:
        self.nodes = nodes
        self.height = heights(nodes)
        self.taken = bytearray(len(nodes))  # drawn, or laid down on a chain still being drawn
        self.drawn = bytearray(len(nodes))
        self.run_of: dict[int, int] = {}  # a node of a run's iterations -> the run's number
        for number, node in enumerate(nodes):
            if node.repeat is not None:
                for member in (*node.repeat.first, *node.repeat.last):
                    if 0 <= member < len(nodes) and member != number:
                        self.run_of[member] = number
        self.body_taken = bytearray(len(nodes))
        self.entries: list[Entry] = []
        self.chains: list[Chain] = []
        self.drawn_at: dict[int, int] = {}
        # Tasks, last first: ("chain", node, depth, run) | ("step", node, depth, chain, continues, next_step, run)
        # | ("branch", node, depth, run) | ("close", chain) | ("body", run, depth, which, index)
        self.tasks: list[tuple] = []

    def run(self) -> Layout:
        count = len(self.nodes)
        if count:
            self._draw_from(0)
        header = False
        for number in range(count):
            if not self.taken[number] and number not in self.run_of:
                if not header:
                    self.entries.append(Entry("unreached", UNDESCRIBED, 0))
                    header = True
                self._draw_from(number)
        return Layout(self.entries, self.chains, self.drawn_at)

    def _draw_from(self, start: int) -> None:
        self.tasks.append(("chain", start, 0, -1))
        while self.tasks:
            task = self.tasks.pop()
            kind = task[0]
            if kind == "chain":
                self._chain(task[1], task[2], task[3])
            elif kind == "step":
                self._step(*task[1:])
            elif kind == "branch":
                self._branch(task[1], task[2], task[3])
            elif kind == "close":
                task[1].end = len(self.entries)
            else:
                self._body(task[1], task[2], task[3], task[4])

    def _free(self, number: int, run: int) -> bool:
        """Whether `number` may still be drawn in the current place: outside a run's body, a
        node no chain has taken; inside, a node of that run's iterations not yet drawn."""
        if run < 0:
            return not self.taken[number] and number not in self.run_of
        return self.run_of.get(number) == run and not self.body_taken[number]

    def _take(self, number: int, run: int) -> None:
        self.taken[number] = 1
        if run >= 0:
            self.body_taken[number] = 1

    def _chain(self, start: int, depth: int, run: int) -> None:
        path = [start]
        self._take(start, run)
        number = start
        while True:
            best = -1
            for child in self.nodes[number].next:
                if 0 <= child < len(self.nodes) and self._free(child, run) and (best < 0 or self.height[child] > self.height[best]):
                    best = child
            if best < 0:
                break
            path.append(best)
            self._take(best, run)
            number = best
        chain = Chain(depth)
        self.chains.append(chain)
        self.tasks.append(("close", chain))
        for index in reversed(range(len(path))):
            following = path[index + 1] if index + 1 < len(path) else None
            self.tasks.append(("step", path[index], depth, chain, index > 0, following, run))

    def _step(self, number: int, depth: int, chain: Chain, continues: bool, following: int | None, run: int) -> None:
        position = len(self.entries)
        chain.steps.append(position)
        self.entries.append(Entry("node", number, depth, continues=continues))
        self.drawn[number] = 1
        self.drawn_at[number] = position
        node = self.nodes[number]
        branches = list(node.next)
        if following is not None:
            branches.remove(following)  # once: an input used twice (h * h) is also a reference
        elif run >= 0:
            # The last node of an iteration: where its chain goes on, the run's next iteration
            # (the run itself) or what follows the run, is not drawn again under it.
            for goes_on in (run, *self.nodes[run].next):
                if goes_on in branches:
                    branches.remove(goes_on)
                    break
        for child in reversed(branches):
            self.tasks.append(("branch", child, depth + 1, run))
        if node.repeat is not None:
            self.tasks.append(("body", number, depth + 1, "last", 0))
            self.tasks.append(("body", number, depth + 1, "gap", 0))
            self.tasks.append(("body", number, depth + 1, "first", 0))

    def _branch(self, child: int, depth: int, run: int) -> None:
        if child < 0 or child >= len(self.nodes):
            self.entries.append(Entry("cut", UNDESCRIBED, depth))
        elif self._free(child, run):
            self.tasks.append(("chain", child, depth, run))
        else:
            self.entries.append(Entry("ref", child, depth, below=not self.drawn[child], other_iteration=child == run))

    def _body(self, run: int, depth: int, which: str, index: int) -> None:
        if which == "gap":
            self.entries.append(Entry("gap", run, depth))
            return
        repeat = self.nodes[run].repeat
        assert repeat is not None
        members = repeat.first if which == "first" else repeat.last
        while index < len(members):
            member = members[index]
            index += 1
            if 0 <= member < len(self.nodes) and self.run_of.get(member) == run and not self.body_taken[member]:
                self.tasks.append(("body", run, depth, which, index))
                self.tasks.append(("chain", member, depth, run))
                return
