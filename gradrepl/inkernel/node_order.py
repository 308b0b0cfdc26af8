"""The order a backward call runs the nodes of its graph in: recorded as the engine runs them
(`RunRecorder`), or, for a graph too big to hook, predicted by the engine's rule replayed
(`predicted_order`). Never imports torch.
"""

from __future__ import annotations

from typing import Any

from gradrepl.inkernel import walker


class RunRecorder:
    """Notes each node of a walked graph when the engine runs it, through node pre-hooks that
    return None; `stop()` removes them all. (torch runs a node's pre-hooks before the node, the
    AccumulateGrad nodes included; it runs none for a node it skips, as autograd.grad skips the
    nodes its `inputs` do not need.)"""

    def __init__(self, walked: walker.Walk, hooked: bool = True) -> None:
        self.walked = walked
        self.ran: list[int] = []  # indices into walked.nodes, in the order the nodes ran
        self._handles: list[Any] = []
        if not hooked:  # a subclass notes the nodes its own way
            return
        note = self.ran.append
        try:
            for index, node in enumerate(walked.nodes):
                self._handles.append(node.register_prehook(lambda grad_outputs, index=index: note(index)))
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        handles, self._handles = self._handles, []
        for handle in handles:
            try:
                handle.remove()
            except Exception:
                pass

    def accumulation_order(self) -> dict[int, int]:
        """id() of each leaf an AccumulateGrad node wrote -> when, among them, it ran."""
        nodes = self.walked.nodes
        order: dict[int, int] = {}
        for index in self.ran:
            variable = walker.accumulated_leaf(nodes[index])
            if variable is not None:
                order.setdefault(id(variable), len(order))
        return order

    def node_names(self, limit: int) -> list[str]:
        nodes = self.walked.nodes
        return [walker.node_name(nodes[index]) for index in self.ran[:limit]]


def predicted_order(walked: walker.Walk, starts: list[Any], limit: int) -> list[str]:
    """The names of the first `limit` nodes in the order the engine's rule gives (see `engine_priority`)."""
    return [walker.node_name(node) for node in walker.topological(walked, starts, engine_priority, limit)]


def engine_priority(node: Any) -> int:
    """Of the nodes ready to run, the engine runs the one of highest sequence number first: the
    most recently created, and AccumulateGrad (whose number is the largest, 2**64 - 1) as soon
    as it is ready. The predicted order replays this rule; two nodes run by different threads
    or devices, or two ready AccumulateGrad nodes, may run in another order than predicted."""
    number = getattr(node, "_sequence_nr", None)
    try:
        return int(number()) if number is not None else -1
    except Exception:
        return -1
