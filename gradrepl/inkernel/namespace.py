"""The user's names: every tensor reachable by a name the user wrote (`named_tensors`: plain
names, a module's parameters and buffers, one level of lists, tuples and dicts; snapshot.py
describes them), the `Budget` of time the probe's looking and describing has, and `guarded`,
the context all of the probe's reads of torch run in. Never imports torch: it is looked up in
sys.modules or given.

The user's objects are read without calling a method their class could override: what a
value is comes from `type()` and the C-level subclass check (`isinstance` would read a
`__class__` property), a module's submodules, parameters and buffers from its own dicts
(`named_modules` is a method a subclass may override, and calls its submodules'), a key's
label from `str`'s and `int`'s own `repr`. What is left is bounded by a `Budget` of time:
once it runs out the report says what it has, with a note.
"""

from __future__ import annotations

import contextlib
import itertools
import re
import sys
import time
import warnings
from collections.abc import Callable, Iterator
from typing import Any

MAX_CONTAINER_ITEMS = 64
REPORT_SECONDS = 3.0  # a cell's report: looking up the names, then describing the tensors
NAMES_SECONDS = 1.0  # looking up the names at a backward call (unnamed past it)

_IPYTHON_CACHE_NAME = re.compile(r"^(_+|_\d+|_i+\d*|_[oid]h|__\w+__)$")


