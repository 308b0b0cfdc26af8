"""The chain rule of one backward call, node by node, as text: what a node was given, what it
passed on and to whom, the local rule of common nodes with their numbers ("MulBackward0:
grad_self = grad · other = 0.25 · 2 = 0.5"), and a gradient split into what each path
brought ("x.grad = 2 via y + 3 via z"). Pure: it reads protocol.NodeGrads records.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from gradrepl.protocol import GradPreview, NodeGrads
from gradrepl.render.graph_labels import shape_label
from gradrepl.render.tensors import stats_text
from gradrepl.render.text import number, values_preview


def value_text(value: GradPreview | None) -> str:
    """A gradient as few characters as say it: a number for a scalar or for a tensor whose
    entries are all that number ("0.25 (2x2, all)"), else its preview."""
    if value is None:
        return "None"
    stats = value.values.stats
    if value.numel == 1 or not value.shape:
        return values_preview(value.values)
    if stats is not None and not stats.nan and not stats.inf and stats.min is not None and stats.min == stats.max:
        return f"{number(stats.min)} ({shape_label(value.shape)}, all)"
    return values_preview(value.values)


def _plain_number(value: GradPreview | None) -> str:
    """Like value_text, without the shape: for a formula's terms."""
    text = value_text(value)
    return text.split(" (", 1)[0] if text.endswith(", all)") else text


@dataclass(frozen=True)
class Contribution:
    source: int  # engine-order index of the node that passed it
    slot: int  # which of that node's inputs this is
    value: GradPreview | None


def contributions(nodes: Sequence[NodeGrads], index: int) -> list[Contribution]:
    """What each node that passes a gradient to node `index` passed it, in engine order. The
    engine adds them up before the node runs: their sum is the node's grad_outputs[0]."""
    return contributions_to(nodes).get(index, [])


def via_label(nodes: Sequence[NodeGrads], contribution: Contribution) -> str:
    """The path a contribution came by: the user's name of the tensor its node produced, else the node."""
    node = nodes[contribution.source]
    return node.tensor or node.node


def contributions_to(nodes: Sequence[NodeGrads]) -> dict[int, list[Contribution]]:
    """contributions() of every node at once, by the index of the node they go to."""
    incoming: dict[int, list[Contribution]] = {}
    for source, node in enumerate(nodes):
        for slot, target in enumerate(node.next):
            if target >= 0:
                value = node.grad_inputs[slot] if slot < len(node.grad_inputs) else None
                incoming.setdefault(target, []).append(Contribution(source, slot, value))
    return incoming


def split_text(nodes: Sequence[NodeGrads], index: int, parts: Sequence[Contribution] | None = None) -> str | None:
    """"2 via y + 3 via z" when more than one path brings node `index` a gradient (`parts`, when
    known, are its contributions); else None."""
    parts = contributions(nodes, index) if parts is None else parts
    if len(parts) < 2:
        return None
    sources = [part.source for part in parts]
    texts = []
    for part in parts:
        label = via_label(nodes, part)
        if sources.count(part.source) > 1:  # h * h: one node, two of its inputs
            label += f" input {part.slot}"
        texts.append(f"{_plain_number(part.value)} via {label}")
    return " + ".join(texts)


def leaf_split_line(nodes: Sequence[NodeGrads], index: int) -> str | None:
    """For an AccumulateGrad node reached by several paths: "x.grad += 2 via y + 3 via z"."""
    node = nodes[index]
    split = split_text(nodes, index)
    if node.leaf is None or split is None:
        return None
    return f"{node.leaf}.grad gets {split}"


# ---------------------------------------------------------------- local rules

_FAMILY = re.compile(r"^(.*?)Backward\d*$")


def family(node_name: str) -> str:
    """"Mul" for MulBackward0, "Mm" for MmBackward0; the name itself for any other node."""
    match = _FAMILY.match(node_name)
    return match.group(1) if match else node_name


class _Terms:
    """The numbers a rule speaks of: grad (what flowed in), the saved tensors and values, and
    what the node passed on."""

    def __init__(self, node: NodeGrads) -> None:
        self.node = node
        self.saved = {s.name: s for s in node.saved}
        self.values = dict(node.values)

    @property
    def grad(self) -> str:
        return _plain_number(self.node.grad_outputs[0]) if self.node.grad_outputs else "?"

    def saved_value(self, name: str) -> str:
        if name in self.saved:
            saved = self.saved[name]
            text = _plain_number(saved.value) if saved.value is not None else f"<{saved.note or 'not read'}>"
            return text
        return self.values.get(name, name)

    def out(self, slot: int) -> str:
        grads = self.node.grad_inputs
        return _plain_number(grads[slot]) if slot < len(grads) and grads[slot] is not None else "None"

    def passed(self, slot: int) -> bool:
        grads = self.node.grad_inputs
        return slot < len(grads) and grads[slot] is not None

    def shape_of_out(self, slot: int) -> str:
        grads = self.node.grad_inputs
        value = grads[slot] if slot < len(grads) else None
        return shape_label(value.shape) if value is not None else "?"


