"""`--nan-check`: where a NaN or an Inf was born, inside the kernel.

Forward: while a cell runs, a TorchFunctionMode sees every torch function the cell calls
(and the library code it calls: `nn.Linear` reaches `F.linear`); each floating result is
checked (`isfinite().all()`, one pass), and only a result that is not finite has its inputs
checked: an op whose inputs were all finite made the NaN, one whose inputs were not passed
it on and is not reported. An in-place op's tensor is checked before it runs, since after it
the input is the output. Each op whose result needs a gradient notes the cell and line that
made its node, so a backward birth can say where its node came from.

Backward: from the node gradients of each traced call (node_grads.py): a node that was
given only finite gradients and passed on one that is not.

The probe's own work runs under namespace.guarded, which turns the mode off. Never imports
torch: the mode's class is made from the torch it is given.
"""

from __future__ import annotations

import linecache
import sys
from collections.abc import Iterator
from types import FrameType
from typing import Any

from gradrepl.inkernel import walker
from gradrepl.inkernel.errors import CellOrigins
from gradrepl.inkernel.node_grads import GradRecorder, preview_of, quick_copy
from gradrepl.protocol.node_grads import GradPreview, NodeGrads, SavedValue
from gradrepl.protocol.nonfinite import NonFinite, finite

MAX_BIRTHS = 20  # reported per cell; the first is the one that matters
MAX_SITES = 200_000  # nodes whose cell and line are remembered
_SKIPPED = frozenset({"__get__", "__set__", "__repr__", "__format__", "__str__", "tolist", "item", "numpy",
                      "__bool__", "__len__", "__iter__", "__hash__", "__index__", "__int__", "__float__"})


class Stamp:
    """A cell, by its execution count once it has run (the count is known at its end)."""

    __slots__ = ("number",)

    def __init__(self) -> None:
        self.number: int | None = None


Site = tuple[Stamp | None, int | None, str | None, str | None]  # cell, line, script file, line's text
# phase, op, site, inputs, outputs: made into NonFinite records at the end of the cell
Birth = tuple[str, str, Site, tuple[GradPreview | None, ...], tuple[GradPreview | None, ...], tuple[SavedValue, ...]]


def op_name(func: Any) -> str:
    name = getattr(func, "__name__", None) or repr(func)
    module = getattr(func, "__module__", None) or ""
    if module == "torch.nn.functional":
        return f"F.{name}"
    if module.startswith("torch"):
        return f"{module}.{name}"
    return f"Tensor.{name}"


def _tensors(value: Any, tensor: type) -> Iterator[Any]:
    if isinstance(value, tensor):
        yield value
    elif isinstance(value, (tuple, list)):
        for item in value:
            if isinstance(item, tensor):
                yield item


