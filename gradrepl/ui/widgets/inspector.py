"""The tensor inspector: one row per tensor object (its other names beside its own), a
module's parameters folded under a summary row, what the last cell changed highlighted and
scrolled into view. Enter opens a tensor's detail (on a module row: folds or unfolds it, as
Space does), g its autograd graph, / a filter by name, Home / End the first / last row.
The rows and their texts come from gradrepl/render/inspector_rows.py and inspector_cells.py."""

from __future__ import annotations

from dataclasses import dataclass

from rich.text import Text
from textual import events
from textual.binding import Binding
from textual.coordinate import Coordinate
from textual.markup import escape
from textual.message import Message
from textual.widgets import DataTable

from gradrepl.protocol import TensorInfo
from gradrepl.render.inspector_cells import COLUMNS, WHOLE_ROW, Cells, column_widths, cut, row_cells, row_changes
from gradrepl.render.inspector_rows import ModuleRow, Row, TensorRow, inspector_rows, unfolded_at_first
from gradrepl.render.tensors import changed_fields
from gradrepl.render.text import counted

CHANGED = "bold black on yellow"
TITLE = "Tensors"
CURSOR = "▏"  # where the filter's next character goes


class TensorInspector(DataTable):
    """Rows follow the probe's table; Enter (or a click) opens a tensor's detail."""

    BINDINGS = [
        Binding("enter", "select_cursor", "Detail", show=False),
        Binding("space", "fold", "Fold", show=False),
        Binding("g", "graph", "Graph"),
        Binding("/", "filter", "Filter"),
        Binding("escape", "clear_filter", "Clear filter", show=False),
        Binding("home", "first_row", "First row", show=False),
        Binding("end", "last_row", "Last row", show=False),
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
        self.changed: dict[str, set[str]] = {}  # tensor name -> what the last cell changed
        self.unfolded: dict[tuple[str, ...], bool] = {}  # module path -> the user's choice
        self.reported = False  # no table yet: no count under the pane
        self.filter_text = ""
        self.typing_filter = False
        self.shown_rows: list[Row] = []  # as drawn, top to bottom
        self._drawn: dict[str, tuple[tuple[str, ...], frozenset[str]]] = {}  # row key -> texts, marks
        self._widths: dict[str, int] = {}
        self._revealing: tuple[float, int, int] | None = None
        self._user_moved_view = False  # by a key or the wheel, since the app started  # scroll_y before the cell, first and last changed row
        self.border_title = TITLE

    def on_mount(self) -> None:
        self._draw()  # the headers, before any tensor

    # ------------------------------------------------------------ what is shown

    def show(self, tensors: tuple[TensorInfo, ...], *, highlight_changes: bool = True) -> None:
        """Replace the rows with this table; mark what differs from the previous one and
        scroll it into view."""
        before = self.tensors
        after = {t.name: t for t in tensors}
        changed = {name: changed_fields(before.get(name), info) for name, info in after.items()} if highlight_changes else {}
        self.changed = {name: fields for name, fields in changed.items() if fields}
        self.tensors = after
        self.reported = True
        self._draw(reveal=True)

    def _available_width(self) -> int:
        width = self.size.width or max(self.app.size.width - 2, 0)  # before the first layout: the screen's
        return max(width - self.styles.scrollbar_size_vertical, 1)

    def _draw(self, *, reveal: bool = False) -> None:
        scroll_y = self.scroll_y
        rows = inspector_rows(tuple(self.tensors.values()), self.unfolded, self.filter_text)
        texts = [row_cells(row) for row in rows]
        widths = column_widths(texts, self._available_width(), self.cell_padding)
        marks = [frozenset(row_changes(row, self.changed)) for row in rows]
        drawn = {row.key: (self._cut(cells, widths), mark) for row, cells, mark in zip(rows, texts, marks, strict=True)}
        same_rows = [row.key for row in rows] == [row.key for row in self.shown_rows] and self.row_count == len(rows)
        if same_rows and widths == self._widths and self.columns:
            for key, (cells, mark) in drawn.items():
                if self._drawn.get(key) != (cells, mark):
                    for (column, _), text in zip(self._shown_columns(), cells, strict=True):
                        self.update_cell(key, column, self._styled(text, column, mark))
        else:
            self._rebuild(rows, drawn, widths, scroll_y)
        self.shown_rows, self._drawn = rows, drawn
        self._update_titles()
        changed_rows = [index for index, mark in enumerate(marks) if mark]
        if reveal:
            # From where the user left the view; a view only our reveals moved counts from the top,
            # so where it ends depends on the rows and the pane, not on how fast the pane grew.
            start = scroll_y if self._user_moved_view else 0.0
            self._revealing = (start, changed_rows[0], changed_rows[-1]) if changed_rows else None
            self.call_after_refresh(self._reveal)

    def _shown_columns(self) -> list[tuple[str, str]]:
        return [(key, label) for key, label in COLUMNS if key in self._widths]

    def _cut(self, cells: Cells, widths: dict[str, int]) -> tuple[str, ...]:
        return tuple(cut(cells[key], widths[key]) for key, _ in COLUMNS if key in widths)

    def _styled(self, text: str, column: str, marks: frozenset[str]) -> Text:
        return Text(text, style=CHANGED if WHOLE_ROW in marks or column in marks else "")

    def _rebuild(self, rows: list[Row], drawn: dict[str, tuple[tuple[str, ...], frozenset[str]]],
                 widths: dict[str, int], scroll_y: float) -> None:
        cursor_key = self.cursor_key()
        self._widths = widths
        self.clear(columns=True)
        for key, label in self._shown_columns():
            self.add_column(label, key=key, width=widths[key])
        for row in rows:
            cells, mark = drawn[row.key]
            self.add_row(*(self._styled(text, column, mark) for (column, _), text in zip(self._shown_columns(), cells, strict=True)),
                         key=row.key)
        keys = [row.key for row in rows]
        cursor = keys.index(cursor_key) if cursor_key in keys else 0
        self.call_after_refresh(self._restore_view, scroll_y, cursor)

    def _restore_view(self, scroll_y: float, cursor: int) -> None:
        """Where the view and the cursor were before the table was rebuilt (setting the cursor
        through its reactive would scroll to it)."""
        if cursor < self.row_count:
            self.set_reactive(DataTable.cursor_coordinate, Coordinate(cursor, 0))
            self.refresh()
        self.scroll_to(y=scroll_y, animate=False, immediate=True)

    def _reveal(self) -> None:
        """The rows the last cell changed on screen (as many as fit, from the first), the
        view moved as little as it takes from where it was before the cell. Done again when
        the pane's height settles, until a key or the mouse moves the view."""
        if self._revealing is None:
            return
        before, first, last = self._revealing
        header = self.header_height if self.show_header else 0
        height = max(self.scrollable_content_region.height - header, 1)
        y = before
        if last - first + 1 > height or first < before:
            y = first
        elif last >= before + height:
            y = last - height + 1
        self.scroll_to(y=y, animate=False, immediate=True)

    def _update_titles(self) -> None:
        total = len(self.tensors)
        names = sum(len(info.names) for info in self.tensors.values())
        if self.filter_text:
            shown = sum(isinstance(row, TensorRow) for row in self.shown_rows)
            count = f"{shown:,} of {counted(total, 'tensor')}"
        else:
            count = counted(total, "tensor")
        if names > total:
            count += f" ({names:,} names)"
        changed = f", {len(self.changed):,} changed" if self.changed else ""
        self.border_subtitle = count + changed if self.reported else ""
        if self.typing_filter or self.filter_text:
            self.border_title = f"{TITLE}  /{escape(self.filter_text)}{CURSOR if self.typing_filter else ''}"
        else:
            self.border_title = TITLE

    def on_resize(self, event: events.Resize) -> None:
        if self.shown_rows and column_widths([row_cells(row) for row in self.shown_rows], self._available_width(),
                                             self.cell_padding) != self._widths:
            self._draw()
        if self._revealing is not None:
            self.call_after_refresh(self._reveal)

    def on_mouse_scroll_down(self) -> None:
        self._revealing, self._user_moved_view = None, True

    def on_mouse_scroll_up(self) -> None:
        self._revealing, self._user_moved_view = None, True

    # ------------------------------------------------------------ the row under the cursor

    def cursor_key(self) -> str | None:
        if not self.row_count:
            return None
        try:
            return str(self.coordinate_to_cell_key(self.cursor_coordinate).row_key.value)
        except Exception:
            return None

    def cursor_row_item(self) -> Row | None:
        key = self.cursor_key()
        return next((row for row in self.shown_rows if row.key == key), None)

    def move_to(self, name: str) -> None:
        """The cursor to the row of the tensor (or module row key) `name`."""
        keys = [row.key for row in self.shown_rows]
        self.move_cursor(row=keys.index(name))

    # ------------------------------------------------------------ keys

    def action_graph(self) -> None:
        row = self.cursor_row_item()
        if isinstance(row, TensorRow):
            self.post_message(self.GraphWanted(row.key))
        elif isinstance(row, ModuleRow):
            self.notify(f"{'.'.join(row.path)} is a module: g shows the graph of one of its tensors.", timeout=4)

    def action_fold(self) -> None:
        row = self.cursor_row_item()
        if isinstance(row, ModuleRow):
            self.unfolded[row.path] = not row.unfolded
            if self.unfolded[row.path] == unfolded_at_first(row.path, len(row.tensors)):
                del self.unfolded[row.path]  # as it would start: a new model under this name starts so too
            self._draw()

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        event.stop()
        row = next((r for r in self.shown_rows if r.key == event.row_key.value), None)
        if isinstance(row, ModuleRow):
            self.action_fold()
        elif isinstance(row, TensorRow):
            self.post_message(self.DetailWanted(row.info))

    def action_first_row(self) -> None:
        if self.row_count:
            self.move_cursor(row=0)

    def action_last_row(self) -> None:
        if self.row_count:
            self.move_cursor(row=self.row_count - 1)

    def action_filter(self) -> None:
        self.typing_filter = True
        self._update_titles()

    def action_clear_filter(self) -> None:
        self._set_filter("", typing=False)

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "clear_filter":
            return bool(self.filter_text or self.typing_filter)  # else Escape is not the inspector's
        return True

    def _set_filter(self, text: str, *, typing: bool) -> None:
        changed = text != self.filter_text
        self.filter_text, self.typing_filter = text, typing
        if changed:
            self._draw()  # the cursor stays on its tensor while it is shown, else goes to the first row
        self._update_titles()

    def on_key(self, event: events.Key) -> None:
        """While the filter is typed, printable keys and Backspace edit it, Enter keeps it,
        Escape clears it; arrows still move the cursor. `/` starts it here rather than through
        its binding, which runs only once the key has gone up to the app: the keys after it,
        sent at once (a paste, a fast typist, tmux), would reach this widget first and go on
        to the code input."""
        self._revealing, self._user_moved_view = None, True
        if not self.typing_filter:
            if event.key == "slash":  # here, not only as a binding: the keys typed right after are the filter's
                event.stop()
                event.prevent_default()
                self.action_filter()
            return
        if event.key == "backspace":
            self._set_filter(self.filter_text[:-1], typing=True)
        elif event.key == "escape":
            self._set_filter("", typing=False)
        elif event.key == "enter":
            self._set_filter(self.filter_text, typing=False)
        elif event.is_printable and event.character is not None:
            self._set_filter(self.filter_text + event.character, typing=True)
        else:
            return
        event.stop()
        event.prevent_default()

    def on_blur(self) -> None:
        if self.typing_filter:
            self._set_filter(self.filter_text, typing=False)
