"""A tensor's detail: everything the probe knows of it."""

from __future__ import annotations

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static

from gradrepl.protocol import TensorInfo, Values
from gradrepl.render.health import timeline
from gradrepl.render.tensors import flag, preview_lines, shape_text, stats_text
from gradrepl.ui.state.finiteness import FiniteHistory


def _values_block(values: Values | None) -> Text:
    if values is None:
        return Text("None", style="dim")
    text = Text("\n".join(preview_lines(values.preview)))
    if values.truncated:
        text.append("\n(a preview: the first and last 3 entries of each dimension)", style="dim")
    text.append(f"\n{stats_text(values.stats)}", style="dim")
    return text


def detail_table(info: TensorInfo, finiteness: FiniteHistory | None = None) -> Table:
    table = Table.grid(padding=(0, 2))
    table.add_column(style="bold", no_wrap=True)
    table.add_column()
    table.add_row("name", info.name)
    if info.aliases:
        table.add_row("also named", ", ".join(info.aliases))
    table.add_row("shape", f"{shape_text(info.shape)}  {info.dtype}  {info.device}  {info.layout}")
    table.add_row("type", info.type)
    table.add_row("requires_grad", flag(info.requires_grad))
    table.add_row("is_leaf", flag(info.is_leaf))
    table.add_row("grad_fn", info.grad_fn or "None")
    table.add_row("retains_grad", flag(info.retains_grad))
    table.add_row("version", f"{info.version}  (in-place changes since creation)")
    table.add_row("data", _values_block(info.data))
    said = finiteness.said(info.name, "data") if finiteness is not None else None
    if said:
        table.add_row("", Text(said, style="bold red"))
    table.add_row("grad", _values_block(info.grad))
    said = finiteness.said(info.name, "grad") if finiteness is not None else None
    if said:
        table.add_row("", Text(said, style="bold red"))
    if info.grad_history is not None and info.grad_history.calls:
        table.add_row("grad over calls", Text("\n".join(timeline(info.grad_history)), style=""))
    if info.note:
        table.add_row("note", Text(info.note, style="italic"))
    return table


class TensorDetailScreen(ModalScreen[str | None]):
    """Dismissed with "graph" when the user asks for the tensor's autograd graph (g)."""

    BINDINGS = [Binding("escape,enter,q", "dismiss", "Close"), Binding("g", "graph", "Graph")]
    DEFAULT_CSS = """
    TensorDetailScreen { align: center middle; }
    TensorDetailScreen > VerticalScroll {
        width: 90%; max-width: 110; height: auto; max-height: 90%;
        border: round $accent; background: $surface; padding: 0 1;
    }
    """

    def __init__(self, info: TensorInfo, finiteness: FiniteHistory | None = None) -> None:
        super().__init__()
        self.info = info
        self.finiteness = finiteness

    def compose(self) -> ComposeResult:
        with VerticalScroll() as box:
            box.border_title = f"tensor {self.info.name}"
            box.border_subtitle = "g: autograd graph · Escape closes"
            yield Static(detail_table(self.info, self.finiteness))


    def action_graph(self) -> None:
        self.dismiss("graph")
