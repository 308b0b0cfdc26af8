"""The transcript: executed cells as a notebook shows them, In [n] / Out[n], outputs, errors."""

from __future__ import annotations

import re
from collections.abc import Sequence

from rich.console import RenderableType
from rich.syntax import Syntax
from rich.text import Text
from textual.containers import Vertical, VerticalScroll
from textual.widgets import Collapsible, Static

from gradrepl.client.events import Display, Error, Event, OutputCut, Result, Stream, strip_ansi
from gradrepl.protocol import Explanation
from gradrepl.ui.state.worksheet import SessionCell

FOLD_LINES = 30  # outputs longer than this show their head; the rest folds away
FOLD_CHARS = 6000  # the same for outputs of a few very long lines
HEAD_LINES = 12
HEAD_CHARS = 2000
_TRACEBACK_PADDING = re.compile(r" {3,}Traceback")  # IPython pads the header to 75 columns
_ADDRESS = re.compile(r"\b0x[0-9a-fA-F]{6,16}\b")


def mask_addresses(text: str) -> str:
    return _ADDRESS.sub("0x…", text)


class CellView(Vertical):
    """One cell: its prompt and source, then each output as it arrives."""

    DEFAULT_CSS = """
    CellView { height: auto; margin-bottom: 1; }
    CellView > .prompt { color: $text-muted; }
    CellView > .source { padding-left: 2; }
    CellView > .output { padding-left: 2; }
    CellView > .stderr { padding-left: 2; color: $warning; }
    CellView > .error { padding-left: 2; }
    CellView > .explain { margin: 1 0 0 2; padding: 0 1; border-left: thick $warning; }
    CellView > .note { padding-left: 2; color: $text-muted; text-style: italic; }
    CellView Collapsible { padding-left: 2; border: none; background: transparent; }
    """

    def __init__(self, cell: SessionCell, *, stable: bool = False) -> None:
        super().__init__(id=f"cell-{cell.number}")
        self.cell = cell
        self.stable = stable  # hide memory addresses (snapshot tests)
        self._stream_name: str | None = None
        self._stream_text = ""
        self._stream_lines = 0
        self._stream_widget: Static | None = None

    def compose(self):
        yield Static(self._prompt_text(), classes="prompt")
        yield Static(self._source(), classes="source")

    def _prompt_text(self) -> Text:
        cell = self.cell
        count = cell.execution_count
        label = f"In [{count if count is not None else ' '}]:"
        where = f"  line {cell.script_line} of the script" if cell.from_script else ""
        state = {"queued": "  queued", "running": "  running…", "cancelled": "  not run",
                 "timeout": "  timed out", "died": "  kernel died"}.get(cell.state, "")
        text = Text(label, style="bold green")
        text.append(where, style="dim")
        text.append(state, style="bold yellow" if cell.state in ("queued", "running") else "bold red")
        return text

    def _source(self) -> RenderableType:
        return Syntax(self.cell.source, "python", theme="monokai", background_color="default", word_wrap=True)

    def refresh_prompt(self) -> None:
        self.query_one(".prompt", Static).update(self._prompt_text())

    def add_event(self, event: Event) -> None:
        if isinstance(event, Stream):
            self._add_stream(event)
            return
        self._close_stream()
        if isinstance(event, Result):
            label = Text(f"Out[{event.execution_count}]: ", style="bold red")
            self._add_block(label, self._clean(event.text), "output")
        elif isinstance(event, Display):
            self._add_block(None, self._clean(event.text), "output")
        elif isinstance(event, Error):
            self.mount(Static(self._traceback(event), classes="error"))
        elif isinstance(event, OutputCut):
            self.add_note(event.note)

    def _traceback(self, error: Error) -> Text:
        if not error.traceback:
            return Text(f"{error.ename}: {error.evalue}", style="bold red")
        # IPython's rule of dashes is as wide as a notebook, not as this pane: it goes.
        lines = [line for line in "\n".join(error.traceback).split("\n") if strip_ansi(line).strip("- ") or not line]
        text = _TRACEBACK_PADDING.sub("  Traceback", "\n".join(lines).strip("\n"), count=1)
        return Text.from_ansi(self._clean(text))

    def add_explanation(self, explanation: Explanation) -> None:
        text = Text()
        text.append(explanation.title, style="bold")
        text.append("\nWhy: ", style="bold")
        text.append(explanation.why)
        text.append("\nFix: ", style="bold")
        text.append(explanation.fix)
        self.mount(Static(text, classes="explain"))

    def add_note(self, text: str) -> None:
        self.mount(Static(text, classes="note"))

    def _clean(self, text: str) -> str:
        return mask_addresses(text) if self.stable else text

    def _add_stream(self, event: Stream) -> None:
        if self._stream_widget is not None and self._stream_name == event.name:
            head_was_full = self._stream_lines > FOLD_LINES or len(self._stream_text) > FOLD_CHARS
            self._stream_text += event.text
            self._stream_lines += event.text.count("\n")
            if not head_was_full:  # past the fold the head shown no longer changes
                self._stream_widget.update(self._folded_head(self._stream_text))
            return
        self._stream_name, self._stream_text = event.name, event.text
        self._stream_lines = event.text.count("\n")
        self._stream_widget = Static(self._folded_head(event.text), classes="stderr" if event.name == "stderr" else "output")
        self.mount(self._stream_widget)

    def finish(self) -> None:
        """Fold a long stream once the cell is done; refresh the prompt's count and state."""
        self.refresh_prompt()
        self._close_stream()

    def _close_stream(self) -> None:
        """The stream being shown has ended (other output came, or the cell ended): fold its rest."""
        if self._stream_widget is not None:
            _, rest = _head_and_rest(self._clean(self._stream_text))
            if rest is not None:
                self.mount(_folded(rest), after=self._stream_widget)
        self._stream_widget = None

    def _folded_head(self, text: str) -> Text:
        return Text(_head_and_rest(self._clean(text))[0])

    def _add_block(self, label: Text | None, text: str, classes: str) -> None:
        head, rest = _head_and_rest(text)
        self.mount(Static(Text.assemble(label, head) if label is not None else Text(head), classes=classes))
        if rest is not None:
            self.mount(_folded(rest))


