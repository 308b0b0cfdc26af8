"""The rows of an autograd graph (render.graph.graph_rows) with folding and a cursor.

Each row is drawn with the guides `gradrepl graph` prints (render.graph.row_guides), so the
next node of a chain hangs straight under the node before it and only a real second input
gets a branch. Only the rows on screen are drawn: a graph of 10,000 rows costs what a
screenful does. A row with rows under it shows `▼` (open) or `▶` (folded); folding a row
hides the rows under it, never the next node of its chain.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from rich.cells import cell_len
from rich.segment import Segment
from rich.style import Style
from rich.text import Text
from textual import events
from textual.binding import Binding
from textual.cache import LRUCache
from textual.geometry import Region, Size
from textual.message import Message
from textual.reactive import reactive
from textual.scroll_view import ScrollView
from textual.strip import Strip

from gradrepl.render.graph import GraphRow, row_guides

OPEN = "▼ "
FOLDED = "▶ "


def plain_label(row: GraphRow) -> Text:
    return Text(row.text)


class GraphView(ScrollView, can_focus=True):
    """Up / Down / PageUp / PageDown / Home / End move the cursor; Left folds the cursor's
    row (or goes to the row it hangs under), Right unfolds it; Enter or Space folds or
    unfolds it, or on a reference row goes to the node referred to, unfolding what hides it."""

    BINDINGS = [
        Binding("up", "cursor(-1)", "Up", show=False),
        Binding("down", "cursor(1)", "Down", show=False),
        Binding("pageup", "page(-1)", "Page up", show=False),
        Binding("pagedown", "page(1)", "Page down", show=False),
        Binding("home", "edge(False)", "First row", show=False),
        Binding("end", "edge(True)", "Last row", show=False),
        Binding("left", "fold_or_parent", "Fold", show=False),
        Binding("right", "unfold", "Unfold", show=False),
        Binding("enter,space", "select", "Select", show=False),
    ]
    COMPONENT_CLASSES = {"graph-view--guides", "graph-view--cursor"}
    DEFAULT_CSS = """
    GraphView { height: auto; background: $surface; color: $foreground; }
    GraphView > .graph-view--guides { color: $surface-lighten-2; }
    GraphView > .graph-view--cursor {
        background: $block-cursor-blurred-background; text-style: $block-cursor-blurred-text-style;
    }
    GraphView:focus > .graph-view--guides { color: $surface-lighten-3; }
    GraphView:focus > .graph-view--cursor {
        color: $block-cursor-foreground; background: $block-cursor-background; text-style: $block-cursor-text-style;
    }
    GraphView:light > .graph-view--guides { color: $surface-darken-1; }
    """

    cursor: reactive[int] = reactive(0, init=False)  # the cursor's line among the shown rows

    class CursorMoved(Message):
        """The cursor is on another row (`row`: its index into `rows`)."""

        def __init__(self, view: GraphView, row: int) -> None:
            super().__init__()
            self.view = view
            self.row = row

        @property
        def control(self) -> GraphView:
            return self.view

    def __init__(self, label: Callable[[GraphRow], Text] = plain_label, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.label = label
        self.rows: list[GraphRow] = []
        self.guides: list[str] = []
        self.folded: set[int] = set()  # indices of rows with rows under them, folded
        self.shown: list[int] = []  # indices of the rows drawn, top to bottom
        self._line_of: dict[int, int] = {}  # row index -> its line among the shown rows
        self._node_rows: dict[int, int] = {}  # node number -> index of its node (or run) row
        self._strips: LRUCache[tuple[int, bool, bool, int], Strip] = LRUCache(256)

    # ------------------------------------------------------------------ content

    def show_rows(self, rows: Sequence[GraphRow], folded: Callable[[GraphRow], bool]) -> None:
        """Draw these rows; a row with rows under it starts folded when `folded` says so."""
        self.rows = list(rows)
        self.guides = row_guides(self.rows)
        self.folded = {index for index, row in enumerate(self.rows) if row.has_children and folded(row)}
        self._node_rows = {row.number: index for index, row in enumerate(self.rows)
                           if row.kind in ("node", "run") and row.number is not None}
        self._relayout()
        self.set_reactive(GraphView.cursor, 0)
        self.scroll_to(0, 0, animate=False, force=True)

    def _relayout(self) -> None:
        """The shown rows again after a fold changed, keeping the cursor on its row."""
        at = self.shown[self.cursor] if self.shown and self.cursor < len(self.shown) else 0
        shown: list[int] = []
        hiding_under: int | None = None  # depth of the folded row whose rows are being skipped
        for index, row in enumerate(self.rows):
            if hiding_under is not None:
                if row.depth > hiding_under:
                    continue
                hiding_under = None
            shown.append(index)
            if index in self.folded:
                hiding_under = row.depth
        self.shown = shown
        self._line_of = {index: line for line, index in enumerate(shown)}
        self._strips.clear()
        widest = max((cell_len(self.guides[index]) + len(OPEN) + cell_len(self.rows[index].text) for index in shown), default=0)
        self.virtual_size = Size(widest + 1, len(shown))
        self.set_reactive(GraphView.cursor, self._line_of.get(self._visible_ancestor(at), 0))
        self.refresh()

    def _visible_ancestor(self, index: int) -> int:
        """The row itself when it is shown, else the folded row hiding it."""
        while index not in self._line_of and index > 0:
            index = self.parent_of(index) or 0
        return index

    def parent_of(self, index: int) -> int | None:
        """The row this row hangs under (None at depth 0)."""
        depth = self.rows[index].depth
        if depth == 0:
            return None
        for above in range(index - 1, -1, -1):
            if self.rows[above].depth < depth:
                return above
        return None

    @property
    def cursor_row(self) -> int | None:
        """The index (into rows) of the row under the cursor."""
        return self.shown[self.cursor] if self.shown else None

    def node_row(self, number: int) -> int | None:
        return self._node_rows.get(number)

    def line_of(self, index: int | None) -> int:
        """The line a row is drawn on among the shown rows (0 when it is hidden or None)."""
        return self._line_of.get(index, 0) if index is not None else 0

    def line_text(self, index: int) -> str:
        """A row as drawn, without its colours."""
        row = self.rows[index]
        arrow = (FOLDED if index in self.folded else OPEN) if row.has_children else ""
        return f"{self.guides[index]}{arrow}{row.text}"

    def shown_lines(self) -> list[str]:
        return [self.line_text(index) for index in self.shown]

    # ------------------------------------------------------------------ folding

    def set_folded(self, index: int, fold: bool) -> None:
        if not self.rows[index].has_children or (index in self.folded) == fold:
            return
        if fold:
            self.folded.add(index)
        else:
            self.folded.discard(index)
        self._relayout()

    def expand_all(self) -> None:
        self.folded.clear()
        self._relayout()

    def collapse_all(self) -> None:
        self.folded = {index for index, row in enumerate(self.rows) if row.has_children}
        self._relayout()

    def go_to_row(self, index: int) -> None:
        """The cursor onto this row, unfolding the rows that hide it."""
        above = self.parent_of(index)
        while above is not None:
            self.folded.discard(above)
            above = self.parent_of(above)
        self._relayout()
        self.cursor = self._line_of[index]
        self.call_after_refresh(self._scroll_to_cursor)  # once the new height is laid out

    # ------------------------------------------------------------------ keys and mouse

    def validate_cursor(self, line: int) -> int:
        return max(0, min(line, len(self.shown) - 1))

    def watch_cursor(self, before: int, now: int) -> None:
        for line in (before, now):
            self.refresh(Region(0, line - round(self.scroll_y), self.size.width, 1))
        self._scroll_to_cursor()
        if self.shown:
            self.post_message(self.CursorMoved(self, self.shown[now]))

    def _scroll_to_cursor(self) -> None:
        if self.shown:
            self.scroll_to_region(Region(0, self.cursor, 1, 1), animate=False, force=True, x_axis=False)

    def action_cursor(self, lines: int) -> None:
        self.cursor += lines

    def action_page(self, pages: int) -> None:
        self.cursor += pages * max(1, self.scrollable_content_region.height - 1)

    def action_edge(self, end: bool) -> None:
        self.cursor = len(self.shown) - 1 if end else 0

    def action_fold_or_parent(self) -> None:
        index = self.cursor_row
        if index is None:
            return
        if self.rows[index].has_children and index not in self.folded:
            self.set_folded(index, True)
            return
        parent = self.parent_of(index)
        if parent is not None:
            self.cursor = self._line_of[parent]

    def action_unfold(self) -> None:
        index = self.cursor_row
        if index is not None and index in self.folded:
            self.set_folded(index, False)

    def action_select(self) -> None:
        index = self.cursor_row
        if index is None:
            return
        row = self.rows[index]
        target = self.node_row(row.number) if row.kind == "ref" and row.number is not None else None
        if target is not None:
            self.go_to_row(target)
        elif row.has_children:
            self.set_folded(index, index not in self.folded)

    def on_click(self, event: events.Click) -> None:
        line = event.y + round(self.scroll_y)
        if not 0 <= line < len(self.shown):
            return
        event.stop()
        self.cursor = line
        index = self.shown[line]
        column = event.x + round(self.scroll_x) - len(self.guides[index])
        if self.rows[index].has_children and 0 <= column < len(OPEN):
            self.set_folded(index, index not in self.folded)

    def _on_focus(self, event: events.Focus) -> None:
        self._strips.clear()
        self.refresh()

    def _on_blur(self, event: events.Blur) -> None:
        self._strips.clear()
        self.refresh()

    # ------------------------------------------------------------------ drawing

    def notify_style_update(self) -> None:
        super().notify_style_update()
        self._strips.clear()

    def render_line(self, y: int) -> Strip:
        width = self.scrollable_content_region.width
        base = self.rich_style
        line = y + round(self.scroll_y)
        if not 0 <= line < len(self.shown):
            return Strip.blank(width, base)
        index = self.shown[line]
        at_cursor = line == self.cursor
        key = (index, at_cursor, index in self.folded, id(base))
        strip = self._strips.get(key)
        if strip is None:
            strip = self._strips[key] = self._row_strip(index, at_cursor, base)
        x = round(self.scroll_x)
        return strip.crop_extend(x, x + width, base).apply_offsets(x, line)

    def _row_strip(self, index: int, at_cursor: bool, base: Style) -> Strip:
        row = self.rows[index]
        text = Text(no_wrap=True, end="")
        guides = self.guides[index]
        depth_note, _, lines = guides.rpartition("] ")  # a deep row's "[depth 30] " is text, not a guide
        if depth_note:
            text.append(depth_note + "] ")
        text.append(lines, style=self.get_component_rich_style("graph-view--guides", partial=True))
        body = Text(no_wrap=True, end="")
        if row.has_children:
            body.append(FOLDED if index in self.folded else OPEN)
        body.append_text(self.label(row))
        if at_cursor:
            body.stylize(self.get_component_rich_style("graph-view--cursor", partial=True))
        text.append_text(body)
        segments = list(text.render(self.app.console, end=""))
        return Strip(Segment.apply_style(segments, base), text.cell_len)
