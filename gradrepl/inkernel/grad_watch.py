"""What happens to .grads around backward calls, read cheaply enough for every call of a loop:
a grad's key (its object and version), what changed a leaf's grad between two traced calls
(`GradMemory`: opt.zero_grad(), x.grad = None, x.grad.zero_()), the norms of grads, and what a
tensor's own hooks (`t.register_hook`) did to its grad in a call (`HookWatch`). Never imports torch.
"""

from __future__ import annotations

import math
import weakref
from collections.abc import Iterable
from typing import Any

from gradrepl.protocol.backward import HookEffect, Norm, ResetKind

GradKey = tuple[int, int] | None  # (id of the grad tensor, its version); None: no grad
_MEMORY_LIMIT = 100_000  # tensors remembered; past it the memory starts afresh


def grad_key(grad: Any) -> GradKey:
    return None if grad is None else (id(grad), grad._version)


def plain_norm(value: float) -> Norm:
    """A norm as JSON carries it: "nan" and "inf" as text."""
    if math.isfinite(value):
        return value
    return "nan" if math.isnan(value) else "inf"


NORM_ELEMENTS = 1 << 14  # grad elements the norms of a call may read, on average over the calls
NORM_CREDIT = 1 << 24  # how much a run of calls may save up (a big model's grads, now and then)
NORM_CREDIT_AT_START = 1 << 20


class NormBudget:
    """Whether a call's grad norms are taken: reading every grad costs a pass over its memory,
    as much as a third of an optimizer step; each call adds NORM_ELEMENTS to a credit, and a
    call's norms are taken when the credit covers its grads' elements. Grads of up to 16,384
    elements get theirs on every call; a model of 200,000 parameters on about every 12th."""

    def __init__(self) -> None:
        self._credit = NORM_CREDIT_AT_START

    def allows(self, grads: list[Any]) -> bool:
        self._credit = min(self._credit + NORM_ELEMENTS, NORM_CREDIT)
        try:
            elements = sum(g.numel() for g in grads)
        except Exception:
            return False
        if elements > self._credit:
            return False
        self._credit -= elements
        return True


def norms_of(torch: Any, grads: list[Any]) -> list[Norm]:
    """The 2-norm of each grad (None where it has none: a sparse or nested grad, say), in one
    foreach call when they allow it."""
    if not grads:
        return []
    try:
        return [plain_norm(float(n)) for n in torch.stack(torch._foreach_norm(grads)).tolist()]
    except Exception:
        pass
    found: list[Norm] = []
    for grad in grads:
        try:
            found.append(plain_norm(float(torch.linalg.vector_norm(grad))))
        except Exception:
            found.append(None)
    return found


def total_norm(norms: Iterable[Norm]) -> Norm:
    """The norm of the grads together (as clip_grad_norm_ gives it), from each one's norm."""
    squares = 0.0
    seen = False
    for norm in norms:
        if isinstance(norm, str):
            return norm if norm == "nan" else "inf"
        if norm is not None:
            squares += norm * norm
            seen = True
    return plain_norm(math.sqrt(squares)) if seen else None


