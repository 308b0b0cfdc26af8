"""A leaf's screen: a leaf has no graph of its own, so this lists the named tensors whose
graphs reach it (the probe's `Graph.used_by`); Enter opens one's graph."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import OptionList, Static
from textual.widgets.option_list import Option

from gradrepl.protocol import Graph
from gradrepl.render.graph_labels import shape_label, users_label
from gradrepl.ui.screens.autograd_graph import GraphLoader


class LeafUsersScreen(ModalScreen[None]):
    BINDINGS = [Binding("escape,q", "dismiss", "Close")]
    DEFAULT_CSS = """
    LeafUsersScreen { align: center middle; }
    LeafUsersScreen > Vertical {
        width: 95%; max-width: 100; height: auto; max-height: 90%;
        border: round $accent; background: $surface; padding: 0 1;
    }
    LeafUsersScreen #leaf-status { height: auto; }
    LeafUsersScreen OptionList, LeafUsersScreen OptionList:focus {
        height: auto; max-height: 20; border: none; padding: 0; background: $surface;
    }
    """

    def __init__(self, graph: Graph, load: GraphLoader) -> None:
        super().__init__()
        self.graph = graph
        self.tensor_name = graph.root
        self.load = load

    def compose(self) -> ComposeResult:
        graph = self.graph
        users = graph.used_by or ()
        with Vertical() as box:
            box.border_title = f"{graph.root} is a leaf"
            box.border_subtitle = ("Enter: open that graph · Esc: close" if users else "Esc: close")
            status = (f"{graph.root} ({shape_label(graph.shape, graph.dtype)}) is a leaf: it has no graph of its own; "
                      f"backward accumulates into its .grad.\n")
            if users:
                count = len(users)
                status += f"The graph{'s' if count != 1 else ''} of {'these' if count != 1 else 'this'} named tensor" \
                          f"{'s' if count != 1 else ''} reach{'' if count != 1 else 'es'} it:"
            else:
                status += users_label(graph).capitalize() + "."
            yield Static(status, id="leaf-status")
            if users:
                yield OptionList(*(Option(name, id=name) for name in users), id="leaf-users")

    def on_mount(self) -> None:
        if self.graph.used_by:
            users = self.query_one(OptionList)
            users.highlighted = 0
            users.focus()

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        event.stop()
        name = event.option.id
        if name is not None:
            from gradrepl.ui.screens.autograd_graph import AutogradGraphScreen

            self.app.push_screen(AutogradGraphScreen(name, self.load))
