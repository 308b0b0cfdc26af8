"""The grads one backward call writes, told from each tensor's grad before and after it (its
object and version; in a call described in full, its values too), with their norms and what
reset them since the last call saw them. Never imports torch."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

from gradrepl.inkernel.call_parts import KnownNames, as_list
from gradrepl.inkernel.grad_watch import GradKey, GradMemory, NormBudget, norms_of, total_norm
from gradrepl.inkernel.traced_call import TracedCall, TracedLeafChange
from gradrepl.protocol.backward import GradReset


class Tracked(NamedTuple):
    """A tensor whose grad a call may write, as it was before the call."""

    tensor: Any
    name: str
    before: Any  # a capture (None in a brief call)
    key: GradKey
    retained: bool  # a non-leaf's grad, kept by retain_grad()


class GradLedger:
    """Before and after each call: what changed the grads since the last call, and what it wrote;
    and the names found for the tensors of calls in brief (`known`)."""

    def __init__(self, capture: Callable[[Any, Any], Any]) -> None:
        self._capture = capture
        self.memory = GradMemory()
        self.known = KnownNames()
        self.norms = NormBudget()

    def track(self, torch: Any, tracked: dict[int, Tracked], call: TracedCall, tensor: Any, name: str,
              retained: bool = False) -> None:
        """Notes `tensor`'s grad before the call, values too, and what changed it since the
        last call saw it."""
        if id(tensor) in tracked:
            return
        grad = tensor.grad
        key = None if grad is None else (id(grad), grad._version)
        reset = self.memory.reset_of(torch, tensor, key)
        if reset is not None:
            call.resets.append(GradReset(name, reset))
        tracked[id(tensor)] = Tracked(tensor, name, None if grad is None else self._capture(torch, grad), key, retained)

    def written(self, torch: Any, call: TracedCall, tracked: dict[int, Tracked]) -> tuple[list[TracedLeafChange], list[int]]:
        """The grads the call wrote (with their norms, and the call's norm), and the id of each
        one's tensor. A call in full compares values too: a grad written with the same values is
        no change."""
        found: list[tuple[Tracked, Any]] = []
        for entry in tracked.values():
            grad = entry.tensor.grad
            new_key = None if grad is None else (id(grad), grad._version)
            self.memory.remember(entry.tensor, new_key)
            if new_key == entry.key:
                continue
            new = None if grad is None else self._capture(torch, grad)
            old = entry.before
            if not call.brief and ((new is None and old is None) or (
                    new is not None and old is not None and new.same_as(old, torch))):
                continue
            found.append((entry, new))
        grads = [entry.tensor.grad for entry, _ in found]
        present = [g for g in grads if g is not None]
        norms = iter(norms_of(torch, present) if self.norms.allows(present) else [])
        changes = [
            TracedLeafChange(entry.name, entry.before, new, entry.key is not None,
                             None if grad is None else next(norms, None), entry.retained)
            for (entry, new), grad in zip(found, grads, strict=True)
        ]
        call.norm = total_norm(c.norm for c in changes)
        return changes, [id(entry.tensor) for entry, _ in found]

    def returned(self, torch: Any, call: TracedCall, result: Any) -> None:
        """What autograd.grad returned, and its norm."""
        if result is None:
            return
        grads = as_list(result)
        call.grads = [None if g is None else self._capture(torch, g) for g in grads]
        present = [g for g in grads if g is not None]
        if self.norms.allows(present):
            call.norm = total_norm(norms_of(torch, present))
