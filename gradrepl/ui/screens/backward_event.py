"""One backward call in full: root, gradient, every graph node in the order it ran, each
.grad before and after, and for a non-scalar root the vector-Jacobian view: J, v, and
that the leaf's grad gained vᵀ·J."""

from __future__ import annotations

from collections.abc import Sequence

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static

from gradrepl.protocol import BackwardEvent, JacobianView, LeafJacobian
from gradrepl.render.backward_text import resets_text
from gradrepl.render.text import backward_call, grad_kind, hook_text, norm_text, number, values_preview

MAX_SHOWN_NODES = 60
JACOBIAN_COLUMNS = 12  # wider Jacobians show their first columns and say so


def _index_label(shape: Sequence[int], flat: int) -> str:
    if not shape:
        return ""
    index = []
    for size in reversed(shape):
        index.append(flat % size)
        flat //= size
    return "[" + ", ".join(str(i) for i in reversed(index)) + "]"


def call_overview(event: BackwardEvent) -> Table:
    table = Table.grid(padding=(0, 2))
    table.add_column(style="bold", no_wrap=True)
    table.add_column()
    if event.step:
        table.add_row("step", f"{event.step:,} (the call's number in its cell)")
    if event.expression and [event.expression] != [root.name for root in event.roots]:
        table.add_row("root, as written", event.expression)
    for root in event.roots:
        value = f"  = {values_preview(root.value)}" if root.value is not None or not event.brief else ""
        table.add_row("root", f"{root.label or '?'}  ({root.grad_fn or 'no grad_fn'}){value}")
    if event.brief:
        table.add_row("described", Text("in brief (a call past the cell's first 50): no values before, nodes predicted",
                                        style="italic"))
    if event.resets:
        table.add_row("since the call before", Text(resets_text(event.resets), style="cyan"))
    gradient = event.gradient
    if gradient and event.brief:
        table.add_row("gradient (v)", "given (its values are not kept in brief)")
    else:
        table.add_row("gradient (v)", ", ".join(values_preview(g) for g in gradient) if gradient else "None (a scalar root: v = 1)")
    table.add_row("retain_graph", str(event.retain_graph))
    table.add_row("create_graph", str(event.create_graph))
    if event.inputs is not None:
        table.add_row("inputs", ", ".join(event.inputs))
    nodes = event.nodes
    total = event.nodes_total or len(nodes)
    shown = " → ".join(nodes[:MAX_SHOWN_NODES])
    if total > min(len(nodes), MAX_SHOWN_NODES):
        shown += f" … ({total:,} nodes in all)"
    label = "nodes, in the order they ran" if event.node_order == "exact" else "nodes, in the order predicted (not recorded)"
    if event.error:
        label = "nodes reached before the error" if event.node_order == "exact" else "nodes (not known: the call failed)"
    table.add_row(label, shown or "none")
    if event.error:
        table.add_row("error", Text(event.error, style="bold red"))
    for leaf in event.leaves:
        kind = grad_kind(leaf)
        norm = f"  norm {norm_text(leaf.norm)}" if leaf.norm is not None else ""
        change = Text(f"{kind}{' (kept by retain_grad)' if leaf.retained else ''}{norm}\n",
                      style="bold yellow" if kind == "accumulated" else "green")
        before = "(not kept)" if event.brief and leaf.accumulated else values_preview(leaf.before)
        change.append(f"{before}\n→ {values_preview(leaf.after) if leaf.after is not None else '(not kept)'}")
        table.add_row(f"{leaf.name}.grad", change)
    for hook in event.hooks:
        table.add_row(f"hooks on {hook.name}", Text(hook_text(hook), style="magenta"))
    if event.kind == "grad":
        table.add_row("returned", ", ".join(values_preview(g) for g in event.grads or ()))
    if event.kind == "backward" and not event.error and not event.leaves:
        table.add_row(".grad", Text("no .grad changed", style="dim"))
    if event.node_grads:
        table.add_row("node gradients", Text(f"recorded for {len(event.node_grads):,} nodes: s steps through them",
                                             style="bold green"))
    elif event.node_grads_note:
        table.add_row("node gradients", Text(event.node_grads_note, style="dim"))
    for note in event.notes:
        table.add_row("note", Text(note, style="italic"))
    return table


