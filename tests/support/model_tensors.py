"""Tensor descriptions shaped as the probe sends them for models, built without torch: the
parameters of nn.Linear layers and nn.Sequential stacks, plain tensors, previews and grads
(for the inspector's kernel-free tests and its benchmark)."""

from __future__ import annotations

import math

from gradrepl.protocol import Stats, TensorInfo, Values


def values(shape: tuple[int, ...], start: float = 0.1) -> Values:
    """A preview as the probe cuts it (first and last 3 entries of each long dimension)."""

    def nested(dims: tuple[int, ...], offset: float) -> object:
        if not dims:
            return round(offset, 4)
        size = dims[0]
        kept = list(range(size)) if size <= 6 else [0, 1, 2, "…", size - 3, size - 2, size - 1]
        return tuple("…" if i == "…" else nested(dims[1:], offset + 0.0137 * float(i) - 0.25) for i in kept)

    count = math.prod(shape)
    stats = Stats(round(abs(start) * math.sqrt(count), 6), -abs(start), abs(start), 0, 0, False, count)
    return Values(nested(shape, start), truncated=any(size > 6 for size in shape), stats=stats)


def parameter(path: tuple[str, ...], types: tuple[str, ...], label: str, shape: tuple[int, ...], *,
              grad: float | None = None, buffer: bool = False, aliases: tuple[str, ...] = ()) -> TensorInfo:
    return TensorInfo(
        ".".join((*path, label)), shape, "float32", "cpu", not buffer, True, None, data=values(shape),
        grad=None if grad is None else values(shape, grad), module_path=path, module_types=types, buffer=buffer,
        aliases=aliases,
    )


def linear(path: tuple[str, ...], types: tuple[str, ...], inputs: int, outputs: int,
           grad: float | None = None) -> list[TensorInfo]:
    return [parameter(path, types, "weight", (outputs, inputs), grad=grad),
            parameter(path, types, "bias", (outputs,), grad=grad)]


def sequential(name: str, layers: int, width: int = 8, grad: float | None = None) -> list[TensorInfo]:
    """nn.Sequential(*[nn.Linear(width, width) for _ in range(layers)]) named `name`."""
    found: list[TensorInfo] = []
    for index in range(layers):
        found += linear((name, str(index)), ("Sequential", "Linear"), width, width, grad)
    return found


def plain(name: str, shape: tuple[int, ...] = (2,), *, grad_fn: str | None = None,
          aliases: tuple[str, ...] = ()) -> TensorInfo:
    return TensorInfo(name, shape, "float32", "cpu", grad_fn is not None, grad_fn is None, grad_fn,
                      data=values(shape), aliases=aliases)
