"""Plain-text forms of a cell's backward calls taken together (replay prints them, the app's
backward log builds its entries from the same phrases): steps, groups of calls alike with the
trajectory of their grads, and what reset the grads between two calls."""

from __future__ import annotations

from collections.abc import Sequence

from gradrepl.protocol import BackwardEvent, LeafChange
from gradrepl.protocol.backward import GradReset, ResetKind
from gradrepl.render.call_groups import CallGroup, call_groups
from gradrepl.render.chain_rule import node_lines
from gradrepl.render.sparkline import sparkline
from gradrepl.render.text import (
    backward_call,
    backward_line,
    backward_path,
    counted,
    failure_text,
    norm_text,
    values_preview,
    vjp_lines,
)

RESET_PHRASES: dict[ResetKind, str] = {
    "cleared": "cleared (set to None: opt.zero_grad() or x.grad = None)",
    "zeroed": "zeroed in place (x.grad.zero_() or opt.zero_grad(set_to_none=False))",
    "replaced": "replaced (x.grad = another tensor)",
    "changed": "changed in place (clipped or scaled, say)",
}
NAMES_SHOWN = 3  # grads named in a line; the rest are counted
LEAVES_SHOWN = 4  # grads given a trajectory in a group's text


def steps_text(first: int, last: int) -> str:
    return f"step {first:,}" if first == last else f"steps {first:,}–{last:,}"


def names_text(names: Sequence[str]) -> str:
    """a.grad, b.grad and c.grad; past NAMES_SHOWN: a.grad, b.grad, c.grad and 4 more."""
    shown = [f"{name}.grad" for name in names[:NAMES_SHOWN]]
    rest = len(names) - len(shown)
    if rest:
        return ", ".join(shown) + f" and {rest:,} more"
    return shown[0] if len(shown) == 1 else ", ".join(shown[:-1]) + f" and {shown[-1]}"


def resets_text(resets: Sequence[GradReset]) -> str:
    """w.grad cleared (set to None: ...); one phrase per kind of reset."""
    parts = []
    for kind in RESET_PHRASES:
        names = [reset.name for reset in resets if reset.kind == kind]
        if names:
            parts.append(f"{names_text(names)} {RESET_PHRASES[kind]}")
    return "; ".join(parts)


def between_text(previous_step: int, event: BackwardEvent) -> str | None:
    """What reset the grads event writes since the call before it (`previous_step`; 0: the cell's start)."""
    if not event.resets:
        return None
    where = f"between step {previous_step:,} and step {event.step:,}" if previous_step else f"before step {event.step:,}"
    return f"{where}: {resets_text(event.resets)}"


def group_header(group: CallGroup) -> str:
    """steps 1–1,000: loss.backward() × 1,000 via MeanBackward0 → … (12 nodes)"""
    head = group.head
    steps = steps_text(group.first_step, group.last_step)
    if head is None:
        return f"{steps}: {counted(group.count, 'call')} of {group.root}, counted, not described"
    line = f"{steps}: {backward_call(head)} × {group.count:,}"
    path = backward_path(head, 6)
    return f"{line} via {path}" if path else line


def group_lines(group: CallGroup, width: int = 40) -> list[str]:
    """What a group of calls says after its header: what happened between its calls, each
    grad's first and last value, the norm's trajectory, which calls are described."""
    lines = []
    between = reset_summary(group)
    if between:
        lines.append(between)
    lines += trajectories(group)
    norm = norm_line(group, width)
    if norm:
        lines.append(norm)
    failed = sum(1 for c in group.calls if c.error) + sum(run.failed for run in group.runs)
    if failed:
        lines.append(f"{counted(failed, 'call')} failed")
    described = described_text(group)
    if described:
        lines.append(described)
    return lines


def reset_summary(group: CallGroup) -> str | None:
    after_first = group.count - 1
    if after_first <= 0 or group.head is None or group.head.kind != "backward":
        return None
    count, kinds = group.resets_between()
    how = " or ".join(RESET_PHRASES[kind] for kind in RESET_PHRASES if kind in kinds) or "reset"
    if count >= after_first:
        fresh = " so each call wrote them fresh" if kinds <= {"cleared"} and kinds else ""
        return f"between each two calls the grads were {how}{',' if fresh else ''}{fresh}"
    if count == 0:
        return "no reset between the calls: each one added into the grads (accumulated)"
    return f"the grads were {how} before {count:,} of the {after_first:,} calls after the first"


