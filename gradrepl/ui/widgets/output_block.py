"""One output of a cell (a stream, an Out value, a display, a traceback), drawn line by line.

Only the lines on screen are rendered, so an output of 100,000 lines costs what a screenful
does, folded or not. A long output shows its first and its last lines with one fold row
between them ("▶ 99,976 more lines"); while the cell runs the last lines follow the output,
so a training loop's progress can be watched. Enter, Space or a click on the fold row opens
it (the fold row then says "▼ fold") and closes it again. Opened, up to IN_PLACE_LINES lines
are laid out in place; a longer output keeps the folded block's height and scrolls its lines
inside it (the wheel, its bar, Up / Down / PageUp / PageDown), as a notebook scrolls a long
output: a widget 100,000 rows tall costs Textual O(rows) on every layout (dirty lines,
spatial map, and the garbage those leave), which held keys up for 100 ms and more.

Lines are never reflowed: a tensor keeps torch's own line breaks. A block wider than the
pane has a scrollbar row under it and "…" where a line is cut; it scrolls sideways (Shift +
wheel, the horizontal wheel, the bar, or Left / Right / Home / End when it has focus).
"""

from __future__ import annotations

from rich.cells import cell_len
from rich.segment import Segment
from rich.style import Style
from rich.text import Text
from textual import events
from textual.actions import SkipAction
from textual.binding import Binding
from textual.cache import LRUCache
from textual.geometry import Size
from textual.reactive import reactive
from textual.scroll_view import ScrollView
from textual.selection import Selection
from textual.strip import Strip

from gradrepl.render.terminal_output import TerminalText, strip_sgr

FOLD_LINES = 30  # outputs longer than this fold between their head and their tail
HEAD_LINES = 12
TAIL_LINES = 12
FOLDED_ROWS = HEAD_LINES + 1 + TAIL_LINES
IN_PLACE_LINES = 1000  # an opened output up to this long is laid out in place; a longer one scrolls inside
WRAP_COLUMNS = 1000  # a longer line is broken here (only absurd lines are; torch's are 80)
TAB_SIZE = 8


