"""A backward call, node by node in the order the engine ran them: the call's graph with the
current node under the cursor, and beside it the chain rule at that node: the local rule with
its numbers, what came in (split by the paths that brought it), the tensors it saved (with the
user's names), and what it passed on to which node (render.chain_rule)."""

from __future__ import annotations

import re
from dataclasses import replace

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.reactive import reactive
from textual.screen import ModalScreen
from textual.widgets import Static

from gradrepl.protocol import BackwardEvent, Graph, GraphLeaf, GraphNode, NodeGrads
from gradrepl.render.chain_rule import step_lines
from gradrepl.render.graph import GraphRow, graph_rows
from gradrepl.render.text import backward_call
from gradrepl.ui.hanging import HangingText
from gradrepl.ui.widgets.graph_view import GraphView

NARROW = 100  # columns: below this the graph goes above the step, not beside it
_NUMBER = re.compile(r"#(\d+)")


def call_graph(nodes: tuple[NodeGrads, ...], root: str) -> Graph:
    """The nodes the call ran as a graph, numbered in engine order (node 0 ran first)."""
    described = []
    for node in nodes:
        leaf = None
        if node.leaf is not None:
            value = node.grad_outputs[0] if node.grad_outputs else None
            leaf = GraphLeaf(node.leaf, value.shape if value else (), value.dtype if value else "")
        described.append(GraphNode(node.node, node.tensor, leaf,  # saved values: the step says them
                                   next=tuple(n for n in node.next if n >= 0),
                                   no_grad_inputs=sum(1 for n in node.next if n < 0)))
    return Graph(root, nodes=tuple(described), total=len(described))


def numbered_as_steps(row: GraphRow) -> GraphRow:
    """A row of the call's graph with its nodes numbered as steps (from 1)."""
    return replace(row, text=_NUMBER.sub(lambda match: f"#{int(match.group(1)) + 1}", row.text))


def _label(row: GraphRow) -> Text:
    return Text(row.text, style="italic" if row.kind in ("ref", "note", "cut") else "")


def step_text(lines: list[str]) -> Text:
    text = Text()
    for index, line in enumerate(lines):
        if index:
            text.append("\n")
        if index == 0:
            text.append(line, style="bold")
        elif not line.startswith(" "):
            text.append(line, style="bold underline")
        elif line.startswith("  grad_") or ".grad += " in line:
            text.append(line, style="bold green")
        else:
            text.append(line)
    return text


class BackwardStepperScreen(ModalScreen[None]):
    BINDINGS = [
        Binding("escape,q", "dismiss", "Close"),
        # Priority: the step's scroll (focused, for PageUp/PageDown) would take these for scrolling.
        Binding("right,n,space", "step(1)", "Next node", priority=True),
        Binding("left,p", "step(-1)", "Previous node", priority=True),
        Binding("home", "edge(False)", "First node", show=False, priority=True),
        Binding("end", "edge(True)", "Last node", show=False, priority=True),
    ]
    DEFAULT_CSS = """
    BackwardStepperScreen { align: center middle; }
    BackwardStepperScreen > Vertical {
        width: 95%; max-width: 160; height: 90%;
        border: round $accent; background: $surface; padding: 0 1;
    }
    BackwardStepperScreen #stepper-body { height: 1fr; }
    BackwardStepperScreen GraphView { width: 1fr; height: 1fr; min-width: 30; border-right: vkey $panel; }
    BackwardStepperScreen #step-scroll { width: 1fr; height: 1fr; padding-left: 1; }
    BackwardStepperScreen.-narrow #stepper-body { layout: vertical; }
    BackwardStepperScreen.-narrow GraphView { width: 1fr; height: 2fr; border-right: none; border-bottom: hkey $panel; }
    BackwardStepperScreen.-narrow #step-scroll { width: 1fr; height: 3fr; padding-left: 0; }
    """

    step: reactive[int] = reactive(0, init=False)

    def __init__(self, event: BackwardEvent) -> None:
        super().__init__()
        self.event = event
        self.nodes = event.node_grads or ()

    def compose(self) -> ComposeResult:
        with Vertical() as box:
            cell = self.event.cell
            box.border_title = f"In [{cell if cell is not None else ' '}] {backward_call(self.event)}: the chain rule, node by node"
            box.border_subtitle = "→/n next · ←/p previous · Home/End · Esc close"
            with Horizontal(id="stepper-body"):
                graph = GraphView(_label, id="stepper-graph")
                graph.can_focus = False  # the keys step; the cursor marks the current node
                yield graph
                with VerticalScroll(id="step-scroll"):
                    yield Static(id="step")

    def on_mount(self) -> None:
        self.set_class(self.app.size.width < NARROW, "-narrow")
        view = self.query_one(GraphView)
        rows = [numbered_as_steps(row) for row in graph_rows(call_graph(self.nodes, self.event.root_text))]
        view.show_rows(rows, lambda row: False)
        self._show(0)

    def on_resize(self) -> None:
        self.set_class(self.app.size.width < NARROW, "-narrow")

    def watch_step(self, now: int) -> None:
        self._show(now)

    def _show(self, step: int) -> None:
        if not self.nodes:
            self.query_one("#step", Static).update(Text(self.event.node_grads_note or "no node gradients recorded"))
            return
        self.query_one("#step", Static).update(HangingText(step_text(step_lines(self.nodes, step))))
        view = self.query_one(GraphView)
        row = view.node_row(step)
        if row is not None:
            view.go_to_row(row)
        self.query_one("#step-scroll", VerticalScroll).scroll_home(animate=False)

    def on_graph_view_cursor_moved(self, event: GraphView.CursorMoved) -> None:
        """A click on a node of the graph goes to its step."""
        row = event.view.rows[event.row]
        if row.kind in ("node", "ref") and row.number is not None:
            self.step = row.number

    def validate_step(self, step: int) -> int:
        return max(0, min(step, len(self.nodes) - 1))

    def action_step(self, by: int) -> None:
        self.step += by

    def action_edge(self, end: bool) -> None:
        self.step = len(self.nodes) - 1 if end else 0