class Budget:
    """Time for one report (or one look-up of names): `out()` once `seconds` have passed, and
    from then on. It counts what was left out, for the report's note."""

    __slots__ = ("_clock", "_end", "_out", "names_left", "names_total", "seconds", "unread")

    def __init__(self, seconds: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.seconds = seconds
        self._clock = clock
        self._end = clock() + seconds
        self._out = False
        self.names_left = 0  # names not looked at, of names_total
        self.names_total = 0
        self.unread = 0  # tensors found but listed without their values

    def out(self) -> bool:
        if not self._out and self._clock() > self._end:
            self._out = True
        return self._out

    def note(self) -> str | None:
        parts = []
        if self.names_left:
            parts.append(f"{self.names_left:,} of {self.names_total:,} names not looked at")
        if self.unread:
            parts.append(f"{self.unread:,} tensors listed without their values")
        if not parts:
            return None
        return f"the probe's time budget ({self.seconds:g} s) ran out: " + "; ".join(parts)


_subclass = type.__subclasscheck__  # (cls, sub): C-level, whatever a metaclass defines
_own = object.__getattribute__  # an attribute as stored, past a class's __getattribute__


def _is(value: Any, cls: type) -> bool:
    """isinstance(value, cls) from value's type alone: a `__class__` property is not read."""
    return _subclass(cls, type(value))


def _user_names(shell: Any) -> list[tuple[str, Any]]:
    hidden = shell.user_ns_hidden
    missing = object()
    names = []
    for name, value in list(shell.user_ns.items()):
        if type(name) is not str or (name.startswith("_") and _IPYTHON_CACHE_NAME.match(name)):
            continue
        if hidden.get(name, missing) is value:
            continue
        names.append((name, value))
    return names


def _key_label(key: Any) -> str | None:
    kind = type(key)
    if _subclass(str, kind):
        return str.__repr__(key)
    if _subclass(int, kind):  # bool included
        return int.__repr__(key)
    return None


# Where a name came from: a name the user wrote, an item of their list, tuple or dict, or a
# module's parameter or buffer (ModuleOrigin). A tensor found under several names is listed
# under its first module name, else its first plain name, else its first item name.
PLAIN = "name"
ITEM = "item"
ModuleOrigin = tuple[tuple[str, ...], tuple[str, ...], bool]  # labels from the user's name down, classes, buffer
Origin = str | ModuleOrigin
Note = tuple[tuple[Any, ...], str]  # (what it is about, for saying it once; the text)


def named_tensors(torch: Any, shell: Any, budget: Budget | None = None) -> Iterator[tuple[str, Any]]:
    """Each tensor reachable by a name the user wrote, one container level deep (a tensor
    under two names comes twice). Once `budget` is out, the names left are counted in it."""
    for name, value, _ in tensors_with_origins(torch, shell, None, budget):
        yield name, value


def tensors_with_origins(torch: Any, shell: Any, notes: list[Note] | None = None,
                         budget: Budget | None = None) -> Iterator[tuple[str, Any, Origin]]:
    """named_tensors, each with where its name came from. A container of tensors longer than
    MAX_CONTAINER_ITEMS gets a note in `notes`, keyed by the container object."""
    tensor_type = torch.Tensor
    module_type = torch.nn.Module
    names = _user_names(shell)
    for looked, (name, value) in enumerate(names):
        if budget is not None and budget.out():
            budget.names_left, budget.names_total = len(names) - looked, len(names)
            return
        kind = type(value)
        if _subclass(tensor_type, kind):
            yield name, value, PLAIN
        elif _subclass(module_type, kind):
            yield from _module_tensors(module_type, name, value)
        elif kind is list or kind is tuple:
            found = False
            for index, item in enumerate(value[:MAX_CONTAINER_ITEMS]):
                if _is(item, tensor_type):
                    found = True
                    yield f"{name}[{index}]", item, ITEM
            if found and notes is not None and len(value) > MAX_CONTAINER_ITEMS:
                notes.append(_cut_container(name, value))
        elif kind is dict:
            found = False
            for count, (key, item) in enumerate(list(itertools.islice(dict.items(value), MAX_CONTAINER_ITEMS + 1))):
                if count >= MAX_CONTAINER_ITEMS:
                    if found and notes is not None:
                        notes.append(_cut_container(name, value))
                    break
                if not _is(item, tensor_type):
                    continue
                label = _key_label(key)
                if label is not None:
                    found = True
                    yield f"{name}[{label}]", item, ITEM


def _cut_container(name: str, value: Any) -> Note:
    """Said when the container is first cut, not after every cell: `g = globals()` grows by a
    few names each cell, and its count with it."""
    return ("container cut", name, id(value)), f"{name}: the first {MAX_CONTAINER_ITEMS} of its {len(value):,} items are listed"


def _own_dict(module: Any, attribute: str) -> dict[str, Any]:
    try:
        value = _own(module, attribute)
    except Exception:
        return {}
    return value if _is(value, dict) else {}


def _submodules(module_type: Any, module: Any) -> Iterator[tuple[tuple[str, ...], tuple[str, ...], Any]]:
    """What `named_modules()` lists (each module once, depth first), read from each module's
    own `_modules` dict: each with its labels from the top and the classes along them."""
    seen: set[int] = set()
    stack: list[tuple[tuple[str, ...], tuple[str, ...], Any]] = [((), (type(module).__name__,), module)]
    while stack:
        labels, classes, current = stack.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        yield labels, classes, current
        children = list(dict.items(_own_dict(current, "_modules")))
        for label, child in reversed(children):
            if child is not None and type(label) is str and _is(child, module_type):
                stack.append(((*labels, label), (*classes, type(child).__name__), child))


def _module_tensors(module_type: Any, name: str, module: Any) -> list[tuple[str, Any, Origin]]:
    """What `named_parameters()` then `named_buffers()` list (each tensor once, under its first
    name), from one walk of the submodules rather than two."""
    parameters: list[tuple[str, Any, Origin]] = []
    buffers: list[tuple[str, Any, Origin]] = []
    seen_parameters: set[int] = set()
    seen_buffers: set[int] = set()
    for labels, classes, submodule in _submodules(module_type, module):
        own_parameters, own_buffers = _own_dict(submodule, "_parameters"), _own_dict(submodule, "_buffers")
        if not own_parameters and not own_buffers:
            continue
        path = (name, *labels)
        start = ".".join(path) + "."
        for label, item in dict.items(own_parameters):
            if item is not None and id(item) not in seen_parameters:
                seen_parameters.add(id(item))
                parameters.append((start + label, item, (path, classes, False)))
        for label, item in dict.items(own_buffers):
            if item is not None and id(item) not in seen_buffers:
                seen_buffers.add(id(item))
                buffers.append((start + label, item, (path, classes, True)))
    return parameters + buffers


class guarded:
    """No autograd recording, no __torch_function__ overrides (a subclass's, a mode's: the
    user's, or --nan-check's, which must not see the probe's own ops); with `quiet`, no warnings.

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
            disable: Any = getattr(torch._C, "DisableTorchFunction", None)
            if disable is None:
                disable = getattr(torch._C, "DisableTorchFunctionSubclass", contextlib.nullcontext)
            self._no_subclasses = disable()
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
