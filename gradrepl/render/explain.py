"""Plain-language explanations of the autograd errors learners meet most, with the fix,
naming the tensor and the cell. Front-end code: it reads the error's name and message, the
cell's traced backward calls and the line that failed; it never touches torch.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from gradrepl.protocol import BackwardEvent, ErrorFrame, Explanation, RootLabel

if TYPE_CHECKING:
    from gradrepl.client.events import ProbeReport


@dataclass(frozen=True)
class ErrorContext:
    ename: str
    evalue: str
    cell: int | None = None  # the execution count, In [n]
    backward: Sequence[BackwardEvent] = ()  # the cell's traced backward calls
    source_line: str = ""  # the line that raised, as written


def explain(context: ErrorContext) -> Explanation | None:
    """An explanation when the error is one of the known autograd mistakes, else None."""
    for pattern, build in _RULES:
        match = pattern.search(context.evalue)
        if match:
            return build(context, match)
    return None


def _in_cell(context: ErrorContext) -> str:
    return f" in In [{context.cell}]" if context.cell is not None else ""


def _failed_call(context: ErrorContext) -> BackwardEvent | None:
    """The last backward call that failed."""
    return next((event for event in reversed(context.backward) if event.error), None)


def _failed_root_label(context: ErrorContext) -> RootLabel | None:
    """The first root of the last backward call that failed."""
    event = _failed_call(context)
    return event.roots[0] if event is not None and event.roots else None


def _failed_root(context: ErrorContext) -> str | None:
    """The root whose backward call failed: as the calling line wrote it (the tracer read it:
    `c.sum()` in `c.sum().backward()`), else its name, else the expression before
    `.backward(` on the failing line, else what it is."""
    event = _failed_call(context)
    if event is None:
        return None
    if event.expression:
        return event.expression
    root = event.roots[0] if event.roots else None
    if root is None:
        return None
    return root.name or expression_before(".backward(", context.source_line) or root.description


def _root_shape(context: ErrorContext) -> str | None:
    root = _failed_root_label(context)
    if root is None or not root.shape:
        return None
    return "x".join("*" if size is None else str(size) for size in root.shape)


_CLOSING = {")": "(", "]": "["}


def expression_before(call: str, line: str) -> str | None:
    """The expression a method is called on, as written: `torch.ones(2, 2).mul(2)` in
    `torch.ones(2, 2).mul(2).backward()`. Brackets are matched, so arguments may hold any
    text; None when the call is not on the line or what precedes it is no expression."""
    end = line.rfind(call)
    if end <= 0:
        return None
    depth, start = [], end
    while start > 0:
        char = line[start - 1]
        if char in _CLOSING:
            depth.append(_CLOSING[char])
        elif depth and char == depth[-1]:
            depth.pop()
        elif not depth and not (char.isalnum() or char in "_."):
            break
        start -= 1
    expression = line[start:end]
    if depth or not expression or not (expression[0].isalpha() or expression[0] in "_("):
        return None
    return expression


def _name_before(pattern: str, line: str) -> str | None:
    match = re.search(pattern, line)
    return match.group(1) if match else None


def _second_backward(context: ErrorContext, match: re.Match[str]) -> Explanation:
    root = _failed_root(context) or "this tensor"
    return Explanation(
        f"backward through {root}'s graph a second time{_in_cell(context)}",
        "after a backward call autograd frees the values it saved for computing gradients, "
        f"so the graph behind {root} can only be walked once.",
        f"pass retain_graph=True to the earlier call ({root}.backward(retain_graph=True)) when "
        "you mean to call backward again, or run the forward computation again first.",
    )


def _scalar_only(context: ErrorContext, match: re.Match[str]) -> Explanation:
    root = _failed_root(context) or "the tensor"
    shape = _root_shape(context)
    shaped = f" (shape {shape})" if shape else ""
    return Explanation(
        f"{root}.backward() needs a gradient{_in_cell(context)}: {root} is not a single number{shaped}",
        "backward() without arguments computes d(root)/d(leaves), which exists only for a scalar root. "
        "For a tensor root autograd computes a vector-Jacobian product vᵀ·J and needs the vector v.",
        f"pass gradient= shaped like {root}, e.g. {root}.backward(torch.ones_like({root})), "
        f"or reduce it to a number first: {root}.sum().backward() or {root}.mean().backward().",
    )


def _modified_in_place(context: ErrorContext, match: re.Match[str]) -> Explanation:
    tensor_type, shape, op = match.group(1), match.group(2), match.group(3)
    version, expected = match.group(4), match.group(5)
    return Explanation(
        f"a tensor autograd saved was changed in place{_in_cell(context)}",
        f"the {tensor_type} of shape [{shape}] that {op} produced was saved to compute gradients, "
        f"then modified in place (its version is {version}, autograd expected {expected}); the saved value "
        "is gone, so the gradient cannot be computed.",
        "use the out-of-place form (x = x + 1 instead of x += 1 or x.add_(1)), or modify a copy: "
        "y = x.clone() before changing it.",
    )


def _no_grad_root(context: ErrorContext, match: re.Match[str]) -> Explanation:
    root = _failed_root(context) or "the tensor"
    return Explanation(
        f"{root} does not require grad{_in_cell(context)}, so there is nothing to backpropagate",
        f"{root} has no grad_fn: none of the tensors it was computed from had requires_grad=True, "
        "or it was computed under torch.no_grad() or from a .detach()ed tensor.",
        "create the leaf with requires_grad=True (torch.ones(2, requires_grad=True), or "
        "x.requires_grad_()), and compute it outside torch.no_grad() and without .detach().",
    )


def _numpy_with_grad(context: ErrorContext, match: re.Match[str]) -> Explanation:
    name = _name_before(r"([A-Za-z_][\w.\[\]'\"]*)\.numpy\(", context.source_line) or "the tensor"
    return Explanation(
        f"{name}.numpy() on a tensor that requires grad{_in_cell(context)}",
        "NumPy cannot record operations for autograd, so torch will not hand out an array that "
        "shares memory with a tensor autograd is tracking.",
        f"take it out of the graph first: {name}.detach().numpy() (add .cpu() for a GPU tensor).",
    )


def _leaf_in_place(context: ErrorContext, match: re.Match[str]) -> Explanation:
    line = context.source_line
    name = (
        _name_before(r"([A-Za-z_][\w.\[\]]*)\.\w+_\(", line)
        or _name_before(r"([A-Za-z_][\w.\[\]]*)\s*(?:\+|-|\*|/|//|%|\*\*|@)=", line)
        or "a leaf"
    )
    return Explanation(
        f"in-place change of {name}, a leaf that requires grad{_in_cell(context)}",
        f"{name} was created by you with requires_grad=True; changing it in place would make the "
        "gradients computed so far refer to values that no longer exist.",
        f"make the change where autograd does not watch: with torch.no_grad(): {name}.add_(1) "
        f"(what optimizers do), or through {name}.data as the seed notebook does.",
    )


Rule = tuple[re.Pattern[str], Callable[[ErrorContext, re.Match[str]], Explanation]]
_RULES: list[Rule] = [
    (re.compile(r"backward through the graph a second time"), _second_backward),
    (re.compile(r"grad can be implicitly created only for scalar outputs"), _scalar_only),
    (
        re.compile(
            r"modified by an inplace operation: \[([\w.]+) \[([\d, ]*)\]\], which is output \d+ of (\w+), "
            r"is at version (\d+); expected version (\d+)"
        ),
        _modified_in_place,
    ),
    (re.compile(r"element \d+ of tensors does not require grad"), _no_grad_root),
    (re.compile(r"Can't call numpy\(\) on Tensor that requires grad"), _numpy_with_grad),
    (re.compile(r"a leaf Variable that requires grad is being used in an in-place operation"), _leaf_in_place),
]


def explain_report(ename: str, evalue: str, cell: int | None, report: ProbeReport | None) -> Explanation | None:
    """`explain` for a cell's error, its context taken from the probe's report (or None)."""
    backward = report.backward if report is not None else ()
    frames = report.frames if report is not None else ()
    return explain(ErrorContext(ename, evalue, cell, backward, failing_line(frames)))


def failing_line(frames: Sequence[ErrorFrame]) -> str:
    """The user's line that raised: the innermost frame in the script or in a cell."""
    def users(frame: ErrorFrame) -> bool:
        return frame.in_script or "ipykernel_" in frame.filename or frame.filename.startswith("<")

    mine = [f for f in frames if users(f)]
    chosen = mine[-1] if mine else (frames[0] if frames else None)
    return chosen.text if chosen is not None else ""