def _jacobian_table(view: JacobianView, leaf: LeafJacobian, backward: bool) -> Table:
    matrix = leaf.matrix
    columns = len(matrix[0]) if matrix else 0
    shown = min(columns, JACOBIAN_COLUMNS)
    more = [""] if shown < columns else []
    table = Table(box=None, padding=(0, 1), show_edge=False, header_style="bold")
    table.add_column("J")
    table.add_column("v", style="cyan", justify="right")
    for column in range(shown):
        table.add_column(f"{leaf.leaf}{_index_label(leaf.leaf_shape, column)}", justify="right")
    if shown < columns:
        table.add_column(f"… {columns - shown} more", style="dim")
    root = view.root or "root"
    for row, values in enumerate(matrix):
        cells = [number(x) for x in values[:shown]] + more
        table.add_row(f"∂{root}{_index_label(leaf.root_shape, row)}", number(view.v[row]) if row < len(view.v) else "", *cells)
    table.add_row(Text("vᵀ·J", style="bold"), "", *[Text(number(x), style="bold") for x in leaf.vjp[:shown]], *more)
    if leaf.grad_change is not None:
        label = f"{leaf.leaf}.grad gained" if backward else "returned"
        table.add_row(label, "", *[number(x) for x in leaf.grad_change[:shown]], *more)
    return table


def vjp_view(event: BackwardEvent) -> RenderableType | None:
    view = event.jacobian
    if view is None:
        return None
    if view.note:
        return Text(f"vᵀ·J not shown: {view.note}", style="dim")
    backward = event.kind == "backward"
    parts: list[RenderableType] = [Text(
        "A non-scalar root needs a vector v (the gradient argument). Autograd does not build the Jacobian J: "
        "it computes vᵀ·J directly, and that is what lands in the grad. gradrepl computed J here to show it.",
        style="italic",
    )]
    for leaf in view.leaves:
        target = f"{leaf.leaf}.grad" if backward else f"the grad of {leaf.leaf}"
        heading = Text(f"\nJ of {view.root} with respect to {leaf.leaf} ", style="bold")
        if leaf.matches is True:
            heading.append(f"✓ {target} {'gained' if backward else 'is'} exactly vᵀ·J", style="bold green")
        elif leaf.matches is False:
            heading.append(f"✗ {target} differs from vᵀ·J (hooks or other calls changed it)", style="bold red")
        parts.append(heading)
        parts.append(_jacobian_table(view, leaf, backward))
    return Group(*parts)


class BackwardEventScreen(ModalScreen[None]):
    BINDINGS = [Binding("escape,enter,q", "dismiss", "Close"), Binding("s", "step", "Step through the nodes")]
    DEFAULT_CSS = """
    BackwardEventScreen { align: center middle; }
    BackwardEventScreen > VerticalScroll {
        width: 95%; max-width: 140; height: auto; max-height: 90%;
        border: round $accent; background: $surface; padding: 0 1;
    }
    BackwardEventScreen #vjp { margin-top: 1; }
    """

    def __init__(self, event: BackwardEvent) -> None:
        super().__init__()
        self.event = event

    def compose(self) -> ComposeResult:
        with VerticalScroll() as box:
            cell = self.event.cell
            box.border_title = f"In [{cell if cell is not None else ' '}] {backward_call(self.event)}"
            box.border_subtitle = "s: step through the chain rule · Escape closes" if self.event.node_grads else "Escape closes"
            yield Static(call_overview(self.event))
            view = vjp_view(self.event)
            if view is not None:
                yield Static(view, id="vjp")


    def action_step(self) -> None:
        if self.event.node_grads:
            from gradrepl.ui.screens.backward_stepper import BackwardStepperScreen

            self.app.push_screen(BackwardStepperScreen(self.event))
        else:
            self.notify(f"No node gradients for this call: {self.event.node_grads_note or 'not recorded'}", severity="warning")
