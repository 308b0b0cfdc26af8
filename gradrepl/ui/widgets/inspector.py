"""The tensor inspector: one row per named tensor, what the last cell changed highlighted.
Enter opens a tensor's detail, g its autograd graph."""

from __future__ import annotations

from dataclasses import dataclass

from rich.text import Text
from textual.binding import Binding
from textual.message import Message
from textual.widgets import DataTable

from gradrepl.protocol import TensorInfo
from gradrepl.render.tensors import changed_fields, flag, shape_text
from gradrepl.render.text import values_preview

PREVIEW_WIDTH = 28
COLUMNS = (
    ("name", "name"),
    ("shape", "shape"),
    ("dtype", "dtype"),
    ("requires_grad", "req_grad"),
    ("is_leaf", "leaf"),
    ("grad_fn", "grad_fn"),
    ("data", "data"),
    ("grad", "grad"),
)
CHANGED = "bold black on yellow"


def _clip(text: str, width: int = PREVIEW_WIDTH) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


class TensorInspector(DataTable):
    """Rows follow the probe's table; Enter (or a click) opens a tensor's detail."""

    BINDINGS = [
        Binding("enter", "select_cursor", "Detail", show=False),
        Binding("g", "graph", "Graph"),
    ]

    @dataclass
    class DetailWanted(Message):
        tensor: TensorInfo

    @dataclass
    class GraphWanted(Message):
        name: str

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id, cursor_type="row", zebra_stripes=False)
        self.tensors: dict[str, TensorInfo] = {}
        self.changed: dict[str, set[str]] = {}
        self._marked: set[str] = set()  # rows drawn with change marks
        self.border_title = "Tensors"

    def on_mount(self) -> None:
        self._add_columns()

    def _add_columns(self) -> None:
        for key, label in COLUMNS:
            self.add_column(label, key=key)

    def show(self, tensors: tuple[TensorInfo, ...], *, highlight_changes: bool = True) -> None:
        """Replace the rows with this table; mark what differs from the previous one."""
        before = self.tensors
        after = {t.name: t for t in tensors}
        self.changed = {name: changed_fields(before.get(name), info) for name, info in after.items()} if highlight_changes else {}
        self.changed = {name: fields for name, fields in self.changed.items() if fields}
        previously_changed = set(self._marked)
        self._marked = set(self.changed)
        if list(before) == list(after) and self.row_count == len(after):
            # Same names in the same order: rewrite only the rows whose marks or values moved.
            self.tensors = after
            for name in previously_changed | set(self.changed):
                for key, cell in zip((k for k, _ in COLUMNS), self._cells(after[name], self.changed.get(name, set())), strict=True):
                    self.update_cell(name, key, cell, update_width=True)
        else:
            cursor_name = self._cursor_name()
            self.tensors = after
            self.clear(columns=True)  # columns as wide as the new rows, not the widest ever shown
            self._add_columns()
            for name, info in after.items():
                self.add_row(*self._cells(info, self.changed.get(name, set())), key=name)
            if cursor_name in after:
                self.move_cursor(row=list(after).index(cursor_name))
        count = f"{len(after)} tensor{'s' if len(after) != 1 else ''}"
        self.border_subtitle = count + (f", {len(self.changed)} changed" if self.changed else "")

    def _cursor_name(self) -> str | None:
        if not self.row_count:
            return None
        try:
            return str(self.coordinate_to_cell_key(self.cursor_coordinate).row_key.value)
        except Exception:
            return None

    def _cells(self, info: TensorInfo, changed: set[str]) -> list[Text]:
        new = "name" in changed

        def cell(key: str, text: str) -> Text:
            style = CHANGED if new or key in changed else ""
            return Text(text, style=style)

        grad = "—" if info.grad is None else _clip(values_preview(info.grad))
        return [
            cell("name", info.name),
            cell("shape", shape_text(info.shape)),
            cell("dtype", info.dtype),
            cell("requires_grad", flag(info.requires_grad)),
            cell("is_leaf", flag(info.is_leaf)),
            cell("grad_fn", info.grad_fn or "—"),
            cell("data", _clip(values_preview(info.data)) if info.data else (info.note or "…")),
            cell("grad", grad),
        ]

    def action_graph(self) -> None:
        name = self._cursor_name()
        if name is not None:
            self.post_message(self.GraphWanted(name))

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        event.stop()
        info = self.tensors.get(str(event.row_key.value))
        if info is not None:
            self.post_message(self.DetailWanted(info))
