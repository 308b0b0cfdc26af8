"""A tensor's autograd graph as a collapsible tree (widgets.graph_view), asked of the kernel when
the screen opens.

A chain's next node hangs straight under the node before it, drawn with the guides `gradrepl
graph` prints; a run of alike iterations is one row, folded, with its first and last iteration
under it. For a leaf, the screen gives way to the
list of the graphs that use it (leaf_users.py)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Static

from gradrepl.protocol import Graph
from gradrepl.render.graph import GraphRow, graph_rows, graph_title, modified_count
from gradrepl.render.graph_labels import is_leaf_view
from gradrepl.ui.widgets.graph_view import GraphView

GraphLoader = Callable[[str], Awaitable[Graph]]

EXPANDED_DEPTH = 12  # branches nested deeper start folded
_ROW_STYLES = {"node": "", "run": "bold", "saved": "dim", "grads": "cyan", "ref": "italic cyan", "cut": "italic", "gap": "italic",
               "note": "italic"}


def _label(row: GraphRow) -> Text:
    if row.warn:
        return Text(row.text, style="bold red")
    if row.kind == "node" and " → " in row.text:
        head, _, name = row.text.partition(" → ")
        label = Text(head)
        label.append(" → ")
        label.append(name, style="bold green")
        return label
    return Text(row.text, style=_ROW_STYLES[row.kind])


class AutogradGraphScreen(ModalScreen[None]):
    BINDINGS = [
        Binding("escape,q", "dismiss", "Close"),
        Binding("e", "expand_all", "Expand all"),
        Binding("c", "collapse_all", "Collapse all"),
    ]
    DEFAULT_CSS = """
    AutogradGraphScreen { align: center middle; }
    AutogradGraphScreen > Vertical {
        width: 95%; max-width: 140; height: auto; max-height: 90%;
        border: round $accent; background: $surface; padding: 0 1;
    }
    AutogradGraphScreen #graph-status { color: $text-muted; height: auto; }
    AutogradGraphScreen GraphView { height: auto; max-height: 80vh; }
    """

    def __init__(self, name: str, load: GraphLoader) -> None:
        super().__init__()
        self.tensor_name = name
        self.load = load
        self.graph: Graph | None = None

    def compose(self) -> ComposeResult:
        with Vertical() as box:
            box.border_title = f"autograd graph of {self.tensor_name}"
            box.border_subtitle = "Enter: fold, open a run, or go to a referenced node · e/c: expand/collapse all · Esc: close"
            yield Static(f"Asking the kernel for the graph of {self.tensor_name}…", id="graph-status")
            yield GraphView(_label, id="graph")

    def on_mount(self) -> None:
        self.query_one(GraphView).focus()
        self._fetch()

    @work(exclusive=True)
    async def _fetch(self) -> None:
        graph = await self.load(self.tensor_name)
        self.show_graph(graph)

    def show_graph(self, graph: Graph) -> None:
        if is_leaf_view(graph):
            from gradrepl.ui.screens.leaf_users import LeafUsersScreen

            self.app.switch_screen(LeafUsersScreen(graph, self.load))
            return
        self.graph = graph
        status = self.query_one("#graph-status", Static)
        status.update(Text(graph_title(graph), style="bold red" if graph.error or modified_count(graph) else ""))
        self.query_one(GraphView).show_rows(graph_rows(graph, grads=True), _starts_folded)

    def action_expand_all(self) -> None:
        self.query_one(GraphView).expand_all()

    def action_collapse_all(self) -> None:
        self.query_one(GraphView).collapse_all()


def _starts_folded(row: GraphRow) -> bool:
    return row.kind == "run" or row.depth >= EXPANDED_DEPTH  # a run opens on Enter
