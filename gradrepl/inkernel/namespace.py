"""The user's names: every tensor reachable by a name the user wrote (`named_tensors`: plain
names, a module's parameters and buffers, one level of lists, tuples and dicts), the snapshot
that describes them after a cell, and `guarded`, the context all of the probe's reads of torch
run in. Never imports torch: it is looked up in sys.modules or given.
"""

from __future__ import annotations

import contextlib
import itertools
import re
import sys
import warnings
from collections.abc import Iterator
from typing import Any

from gradrepl.inkernel.values import ValuesMemo, describe_tensor

MAX_TENSORS = 2000
MAX_CONTAINER_ITEMS = 64

_IPYTHON_CACHE_NAME = re.compile(r"^(_+|_\d+|_i+\d*|_[oid]h|__\w+__)$")


def _user_names(shell: Any) -> Iterator[tuple[str, Any]]:
    hidden = shell.user_ns_hidden
    missing = object()
    for name, value in list(shell.user_ns.items()):
        if not isinstance(name, str) or (name.startswith("_") and _IPYTHON_CACHE_NAME.match(name)):
            continue
        if hidden.get(name, missing) is value:
            continue
        yield name, value


def _key_label(key: Any) -> str | None:
    if isinstance(key, str):
        return repr(key)
    if isinstance(key, (int, bool)):
        return str(int(key))
    return None


def named_tensors(torch: Any, shell: Any, notes: list[str] | None = None) -> Iterator[tuple[str, Any]]:
    """Each tensor reachable by a name the user wrote, one container level deep. A container
    of tensors longer than MAX_CONTAINER_ITEMS gets a line in `notes`."""
    tensor_type = torch.Tensor
    module_type = torch.nn.Module
    for name, value in _user_names(shell):
        if isinstance(value, tensor_type):
            yield name, value
        elif isinstance(value, module_type):
            yield from _module_tensors(module_type, name, value)
        elif type(value) in (list, tuple):
            found = False
            for index, item in enumerate(value[:MAX_CONTAINER_ITEMS]):
                if isinstance(item, tensor_type):
                    found = True
                    yield f"{name}[{index}]", item
            if found and notes is not None and len(value) > MAX_CONTAINER_ITEMS:
                notes.append(f"{name}: the first {MAX_CONTAINER_ITEMS} of its {len(value):,} items are listed")
        elif type(value) is dict:
            found = False
            for count, (key, item) in enumerate(list(itertools.islice(value.items(), MAX_CONTAINER_ITEMS + 1))):
                if count >= MAX_CONTAINER_ITEMS:
                    if found and notes is not None:
                        notes.append(f"{name}: the first {MAX_CONTAINER_ITEMS} of its {len(value):,} items are listed")
                    break
                label = _key_label(key)
                if label is not None and isinstance(item, tensor_type):
                    found = True
                    yield f"{name}[{label}]", item


def _module_tensors(module_type: Any, name: str, module: Any) -> list[tuple[str, Any]]:
    """What `named_parameters()` then `named_buffers()` list (each tensor once, under its first
    name), from one walk of the submodules rather than two."""
    parameters: list[tuple[str, Any]] = []
    buffers: list[tuple[str, Any]] = []
    seen_parameters: set[int] = set()
    seen_buffers: set[int] = set()
    for prefix, submodule in module_type.named_modules(module):
        own_parameters, own_buffers = submodule._parameters, submodule._buffers
        if not own_parameters and not own_buffers:
            continue
        start = f"{name}.{prefix}." if prefix else f"{name}."
        for label, item in own_parameters.items():
            if item is not None and id(item) not in seen_parameters:
                seen_parameters.add(id(item))
                parameters.append((start + label, item))
        for label, item in own_buffers.items():
            if item is not None and id(item) not in seen_buffers:
                seen_buffers.add(id(item))
                buffers.append((start + label, item))
    return parameters + buffers


class guarded:
    """No autograd recording, no user __torch_function__ overrides; with `quiet`, no warnings.

    Silencing warnings changes Python's warning filters, which makes it forget the warnings
    it has shown once: a user's warning in a loop would be shown again after each silenced
    block. So only the once-a-cell work is quiet; the backward tracer (every call) is not,
    and reads nothing that warns (grads of leaves, copies of values).

    A class rather than a generator: the tracer enters it a few times in every backward call."""

    __slots__ = ("_grad_was", "_no_subclasses", "_quiet", "_silenced", "_torch")

    def __init__(self, torch: Any, quiet: bool = False) -> None:
        self._torch = torch
        self._quiet = quiet

    def __enter__(self) -> None:
        torch = self._torch
        self._grad_was = torch.is_grad_enabled()
        torch._C._set_grad_enabled(False)  # torch.no_grad() without its Python layers
        try:
            self._no_subclasses = getattr(torch._C, "DisableTorchFunctionSubclass", contextlib.nullcontext)()
            self._no_subclasses.__enter__()
            try:
                self._silenced = warnings.catch_warnings() if self._quiet else None
                if self._silenced is not None:
                    self._silenced.__enter__()
                    warnings.simplefilter("ignore")
            except BaseException:
                self._no_subclasses.__exit__(*sys.exc_info())
                raise
        except BaseException:
            torch._C._set_grad_enabled(self._grad_was)
            raise

    def __exit__(self, *exc_info: Any) -> None:
        try:
            try:
                if self._silenced is not None:
                    self._silenced.__exit__(*exc_info)
            finally:
                self._no_subclasses.__exit__(*exc_info)
        finally:
            self._torch._C._set_grad_enabled(self._grad_was)


def snapshot(shell: Any, memo: ValuesMemo | None = None) -> dict[str, Any]:
    memo = memo or ValuesMemo()
    memo.next_snapshot()
    torch = sys.modules.get("torch")
    if torch is None or not hasattr(torch, "Tensor") or not hasattr(torch, "nn"):
        return {"tensors": [], "notes": []}
    tensors: list[dict[str, Any]] = []
    notes: list[str] = []
    skipped = 0
    with guarded(torch, quiet=True):
        for name, t in named_tensors(torch, shell, notes):
            if len(tensors) >= MAX_TENSORS:
                skipped += 1
                continue
            try:
                tensors.append(describe_tensor(torch, name, t, memo))
            except Exception as exc:
                notes.append(f"{name}: not shown ({type(exc).__name__})")
    if skipped:
        notes.append(f"{skipped} more tensors not shown (limit {MAX_TENSORS})")
    return {"tensors": tensors, "notes": notes}