class NanWatch:
    """One kernel's NaN check: `enabled`, and the births of the cell running (`start_cell`)."""

    def __init__(self, origins: CellOrigins) -> None:
        self.origins = origins
        self.cell: Stamp | None = None  # the cell running
        self._in_cell = False
        self.enabled = False
        self.births: list[Birth] = []
        self.sites: dict[walker.NodeKey, Site] = {}
        self._mode: Any = None
        self._entered = False
        self._torch: Any = None

    # ------------------------------------------------------------ the cell

    def start_cell(self, torch: Any) -> None:
        self.births = []
        self.cell = Stamp()
        self._in_cell = True
        self._enter(torch)

    def torch_imported(self, torch: Any) -> None:
        """torch was imported, maybe by the cell running (`import torch` in its first line)."""
        if self._in_cell:
            self._enter(torch)

    def _enter(self, torch: Any) -> None:
        if not self.enabled or torch is None or self._entered:
            return
        try:
            if self._mode is None or self._torch is not torch:
                self._mode, self._torch = _mode_class(torch)(self, torch), torch
            self._mode.__enter__()
            self._entered = True
        except Exception:
            self._entered = False

    def end_cell(self, count: int | None) -> list[NonFinite]:
        """The cell's births, first first; `count` is its execution count."""
        self._in_cell = False
        if self.cell is not None:
            self.cell.number = count
        if self._entered:
            self._entered = False
            try:
                self._mode.__exit__(None, None, None)
            except Exception:  # the cell left a mode of its own above ours
                pass
        return [NonFinite("backward" if phase == "backward" else "forward", op, stamp.number if stamp else None, line,
                          inputs, outputs, file, text, saved)
                for phase, op, (stamp, line, file, text), inputs, outputs, saved in self.births]

    # ------------------------------------------------------------ forward

    def site(self) -> Site:
        """The cell and line running the op: the innermost frame of a cell's code."""
        frame: FrameType | None = sys._getframe(1)
        cells = self.origins.cell_names
        while frame is not None and frame.f_code.co_filename not in cells:
            frame = frame.f_back
        if frame is None:
            return self.cell, None, None, None
        code_name, line = frame.f_code.co_filename, frame.f_lineno
        text = linecache.getline(code_name, line).strip() or None
        file, script_line = self.origins.script_line(code_name, line)
        return self.cell, script_line if script_line is not None else line, file, text

    def note_site(self, outputs: list[Any]) -> None:
        if len(self.sites) > MAX_SITES:
            self.sites.clear()
        site: Site | None = None
        for out in outputs:
            node = out.grad_fn
            if node is not None:
                site = site or self.site()
                self.sites[walker.node_key(node)] = site

    def forward_birth(self, torch: Any, func: Any, args: tuple[Any, ...], kwargs: dict[str, Any], outputs: list[Any],
                      before: bool | None) -> None:
        """A result of `func` is not finite: reported when its inputs were (`before`: the
        in-place op's tensor, checked before it ran)."""
        tensor = torch.Tensor
        inputs = [t for value in (*args, *kwargs.values()) for t in _tensors(value, tensor)]
        floating = [t for t in inputs if t.is_floating_point() or t.is_complex()]
        checked = floating[1:] if before is not None else floating
        if before is False or not all(bool(torch.isfinite(t).all()) for t in checked):
            return
        if len(self.births) >= MAX_BIRTHS:
            return
        self.births.append(("forward", op_name(func), self.site(), tuple(_glance(torch, t) for t in inputs),
                            tuple(_glance(torch, t) for t in outputs), ()))

    # ------------------------------------------------------------ backward

    def backward_births(self, recorder: GradRecorder, records: tuple[NodeGrads, ...] | None) -> None:
        """The nodes of a traced call that were given finite gradients and passed on one that
        is not; from the call's records, or (a check-only recorder) from the nodes it copied."""
        nodes = recorder.walked.nodes
        finished = recorder.finished()
        for at, walk_index in enumerate(finished):
            if len(self.births) >= MAX_BIRTHS:
                return
            if records is not None:
                record = records[at]
                given, passed, name = record.grad_outputs, record.grad_inputs, record.node
            else:
                copies_in, copies_out = recorder.copies[walk_index]
                given = tuple(preview_of(self._torch, c) for c in copies_in)
                passed = tuple(preview_of(self._torch, c) for c in copies_out)
                name = walker.node_name(nodes[walk_index])
            if all(finite(g) for g in given) and not all(finite(g) for g in passed):
                site = self.sites.get(walker.node_key(nodes[walk_index]), (None, None, None, None))
                saved = records[at].saved if records is not None else tuple(
                    SavedValue(saved_name, recorder.name_of(tensor), preview_of(self._torch, copy))
                    for saved_name, tensor, copy in recorder.saved_seen.get(walk_index, ()))
                self.births.append(("backward", name, site, given, passed, saved))


def _glance(torch: Any, t: Any) -> GradPreview | None:
    try:
        with torch._C.DisableTorchFunction():
            return preview_of(torch, quick_copy(torch, t.detach()))
    except Exception:
        return None


def _mode_class(torch: Any) -> type:
    """The TorchFunctionMode that checks each op's results (see the module)."""
    tensor = torch.Tensor

    class NanCheckMode(torch.overrides.TorchFunctionMode):
        def __init__(self, watch: NanWatch, torch: Any) -> None:
            super().__init__()
            self.watch = watch

        def __torch_function__(self, func: Any, types: Any, args: tuple[Any, ...] = (), kwargs: Any = None) -> Any:
            kwargs = kwargs or {}
            name = getattr(func, "__name__", "")
            if name in _SKIPPED:
                return func(*args, **kwargs)
            before = None
            if name.endswith("_") and not name.startswith("_") and args and isinstance(args[0], tensor):
                first = args[0]
                if first.is_floating_point() or first.is_complex():
                    before = bool(torch.isfinite(first).all())
            out = func(*args, **kwargs)
            try:
                outputs = list(_tensors(out, tensor))
                for result in outputs:
                    if (result.is_floating_point() or result.is_complex()) and not bool(torch.isfinite(result).all()):
                        self.watch.forward_birth(torch, func, args, kwargs, outputs, before)
                        break
                if torch.is_grad_enabled():
                    self.watch.note_site(outputs)
            except Exception:
                pass  # the check never breaks the user's op
            return out

    return NanCheckMode