class GradMemory:
    """Each tensor's grad key as the last traced call left it (or as the cell found it), to tell
    what changed the grad before the next call. Kept by id, checked by a weak reference."""

    def __init__(self) -> None:
        self._seen: dict[int, tuple[weakref.ref[Any], GradKey]] = {}

    def reset_of(self, torch: Any, tensor: Any, key: GradKey) -> ResetKind | None:
        """What happened to `tensor`'s grad since it was remembered, given its key now; None:
        nothing, or it was never seen."""
        entry = self._seen.get(id(tensor))
        if entry is None or entry[1] == key or entry[0]() is not tensor:
            return None
        return _reset_kind(torch, tensor, entry[1], key)

    def before_call(self, torch: Any, tensors: list[Any]) -> tuple[list[GradKey], list[tuple[Any, ResetKind]]]:
        """`reset_of` for many tensors at once (a brief call's leaves): each one's key now, and
        the tensors whose grads were reset since, with how."""
        seen = self._seen
        keys: list[GradKey] = []
        resets: list[tuple[Any, ResetKind]] = []
        for tensor in tensors:
            grad = tensor.grad
            key = None if grad is None else (id(grad), grad._version)
            keys.append(key)
            entry = seen.get(id(tensor))
            if entry is not None and entry[1] != key and entry[0]() is tensor:
                resets.append((tensor, _reset_kind(torch, tensor, entry[1], key)))
        return keys, resets

    def after_call(self, tensors: list[Any], keys: list[GradKey]) -> list[tuple[Any, GradKey, Any, GradKey]]:
        """`remember` for many tensors at once; those whose grads changed since `keys` (as
        before_call gave them), each with its key before, its grad now and that one's key."""
        seen = self._seen
        written = []
        for tensor, old in zip(tensors, keys, strict=True):
            grad = tensor.grad
            key = None if grad is None else (id(grad), grad._version)
            entry = seen.get(id(tensor))
            if entry is not None and entry[0]() is tensor:
                if entry[1] != key:
                    seen[id(tensor)] = (entry[0], key)
            else:
                self.remember(tensor, key)
            if key != old:
                written.append((tensor, old, grad, key))
        return written

    def remember(self, tensor: Any, key: GradKey) -> None:
        entry = self._seen.get(id(tensor))
        if entry is not None and entry[0]() is tensor:
            self._seen[id(tensor)] = (entry[0], key)
            return
        if len(self._seen) >= _MEMORY_LIMIT:
            self._seen.clear()
        try:
            self._seen[id(tensor)] = (weakref.ref(tensor), key)
        except TypeError:
            pass

    def refresh(self) -> None:
        """The grads as they are now (a cell starts): what earlier cells did is not reported again."""
        for ident, (ref, _) in list(self._seen.items()):
            tensor = ref()
            if tensor is None:
                del self._seen[ident]
            else:
                try:
                    self._seen[ident] = (ref, grad_key(tensor.grad))
                except Exception:
                    del self._seen[ident]


def _reset_kind(torch: Any, tensor: Any, old: GradKey, key: GradKey) -> ResetKind:
    if key is None:
        return "cleared"
    if old is None or old[0] != key[0]:
        return "replaced"
    return "zeroed" if _all_zero(torch, getattr(tensor, "grad", None)) else "changed"


def _all_zero(torch: Any, grad: Any) -> bool:
    try:
        return not bool(grad.any())
    except Exception:
        return False


class _Observed:
    """The grad one tensor's hooks were given and what they passed on, over one call."""

    def __init__(self, torch: Any, guard: Any, name: str) -> None:
        self.torch, self.guard, self.name = torch, guard, name
        self.given: Any = None
        self.norm_in: Norm = None
        self.norm_out: Norm = None
        self.changed = False
        self.seen = False

    def first(self, grad: Any) -> None:
        self.given = grad
        self.norm_in = self._norm(grad)

    def last(self, grad: Any) -> None:
        self.seen = True
        self.norm_out = self._norm(grad)
        if grad is not self.given:
            try:
                with self.guard(self.torch):
                    self.changed = self.changed or not bool(self.torch.equal(grad, self.given))
            except Exception:
                self.changed = True
        self.given = None

    def _norm(self, grad: Any) -> Norm:
        try:
            with self.guard(self.torch):
                return norms_of(self.torch, [grad.detach()])[0]
        except Exception:
            return None


class HookWatch:
    """For one call, an observer before the first and after the last of each given tensor's
    own hooks (`_backward_hooks`, the ordered dict torch runs a tensor's hooks from); each
    returns None, so the grads pass as they would. `stop()` takes them out again."""

    def __init__(self, torch: Any, guard: Any, tensors: Iterable[tuple[str, Any]]) -> None:
        self._observed: list[_Observed] = []
        self._installed: list[tuple[dict[Any, Any], object, object]] = []
        for name, tensor in tensors:
            hooks = getattr(tensor, "_backward_hooks", None)
            if not hooks:
                continue
            observed = _Observed(torch, guard, name)
            first, last = object(), object()
            users = list(hooks.items())
            hooks.clear()
            hooks[first] = observed.first
            hooks.update(users)
            hooks[last] = observed.last
            self._observed.append(observed)
            self._installed.append((hooks, first, last))

    def __bool__(self) -> bool:
        return bool(self._installed)

    def stop(self) -> None:
        installed, self._installed = self._installed, []
        for hooks, first, last in installed:
            hooks.pop(first, None)
            hooks.pop(last, None)

    def effects(self) -> list[HookEffect]:
        return [HookEffect(o.name, o.norm_in, o.norm_out, o.changed) for o in self._observed if o.seen]
