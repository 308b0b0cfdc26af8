"""Gradient health over steps: a tensor's grad norm and ‖grad‖/‖param‖ across the backward calls
that wrote its grad, and the alerts they raise (vanishing, exploding)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from gradrepl.protocol.json_forms import Json, as_tuple

AlertKind = Literal["vanishing", "exploding"]
# Defaults a practitioner would recognise: a grad a millionth of its parameter's size hardly
# moves it (with any learning rate people use); one ten times its size, or not finite, throws
# the parameter away in one step.
VANISHING_RATIO = 1e-6
EXPLODING_RATIO = 10.0
HEALTH_ENV = "GRADREPL_GRAD_HEALTH"  # "0": no history kept


@dataclass(frozen=True)
class GradHistory:
    """The calls (numbered across the session) that wrote a tensor's grad and had its norm
    taken, with the grad's norm and the tensor's own (`every` calls a point once long)."""

    calls: tuple[int, ...]
    grad_norm: tuple[float | str | None, ...]  # "nan" / "inf" when not finite
    param_norm: tuple[float | None, ...]
    every: int = 1

    def ratio(self, at: int = -1) -> float | str | None:
        """‖grad‖/‖param‖ at a point (the last by default); "nan"/"inf" for a grad not finite."""
        if not self.calls:
            return None
        grad, param = self.grad_norm[at], self.param_norm[at]
        if isinstance(grad, str) or grad is None:
            return grad
        if not param:
            return None
        return grad / param

    def to_json(self) -> Json:
        return {"calls": list(self.calls), "grad_norm": list(self.grad_norm), "param_norm": list(self.param_norm),
                "every": self.every}

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> GradHistory:
        return cls(tuple(int(c) for c in d.get("calls") or ()), as_tuple(d.get("grad_norm")),
                   as_tuple(d.get("param_norm")), int(d.get("every") or 1))


@dataclass(frozen=True)
class HealthAlert:
    """Vanishing or exploding gradients in a module (or a named leaf): which, and its worst tensors."""

    kind: AlertKind
    module: str  # "model.0"; a leaf's own name
    tensors: tuple[str, ...]  # those past the threshold
    of: int  # the module's tensors with a history
    ratio: float | str | None  # the worst ‖grad‖/‖param‖ among them
    call: int  # the backward call it was seen at

    def to_json(self) -> Json:
        return {"kind": self.kind, "module": self.module, "tensors": list(self.tensors), "of": self.of,
                "ratio": self.ratio, "call": self.call}

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> HealthAlert:
        kind: AlertKind = "exploding" if d.get("kind") == "exploding" else "vanishing"
        return cls(kind, str(d.get("module")), as_tuple(d.get("tensors")), int(d.get("of") or 0), d.get("ratio"),
                   int(d.get("call") or 0))