def trajectories(group: CallGroup, values: bool = True) -> list[str]:
    """model.0.weight.grad: [..] at step 1 → [..] at step 1,000, for the first few grads;
    without `values`, their norms: model.0.weight.grad norm 0.5 → 0.01."""
    head, tail = group.head, group.tail
    if head is None or tail is None or head.kind != "backward":
        return []
    last = {leaf.name: leaf for leaf in tail.leaves}

    def shown(leaf: LeafChange) -> str:
        if values and leaf.after is not None:
            return values_preview(leaf.after)
        return norm_text(leaf.norm) if not values else f"norm {norm_text(leaf.norm)}"

    lines = []
    for leaf in head.leaves[:LEAVES_SHOWN]:
        end = last.get(leaf.name) if tail is not head else None
        if values:
            line = f"{leaf.name}.grad: {shown(leaf)} at step {head.step:,}"
            if end is not None:
                line += f" → {shown(end)} at step {tail.step:,}"
        else:
            line = f"{leaf.name}.grad norm {shown(leaf)}" + (f" → {shown(end)}" if end is not None else "")
        lines.append(line)
    more = len(head.leaves) - LEAVES_SHOWN
    if more > 0:
        lines.append(f"… and {counted(more, 'more grad')}")
    return lines


def norm_line(group: CallGroup, width: int = 40) -> str | None:
    """grad norm ▁▂▃▅▇ 0.8956 → 0.2516 (the norm of the grads each call wrote, together)"""
    norms = group.norms()
    known = [n for n in norms if n is not None]
    if len(norms) < 2 or not known:
        return None
    what = "returned" if group.head is not None and group.head.kind == "grad" else "wrote"
    return (f"grad norm {sparkline(norms, width)} {norm_text(known[0])} → {norm_text(known[-1])}"
            f" (of the grads each call {what}, together)")


def described_text(group: CallGroup) -> str | None:
    """Which calls of a group are described one by one, when not all are."""
    if not group.counted:
        return None
    spans = _spans([c.step for c in group.calls])
    taken = " (norms of some calls past step 128 only)" if group.last_step > 128 else ""
    shown = " and ".join(steps_text(a, b) if at == 0 else steps_text(a, b).removeprefix("steps ").removeprefix("step ")
                         for at, (a, b) in enumerate(spans))
    return f"described: {shown}; the {group.counted:,} between counted, their norms kept{taken}"


def _spans(steps: Sequence[int]) -> list[tuple[int, int]]:
    spans: list[tuple[int, int]] = []
    for step in steps:
        if spans and step == spans[-1][1] + 1:
            spans[-1] = (spans[-1][0], step)
        else:
            spans.append((step, step))
    return spans


def backward_transcript(events: Sequence[BackwardEvent], cell_error: str | None = None,
                        node_grads: bool = False) -> list[tuple[str, str]]:
    """A cell's backward calls as replay prints them, (tag, text) a line: `backward` for a call,
    a group or what reset grads between two calls, `vjp` for the vector-Jacobian view, with
    `node_grads` a `node` line for each node the call ran (or why they were not recorded).
    `cell_error` ("ename: evalue") is printed above them already: a call that failed with it
    says so instead of repeating it."""
    lines: list[tuple[str, str]] = []
    groups = call_groups(events)
    numbered = sum(group.count for group in groups) > 1
    previous = 0
    for group in groups:
        head = group.head
        if head is not None and numbered and head.step:
            between = between_text(previous, head)
            if between:
                lines.append(("backward", between))
        if group.is_single and head is not None:
            prefix = f"step {head.step:,}: " if numbered and head.step else ""
            lines.append(("backward", prefix + backward_line(head, cell_error=cell_error)))
            lines += [("vjp", line) for line in vjp_lines(head)]
            if node_grads:
                lines += [("node", line) for line in node_lines(head.node_grads or ())]
                if head.node_grads_note:
                    lines.append(("node", head.node_grads_note))
        else:
            lines.append(("backward", group_header(group)))
            if head is not None and head.error:
                lines.append(("backward", "  each " + failure_text(head, 6, cell_error)))
            lines += [("backward", f"  {line}") for line in group_lines(group)]
        previous = group.last_step
    return lines