Rule = Callable[[_Terms], list[str]]


def _binary(a: str, b: str, left: Callable[[_Terms], tuple[str, str]], right: Callable[[_Terms], tuple[str, str]]) -> Rule:
    """A rule for a node of two inputs: (formula, its numbers) for each passed input."""
    def rule(t: _Terms) -> list[str]:
        lines = []
        for slot, name, side in ((0, a, left), (1, b, right)):
            if t.passed(slot):
                formula, numbers = side(t)
                lines.append(f"grad_{name} = {formula} = {numbers} = {t.out(slot)}")
        return lines
    return rule


def _unary(formula: str, numbers: Callable[[_Terms], str], name: str = "self") -> Rule:
    def rule(t: _Terms) -> list[str]:
        return [f"grad_{name} = {formula} = {numbers(t)} = {t.out(0)}"] if t.passed(0) else []
    return rule


def _shape_rule(what: str) -> Rule:
    def rule(t: _Terms) -> list[str]:
        return [f"grad_self = grad {what} ({t.shape_of_out(0)}) = {t.out(0)}"] if t.passed(0) else []
    return rule


def _alpha(t: _Terms) -> str:
    return t.values.get("alpha", "1")


def _pow(t: _Terms) -> list[str]:
    lines = []
    exponent = t.saved_value("exponent")
    if t.passed(0):
        lines.append(f"grad_self = grad · exponent · self^(exponent − 1) = {t.grad} · {exponent} · "
                     f"{t.saved_value('self')}^({exponent} − 1) = {t.out(0)}")
    if t.passed(1) and family(t.node.node) == "Pow" and "result" in t.saved:
        lines.append(f"grad_exponent = grad · result · ln(self) = {t.grad} · {t.saved_value('result')} · "
                     f"ln({t.saved_value('self')}) = {t.out(1)}")
    return lines


def _mm(first: str, second: str) -> Rule:
    def rule(t: _Terms) -> list[str]:
        lines = []
        if t.passed(0):
            lines.append(f"grad_{first} = grad @ {second}ᵀ = {t.grad} @ {t.saved_value(second)}ᵀ = {t.out(0)}")
        if t.passed(1):
            lines.append(f"grad_{second} = {first}ᵀ @ grad = {t.saved_value(first)}ᵀ @ {t.grad} = {t.out(1)}")
        return lines
    return rule


def _addmm(t: _Terms) -> list[str]:
    lines = []
    if t.passed(0):
        lines.append(f"grad_bias = grad, summed to the bias's shape {t.shape_of_out(0)} = {t.out(0)}")
    if t.passed(1):
        lines.append(f"grad_mat1 = grad @ mat2ᵀ = {t.grad} @ {t.saved_value('mat2')}ᵀ = {t.out(1)}")
    if t.passed(2):
        lines.append(f"grad_mat2 = mat1ᵀ @ grad = {t.saved_value('mat1')}ᵀ @ {t.grad} = {t.out(2)}")
    return lines


def _mean(t: _Terms) -> list[str]:
    value = t.node.grad_inputs[0] if t.node.grad_inputs else None
    if value is None:
        return []
    inputs = value.numel
    outputs = t.node.grad_outputs[0].numel if t.node.grad_outputs and t.node.grad_outputs[0] else 1
    count = inputs // max(outputs, 1)
    return [f"grad_self = grad / n, spread over the {count:,} averaged elements = {t.grad} / {count:,} = {t.out(0)}"]


def _nll(t: _Terms) -> list[str]:
    reduction = {"0": "none", "1": "mean", "2": "sum"}.get(t.values.get("reduction", "1"), "mean")
    divide = f" / total_weight ({t.saved_value('total_weight')})" if reduction == "mean" else ""
    return [f"grad_self = −grad{divide} at each target class, 0 elsewhere (reduction {reduction}) = {t.out(0)}"] \
        if t.passed(0) else []


def _accumulate(t: _Terms) -> list[str]:
    who = t.node.leaf or "the leaf"
    return [f"{who}.grad += grad = {t.grad}"]