def _head_and_rest(text: str) -> tuple[str, str | None]:
    """An output longer than FOLD_LINES lines (or FOLD_CHARS characters, for long lines): its
    first HEAD_LINES lines (at most HEAD_CHARS characters), and the rest to fold."""
    text = text.rstrip("\n")
    lines = text.split("\n", FOLD_LINES)
    if len(lines) <= FOLD_LINES and len(text) <= FOLD_CHARS:
        return text, None
    head = "\n".join(lines[:HEAD_LINES])[:HEAD_CHARS]
    return head, text[len(head):].removeprefix("\n")


def _folded(rest: str) -> Collapsible:
    lines = rest.count("\n") + 1
    title = f"{lines:,} more lines" if lines > 1 else f"{len(rest):,} more characters"
    return Collapsible(Static(rest, markup=False), title=title, collapsed=True)


class Transcript(VerticalScroll):
    """Every cell of the session, newest at the bottom; follows new output unless scrolled up."""

    DEFAULT_CSS = """
    Transcript { padding: 0 1; }
    Transcript > .empty { color: $text-muted; }
    """

    def __init__(self, *, stable: bool = False, id: str | None = None) -> None:
        super().__init__(id=id)
        self.stable = stable
        self.can_focus = True

    def compose(self):
        yield Static(
            "Type PyTorch code below. Enter runs it, F1 shows every key.\n"
            "Tensors you name appear in the inspector; grads that change appear in the backward log.",
            classes="empty",
        )

    def view_of(self, cell: SessionCell) -> CellView | None:
        found = self.query(f"#cell-{cell.number}")
        return found.first(CellView) if found else None

    def add_cell(self, cell: SessionCell) -> CellView:
        for hint in self.query(".empty"):
            hint.remove()
        view = CellView(cell, stable=self.stable)
        self.mount(view)
        self._follow()
        return view

    def add_event(self, cell: SessionCell, event: Event) -> None:
        view = self.view_of(cell) or self.add_cell(cell)
        view.add_event(event)
        self._follow()

    def finish(self, cell: SessionCell, notes: Sequence[str] = (), explanation: Explanation | None = None) -> None:
        view = self.view_of(cell) or self.add_cell(cell)
        if explanation is not None:
            view.add_explanation(explanation)
        if cell.reason and cell.state in ("timeout", "died"):
            view.add_note(cell.reason)
        for note in notes:
            view.add_note(note)
        view.finish()
        self._follow()

    def update_prompt(self, cell: SessionCell) -> None:
        view = self.view_of(cell)
        if view is not None:
            view.refresh_prompt()

    def clear(self) -> None:
        self.remove_children()

    def _follow(self) -> None:
        if self.is_vertical_scroll_end or self.max_scroll_y - self.scroll_y < 3:
            self.call_after_refresh(self.scroll_end, animate=False)
