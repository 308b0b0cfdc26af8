"""A tensor's autograd graph as a collapsible tree, asked of the kernel when the screen opens.

A chain's next node is the next row at the same depth; a run of alike iterations is one row,
folded, with its first and last iteration under it. For a leaf, the screen gives way to the
list of the graphs that use it (leaf_users.py)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Static, Tree
from textual.widgets.tree import TreeNode

from gradrepl.protocol import Graph
from gradrepl.render.graph import GraphRow, graph_rows, graph_title, modified_count
from gradrepl.render.graph_labels import is_leaf_view

GraphLoader = Callable[[str], Awaitable[Graph]]

EXPANDED_DEPTH = 12  # branches nested deeper start folded
_ROW_STYLES = {"node": "", "run": "bold", "saved": "dim", "ref": "italic cyan", "cut": "italic", "gap": "italic",
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
    AutogradGraphScreen Tree { height: auto; max-height: 80vh; background: $surface; }
    """

    def __init__(self, name: str, load: GraphLoader) -> None:
        super().__init__()
        self.tensor_name = name
        self.load = load
        self.graph: Graph | None = None
        self.by_number: dict[int, TreeNode[GraphRow]] = {}

    def compose(self) -> ComposeResult:
        with Vertical() as box:
            box.border_title = f"autograd graph of {self.tensor_name}"
            box.border_subtitle = "Enter: fold, open a run, or go to a referenced node · e/c: expand/collapse all · Esc: close"
            yield Static(f"Asking the kernel for the graph of {self.tensor_name}…", id="graph-status")
            tree: Tree[GraphRow] = Tree(self.tensor_name, id="graph")
            tree.show_root = False
            tree.guide_depth = 3
            yield tree

    def on_mount(self) -> None:
        self.query_one(Tree).focus()
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
        tree: Tree[GraphRow] = self.query_one(Tree)
        tree.clear()
        self.by_number.clear()
        parents: list[TreeNode[GraphRow]] = [tree.root]
        for row in graph_rows(graph):
            del parents[row.depth + 1:]
            parent = parents[-1]
            if row.has_children:
                expand = row.kind != "run" and row.depth < EXPANDED_DEPTH  # a run opens on Enter
                node = parent.add(_label(row), data=row, expand=expand)
            else:
                node = parent.add_leaf(_label(row), data=row)
            if row.kind == "node" and row.number is not None:
                self.by_number[row.number] = node
            parents.append(node)
        tree.root.expand()
        tree.cursor_line = 0  # Enter acts on the first row at once

    def on_tree_node_selected(self, event: Tree.NodeSelected[GraphRow]) -> None:
        row = event.node.data
        if row is None or row.kind != "ref" or row.number is None:
            return
        target = self.by_number.get(row.number)
        if target is not None:
            event.stop()
            parent = target.parent
            while parent is not None:
                parent.expand()
                parent = parent.parent
            tree = self.query_one(Tree)
            tree.call_after_refresh(tree.move_cursor, target)

    def action_expand_all(self) -> None:
        self.query_one(Tree).root.expand_all()

    def action_collapse_all(self) -> None:
        for child in self.query_one(Tree).root.children:
            child.collapse_all()