RULES: dict[str, Rule] = {
    "Add": _binary("self", "other", lambda t: ("grad", t.grad), lambda t: ("alpha · grad", f"{_alpha(t)} · {t.grad}")),
    "Sub": _binary("self", "other", lambda t: ("grad", t.grad), lambda t: ("−alpha · grad", f"−{_alpha(t)} · {t.grad}")),
    "Mul": _binary("self", "other", lambda t: ("grad · other", f"{t.grad} · {t.saved_value('other')}"),
                   lambda t: ("grad · self", f"{t.grad} · {t.saved_value('self')}")),
    "Div": _binary("self", "other", lambda t: ("grad / other", f"{t.grad} / {t.saved_value('other')}"),
                   lambda t: ("−grad · self / other²",
                              f"−{t.grad} · {t.saved_value('self')} / {t.saved_value('other')}²")),
    "Pow": _pow,
    "Neg": _unary("−grad", lambda t: f"−{t.grad}"),
    "Sum": _shape_rule("copied to every element of self"),
    "Mean": _mean,
    "Mm": _mm("self", "mat2"),
    "Bmm": _mm("self", "mat2"),
    "Mv": _mm("self", "vec"),
    "Addmm": _addmm,
    "View": _shape_rule("reshaped to"),
    "Reshape": _shape_rule("reshaped to"),
    "UnsafeView": _shape_rule("reshaped to"),
    "ReshapeAlias": _shape_rule("reshaped to"),
    "Expand": _shape_rule("summed over the expanded dimensions to"),
    "Relu": _unary("grad · (result > 0)", lambda t: f"{t.grad} · ({t.saved_value('result')} > 0)"),
    "Tanh": _unary("grad · (1 − result²)", lambda t: f"{t.grad} · (1 − {t.saved_value('result')}²)"),
    "Sigmoid": _unary("grad · result · (1 − result)",
                      lambda t: f"{t.grad} · {t.saved_value('result')} · (1 − {t.saved_value('result')})"),
    "Exp": _unary("grad · result", lambda t: f"{t.grad} · {t.saved_value('result')}"),
    "Log": _unary("grad / self", lambda t: f"{t.grad} / {t.saved_value('self')}"),
    "Softmax": _unary("result · (grad − Σ grad · result)",
                      lambda t: f"{t.saved_value('result')} · ({t.grad} − Σ {t.grad} · {t.saved_value('result')})"),
    "LogSoftmax": _unary("grad − exp(result) · Σ grad",
                         lambda t: f"{t.grad} − exp({t.saved_value('result')}) · Σ {t.grad}"),
    "NllLoss": _nll,
    "NllLoss2D": _nll,
    "AccumulateGrad": _accumulate,
}


def local_rule(node: NodeGrads) -> list[str]:
    """The node's rule with its numbers, one line per input it passed a gradient to; [] for a
    node without a rule here."""
    rule = RULES.get(family(node.node)) or RULES.get(node.node)
    if rule is None:
        return []
    try:
        return rule(_Terms(node))
    except (IndexError, KeyError, AttributeError, TypeError):
        return []


def step_lines(nodes: Sequence[NodeGrads], index: int) -> list[str]:
    """Everything the stepper says of node `index`: the rule, what came in (and from where),
    what it saved, what it passed on and to which node."""
    node = nodes[index]
    lines = [f"step {index + 1} of {len(nodes)}: {node.node}" + (f" (made {node.tensor})" if node.tensor else "")
             + (f" → {node.leaf}.grad" if node.leaf else "")]
    rule = local_rule(node)
    if rule:
        lines.append("rule:")
        lines += [f"  {line}" for line in rule]
    lines.append("grad in:")
    for slot, value in enumerate(node.grad_outputs):
        label = f"  [{slot}] " if len(node.grad_outputs) > 1 else "  "
        lines.append(f"{label}{_described(value)}")
    split = split_text(nodes, index)
    if split is not None:
        lines.append(f"  = {split}")
    if node.saved or node.values:
        lines.append("saved:")
        for saved in node.saved:
            who = f" ({saved.tensor})" if saved.tensor else ""
            text = _described(saved.value) if saved.value is not None else f"<{saved.note or 'not read'}>"
            lines.append(f"  {saved.name}{who} = {text}")
        lines += [f"  {key} = {other}" for key, other in node.values]
    if node.grad_inputs:
        lines.append("grad out:")
        for slot, value in enumerate(node.grad_inputs):
            target = node.next[slot] if slot < len(node.next) else -1
            if 0 <= target < len(nodes):
                lines.append(f"  [{slot}] → step {target + 1} {nodes[target].node}: {_described(value)}")
            else:
                lines.append(f"  [{slot}] → none: {'no gradient needed' if value is None else _described(value)}")
    return lines


def _described(value: GradPreview | None) -> str:
    if value is None:
        return "None"
    stats = value.values.stats
    tail = f"  ({stats_text(stats)})" if stats is not None and value.numel > 1 else ""
    return f"{shape_label(value.shape, value.dtype)} {value_text(value)}{tail}"


def node_lines(nodes: Sequence[NodeGrads]) -> list[str]:
    """A call's nodes as `gradrepl replay --node-grads` prints them: one line per node in engine
    order (what came in, what went out), the node's rule under it."""
    lines = []
    incoming = contributions_to(nodes)
    for index, node in enumerate(nodes):
        made = f" ({node.tensor})" if node.tensor else ""
        into = f" → {node.leaf}.grad" if node.leaf else ""
        given = ", ".join(value_text(value) for value in node.grad_outputs)
        passed = ", ".join(value_text(value) for value in node.grad_inputs if value is not None)
        line = f"{index + 1}. {node.node}{made}{into}: in {given}"
        if passed:
            line += f" → out {passed}"
        split = split_text(nodes, index, incoming.get(index, []))
        if split is not None:
            line += f"  (in = {split})"
        lines.append(line)
        lines += [f"     {rule}" for rule in local_rule(node) if node.leaf is None]
    return lines