class OutputBlock(ScrollView, can_focus=True, inherit_bindings=False):
    """Lines wider than the pane are cut at its edge, never reflowed. The block scrolls
    sideways when it is wider than the pane, and up and down only when it is an opened long
    output; otherwise its keys go on to the transcript. `prefix` ("Out[3]: ") starts the
    first line; the other lines are indented to match."""

    BINDINGS = [
        Binding("enter,space", "toggle_fold", "Fold", show=False),
        Binding("right", "shift(8)", "Scroll right", show=False),
        Binding("left", "shift(-8)", "Scroll left", show=False),
        Binding("home", "edge(False)", "First column", show=False),
        Binding("end", "edge(True)", "Last column", show=False),
        Binding("down", "lines(1)", "Next line", show=False),
        Binding("up", "lines(-1)", "Previous line", show=False),
        Binding("pagedown", "pages(1)", "Next page", show=False),
        Binding("pageup", "pages(-1)", "Previous page", show=False),
    ]
    COMPONENT_CLASSES = {"output-block--fold", "output-block--fold-focused", "output-block--prefix",
                         "output-block--cut"}
    DEFAULT_CSS = """
    OutputBlock { height: auto; width: 1fr; overflow-x: auto; overflow-y: hidden; scrollbar-size-horizontal: 1; }
    OutputBlock.-scrolls-inside { overflow-y: auto; }
    OutputBlock > .output-block--fold { color: $accent; text-style: bold; }
    OutputBlock > .output-block--fold-focused { color: $text; background: $accent 40%; text-style: bold; }
    OutputBlock > .output-block--prefix { color: $error; text-style: bold; }
    OutputBlock > .output-block--cut { color: $accent; text-style: bold; }
    """

    expanded: reactive[bool] = reactive(False)

    def __init__(self, text: str = "", *, prefix: str = "", classes: str | None = None) -> None:
        super().__init__(classes=classes)
        self.prefix = prefix
        self._terminal = TerminalText()
        self._rows: list[str] = []  # finished lines as drawn (very long ones broken)
        self._consumed = 0  # lines of the screen already in _rows
        self._widest = 0
        self._strips: LRUCache[tuple[int, Style], Strip] = LRUCache(1024)
        self._output_ended = False
        if text:
            self._take(text)
        self._size_to_content()

    # ------------------------------------------------------------------ content

    def feed(self, text: str) -> None:
        """More output for this block (a stream's next chunk)."""
        following = self.scrolls_inside and self.scroll_y >= self.max_scroll_y
        self._take(text)
        self._size_to_content()  # a layout only when the rows or the widest line changed
        if following and self.scrolls_inside:
            self.scroll_to(y=self.max_scroll_y, animate=False)
        self.refresh()

    def _size_to_content(self) -> None:
        width = cell_len(self.prefix) + max(self._widest, *(_cells(line) for line in self._current_rows()), 1)
        self.virtual_size = Size(width, self.row_count)
        self.set_class(self.scrolls_inside, "-scrolls-inside")

    def close(self) -> None:
        """The output has ended: an unfinished escape sequence at its end is dropped."""
        self._terminal.close()
        self._output_ended = True

    def _take(self, text: str) -> None:
        self._terminal.feed(text)
        finished = self._terminal.finished_lines
        for line in finished[self._consumed:]:
            self._add_row(line)
        self._consumed = len(finished)

    def _add_row(self, line: str) -> None:
        if len(line) <= WRAP_COLUMNS:
            self._rows.append(line)
            self._widest = max(self._widest, _cells(line))
            return
        plain = strip_sgr(line)
        for start in range(0, len(plain), WRAP_COLUMNS):
            self._rows.append(plain[start : start + WRAP_COLUMNS])
        self._widest = max(self._widest, WRAP_COLUMNS)

    def _current_rows(self) -> list[str]:
        line = self._terminal.current_line()
        if not line:
            return []
        if len(line) <= WRAP_COLUMNS:
            return [line]
        plain = strip_sgr(line)
        return [plain[start : start + WRAP_COLUMNS] for start in range(0, len(plain), WRAP_COLUMNS)]

    @property
    def lines(self) -> list[str]:
        """Every line of the output as drawn (SGR sequences kept), the unfinished one included."""
        return [*self._rows, *self._current_rows()]

    @property
    def plain_text(self) -> str:
        return "\n".join(strip_sgr(line) for line in self.lines)

    @property
    def line_count(self) -> int:
        return len(self._rows) + len(self._current_rows())

    @property
    def row_count(self) -> int:
        """Lines of screen the block takes (fold row included)."""
        total = self.line_count
        if not self.foldable:
            return total
        return total + 1 if self.expanded else HEAD_LINES + 1 + TAIL_LINES

    @property
    def foldable(self) -> bool:
        return self.line_count > FOLD_LINES

    @property
    def scrolls_inside(self) -> bool:
        """Opened and longer than IN_PLACE_LINES: the block keeps its folded height."""
        return self.expanded and self.line_count > IN_PLACE_LINES

    @property
    def hidden_lines(self) -> int:
        return self.line_count - HEAD_LINES - TAIL_LINES if self.foldable else 0

    @property
    def fold_title(self) -> str:
        if not self.foldable:
            return ""
        if self.expanded:
            return f"▼ fold {self.hidden_lines:,} lines"
        return f"▶ {self.hidden_lines:,} more lines"

    def _line_at(self, row: int) -> int | None:
        """The index of the line drawn on `row`, or None for the fold row."""
        if not self.foldable or row < HEAD_LINES:
            return row
        if row == HEAD_LINES:
            return None
        if self.expanded:
            return row - 1
        return self.line_count - TAIL_LINES + (row - HEAD_LINES - 1)

    def view_text(self) -> str:
        """What the block shows, as plain text (the fold row as its title)."""
        rows = []
        lines = self.lines
        indent = " " * cell_len(self.prefix)
        for row in range(self.row_count):
            index = self._line_at(row)
            lead = self.prefix if index == 0 else indent
            rows.append(indent + self.fold_title if index is None else lead + strip_sgr(lines[index]))
        return "\n".join(rows)

    # ------------------------------------------------------------------ folding

    def action_toggle_fold(self) -> None:
        if self.foldable:
            self.expanded = not self.expanded

    def focus_on_click(self) -> bool:
        # Only a block with keys of its own (it scrolls sideways or inside) takes focus on a
        # click; a click elsewhere (the fold row, which it opens) leaves the keys where they
        # were (the input, mostly): moving focus in and out again restyles the panes and the
        # footer, which a key typed after the click waited for.
        on_fold_row = self.foldable and self._row_at_screen_y(self.app.mouse_position.y) == HEAD_LINES
        return not on_fold_row and bool(self.max_scroll_x or self.scrolls_inside)

    def _row_at_screen_y(self, y: int) -> int:
        return y - self.content_region.y + round(self.scroll_y)

    def on_click(self, event: events.Click) -> None:
        if self.foldable and event.y + round(self.scroll_y) == HEAD_LINES:
            event.stop()
            self.action_toggle_fold()

    def watch_expanded(self) -> None:
        self._strips.clear()
        if not self.expanded:
            self.scroll_to(y=0, animate=False, force=True)
        self._size_to_content()

    # ------------------------------------------------------------------ scrolling

    def action_shift(self, columns: int) -> None:
        if not self.max_scroll_x:
            raise SkipAction()
        self.scroll_to(x=self.scroll_x + columns, animate=False)

    def action_edge(self, end: bool) -> None:
        """Home / End: the first or the last column of a wide block, else the first or the
        last line of one that scrolls inside; else the key is the transcript's (End: its
        latest output)."""
        if self.max_scroll_x:
            self.scroll_to(x=self.max_scroll_x if end else 0, animate=False)
        elif self.scrolls_inside:
            self.scroll_to(y=self.max_scroll_y if end else 0, animate=False)
        else:
            raise SkipAction()

    def action_lines(self, lines: int) -> None:
        if not self.scrolls_inside:
            raise SkipAction()
        self.scroll_to(y=self.scroll_y + lines, animate=False)

    def action_pages(self, pages: int) -> None:
        if not self.scrolls_inside:
            raise SkipAction()
        self.scroll_to(y=self.scroll_y + pages * max(1, self.scrollable_content_region.height - 1), animate=False)

    def get_content_height(self, container: Size, viewport: Size, width: int) -> int:
        return min(self.row_count, FOLDED_ROWS) if self.scrolls_inside else self.row_count

    def _on_focus(self, event: events.Focus) -> None:
        self.refresh()

    def _on_blur(self, event: events.Blur) -> None:
        self.refresh()

    # ------------------------------------------------------------------ drawing

    def notify_style_update(self) -> None:
        super().notify_style_update()
        self._strips.clear()

    def render_line(self, y: int) -> Strip:
        width = self.scrollable_content_region.width
        style = self.rich_style
        row = y + round(self.scroll_y)
        if row >= self.row_count:
            return Strip.blank(width, style)
        index = self._line_at(row)
        if index is None:
            fold_class = "output-block--fold-focused" if self.has_focus else "output-block--fold"
            title = Text(self.fold_title, style=self.get_component_rich_style(fold_class))
            strip = self._strip(Text(" " * cell_len(self.prefix)) + title, style)
        elif index < len(self._rows):
            key = (index, style)
            cached = self._strips.get(key)
            if cached is None:
                cached = self._strips[key] = self._line_strip(index, self._rows[index], style)
            strip = cached
        else:
            current = self._current_rows()
            at = index - len(self._rows)
            strip = self._line_strip(index, current[at], style) if at < len(current) else Strip.blank(0)
        x = round(self.scroll_x)
        if strip.cell_length <= x + width or width < 2:
            return strip.crop_extend(x, x + width, style).apply_offsets(x, row)
        cut = Segment("…", style + self.get_component_rich_style("output-block--cut"))
        return Strip.join([strip.crop_extend(x, x + width - 1, style), Strip([cut], 1)]).apply_offsets(x, row)

    def _line_strip(self, index: int, line: str, style: Style) -> Strip:
        if "\x1b" in line or "\t" in line:  # colours or tabs: Rich lays the line out
            return self._strip(self._line_text(index, line), style)
        segments = [Segment(line)]
        if self.prefix:
            lead = self.prefix if index == 0 else " " * cell_len(self.prefix)
            prefix_style = self.get_component_rich_style("output-block--prefix") if index == 0 else None
            segments.insert(0, Segment(lead, prefix_style))
        return Strip(Segment.apply_style(segments, style), cell_len(self.prefix) + _cells(line))

    def _line_text(self, index: int, line: str) -> Text:
        body = Text.from_ansi(line, end="") if "\x1b" in line else Text(line, end="")
        if "\t" in line:
            body.expand_tabs(TAB_SIZE)
        if not self.prefix:
            return body
        if index == 0:
            prefix = Text(self.prefix, style=self.get_component_rich_style("output-block--prefix"))
        else:
            prefix = Text(" " * cell_len(self.prefix))
        return prefix + body

    def _strip(self, text: Text, style: Style) -> Strip:
        text.no_wrap = True
        segments = list(text.render(self.app.console, end=""))
        return Strip(Segment.apply_style(segments, style), text.cell_len)

    # ------------------------------------------------------------------ selection

    def get_selection(self, selection: Selection) -> tuple[str, str] | None:
        return selection.extract(self.view_text()), "\n"

    def selection_updated(self, selection: Selection | None) -> None:
        self._strips.clear()
        self.refresh()


def _cells(line: str) -> int:
    plain = strip_sgr(line) if "\x1b" in line else line
    if "\t" in plain:
        plain = plain.expandtabs(TAB_SIZE)
    return cell_len(plain) if not plain.isascii() else len(plain)
