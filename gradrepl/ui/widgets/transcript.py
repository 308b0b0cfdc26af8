"""The transcript: executed cells as a notebook shows them, In [n] / Out[n], outputs, errors."""

from __future__ import annotations

import re
from collections.abc import Sequence

from rich.console import RenderableType
from rich.syntax import Syntax
from rich.text import Text
from textual import events
from textual.binding import Binding
from textual.color import Color
from textual.containers import Vertical, VerticalScroll
from textual.widgets import Static

from gradrepl.client.events import Display, Error, Event, OutputCut, ProbeReport, Result, Stream, strip_ansi
from gradrepl.protocol import Explanation
from gradrepl.render.terminal_output import escape_controls, terminal_text
from gradrepl.ui.hanging import LabelledRule
from gradrepl.ui.state.worksheet import SessionCell
from gradrepl.ui.widgets.output_block import OutputBlock

_TRACEBACK_PADDING = re.compile(r" {3,}Traceback")  # IPython pads the header to 75 columns
_ADDRESS = re.compile(r"\b0x[0-9a-fA-F]{6,16}\b")


def mask_addresses(text: str) -> str:
    return _ADDRESS.sub("0x…", text)


def got_no_reply(cell: SessionCell) -> bool:
    """An error the kernel gave no record of: ipykernel failed to run the cell (the reason
    says what it logged), as opposed to the cell's code raising."""
    return cell.state == "error" and not any(isinstance(event, Error) for event in cell.events)


SOURCE_LINES = 400  # a longer cell shows its first and last SOURCE_END lines (highlighting is slow)
SOURCE_END = 20
SOURCE_WIDTH = 1000  # columns of one source line shown


def shown_source(source: str) -> str:
    """A cell's source as the transcript shows it: no trailing blank lines, controls visible,
    a very long cell as its head and tail around a comment saying how much is left out."""
    lines = [_cut(line.rstrip()) for line in source.rstrip().split("\n")]
    if len(lines) > SOURCE_LINES:
        left_out = len(lines) - 2 * SOURCE_END
        lines = [*lines[:SOURCE_END], f"# … {left_out:,} more lines of this cell (all of them run and are saved) …",
                 *lines[-SOURCE_END:]]
    return escape_controls("\n".join(lines))


def _cut(line: str) -> str:
    return line if len(line) <= SOURCE_WIDTH else f"{line[:SOURCE_WIDTH]} … ({len(line) - SOURCE_WIDTH:,} more characters)"


class CellView(Vertical):
    """One cell: its prompt and source, then each output as it arrives."""

    DEFAULT_CSS = """
    CellView { height: auto; margin-bottom: 1; }
    CellView > .prompt { color: $text-muted; }
    CellView > .source { padding-left: 2; }
    CellView > OutputBlock { padding-left: 2; }
    CellView > OutputBlock.stderr { color: $warning; }
    CellView > .explain { margin: 1 0 0 2; padding: 0 1; border-left: thick $warning; }
    CellView > .note { padding-left: 2; color: $text-muted; text-style: italic; }
    CellView > .note.-alert { color: $error; text-style: none; }
    CellView > .error-message { padding-left: 2; }
    """

    def __init__(self, cell: SessionCell, *, stable: bool = False) -> None:
        super().__init__(id=f"cell-{cell.number}")
        self.cell = cell
        self.stable = stable  # hide memory addresses (snapshot tests)
        self._stream_name: str | None = None
        self._stream: OutputBlock | None = None
        self._early_notes: list[Static] | None = []  # notes given before the prompt and source were mounted

    def compose(self):
        yield Static(self._prompt_text(), classes="prompt")
        yield Static(self._source(), classes="source")

    def on_mount(self) -> None:
        early, self._early_notes = self._early_notes or [], None
        if early:
            self.mount_all(early)

    def _prompt_text(self) -> Text:
        cell = self.cell
        count = cell.execution_count
        label = f"In [{count if count is not None else ' '}]:"
        where = f"  line {cell.script_line} of the script" if cell.from_script else ""
        state = {"queued": "  queued", "running": "  running…", "cancelled": "  not run",
                 "timeout": "  timed out", "died": "  kernel died"}.get(cell.state, "")
        if got_no_reply(cell):
            state = "  kernel error"
        text = Text(label, style="bold green")
        text.append(where, style="dim")
        text.append(state, style="bold yellow" if cell.state in ("queued", "running") else "bold red")
        return text

    def _source(self) -> RenderableType:
        from gradrepl.ui.syntax import ThemedSource, WrappedSource

        source = shown_source(self.cell.source)
        return ThemedSource(
            lambda style: WrappedSource(Syntax(source, "python", theme=style, background_color="default")),
            dark=lambda: self.app.current_theme.dark,
        )

    def refresh_prompt(self) -> None:
        self.query_one(".prompt", Static).update(self._prompt_text())

    @property
    def outputs(self) -> list[OutputBlock]:
        return list(self.query_children(OutputBlock))

    def add_event(self, event: Event) -> None:
        if isinstance(event, Stream):
            self._add_stream(event)
            return
        if isinstance(event, ProbeReport):  # not output: a stream around it goes on in one block
            return
        self._close_stream()
        if isinstance(event, Result):
            self._add_block(self._clean(event.text), prefix=f"Out[{event.execution_count}]: ")
        elif isinstance(event, Display):
            self._add_block(self._clean(event.text))
        elif isinstance(event, Error):
            # The frames keep their lines (code is not reflowed); the message under them wraps.
            frames, _, message = self._traceback(event).rpartition("\n")
            if frames:
                self._add_block(frames, classes="error")
            self.mount(Static(Text.from_ansi(terminal_text(message)), classes="error-message"))
        elif isinstance(event, OutputCut):
            self.add_note(event.note)

    def _traceback(self, error: Error) -> str:
        if not error.traceback:
            return f"\x1b[1;31m{error.ename}: {error.evalue}\x1b[0m"
        # IPython's rule of dashes is as wide as a notebook, not as this pane: it goes.
        lines = [line for line in "\n".join(error.traceback).split("\n") if strip_ansi(line).strip("- ") or not line]
        text = _TRACEBACK_PADDING.sub("  Traceback", "\n".join(lines).strip("\n"), count=1)
        return self._clean(text)

    def add_explanation(self, explanation: Explanation) -> None:
        text = Text()
        text.append(escape_controls(explanation.title), style="bold")
        text.append("\nWhy: ", style="bold")
        text.append(escape_controls(explanation.why))
        text.append("\nFix: ", style="bold")
        text.append(escape_controls(explanation.fix))
        self.mount(Static(text, classes="explain"))

    def add_note(self, text: str, alert: bool = False) -> None:
        note = Static(Text(escape_controls(text)), classes="note -alert" if alert else "note")
        if self._early_notes is not None:  # below the source, which is not there yet
            self._early_notes.append(note)
        else:
            self.mount(note)

    def _clean(self, text: str) -> str:
        return mask_addresses(text) if self.stable else text

    def _add_stream(self, event: Stream) -> None:
        if self._stream is not None and self._stream_name == event.name:
            self._stream.feed(self._clean(event.text))
            return
        self._close_stream()
        self._stream_name = event.name
        self._stream = self._add_block(self._clean(event.text), classes="stderr" if event.name == "stderr" else "output")

    def finish(self) -> None:
        """The cell is done: refresh the prompt's count and state, end the stream being shown."""
        self.refresh_prompt()
        self._close_stream()

    def _close_stream(self) -> None:
        if self._stream is not None:
            self._stream.close()
        self._stream = None

    def _add_block(self, text: str, *, prefix: str = "", classes: str = "output") -> OutputBlock:
        block = OutputBlock(text, prefix=prefix, classes=classes)
        self.mount(block)
        return block


class Transcript(VerticalScroll):
    """Every cell of the session, newest at the bottom. It follows new output, also when
    the pane or its content changes size, until the user scrolls up; then a marker says new
    output is below, and End or Ctrl+End (or a click on the marker) returns to it."""

    BINDINGS = [
        Binding("end", "scroll_to_latest", "Latest output", show=False),
        Binding("enter", "focus_output", "Go to an output", show=False),
        Binding("escape", "app.focus_pane('input')", "Back to the input", show=False),
    ]
    DEFAULT_CSS = """
    Transcript { padding: 0 1; }
    Transcript > .empty { color: $text-muted; }
    Transcript > .separator { color: $accent; margin-bottom: 1; }
    Transcript > .markdown { margin: 0 0 1 0; padding: 0 2; background: transparent; }
    Transcript > #new-output { dock: bottom; width: 100%; height: 1; display: none;
        background: $accent; color: $text; text-style: bold; content-align: center middle; }
    Transcript.-new-below > #new-output { display: block; }
    """

    def __init__(self, *, stable: bool = False, id: str | None = None) -> None:
        super().__init__(id=id)
        self.stable = stable
        self.can_focus = True
        self._away = False  # the user scrolled up from the end
        # Each cell's view by the cell's number: a query by id walks every view (a script of
        # a few hundred cells took seconds a cell).
        self._views: dict[int, CellView] = {}
        self._hint_shown = True

    def compose(self):
        yield Static("▼ new output below (Ctrl+End)", id="new-output")
        yield Static(
            "Type PyTorch code below. Enter runs it, F1 shows every key.\n"
            "Tensors you name appear in the inspector; grads that change appear in the backward log.",
            classes="empty",
        )

    def on_mount(self) -> None:
        self.anchor()
        self.app.theme_changed_signal.subscribe(self, lambda _theme: self._show_focus())

    # The border is the accent colour while focus is in the transcript, as `:focus-within` would
    # draw it; that rule restyled every cell and output under the transcript at each focus move
    # (a click on the transcript, then a key typed, waited for two of them).
    def on_focus(self) -> None:
        self._show_focus()

    def on_blur(self) -> None:
        self._show_focus()

    def on_descendant_focus(self) -> None:
        self._show_focus()

    def on_descendant_blur(self) -> None:
        self._show_focus()

    def _show_focus(self) -> None:
        colour = Color.parse(self.app.theme_variables["accent" if self.has_focus_within else "panel"])
        for edge in ("border_top", "border_right", "border_bottom", "border_left"):
            kind, _ = getattr(self.styles, edge)
            if kind:  # the border the app's CSS gives the pane, in the colour that says where focus is
                setattr(self.styles, edge, (kind, colour))

    @property
    def new_output_below(self) -> bool:
        """The marker is up: output came while the user was scrolled away from the end."""
        return self.has_class("-new-below")

    def view_of(self, cell: SessionCell) -> CellView | None:
        view = self._views.get(cell.number)
        return view if view is not None and view.parent is self else None

    def _drop_hint(self) -> None:
        if self._hint_shown:
            self._hint_shown = False
            for hint in self.query_children(".empty"):
                hint.remove()

    def add_cell(self, cell: SessionCell) -> CellView:
        """A submitted cell: shown at the end, and the transcript follows it from now on."""
        self._drop_hint()
        view = CellView(cell, stable=self.stable)
        self._views[cell.number] = view
        self.mount(view)
        self.scroll_to_latest()
        return view

    def add_markdown(self, source: str) -> None:
        """A script's markdown cell, rendered, between the code cells around it."""
        from textual.widgets import Markdown

        self._drop_hint()
        self.mount(Markdown(escape_controls(source), classes="markdown"))
        self._output_came()

    def add_separator(self, label: str) -> None:
        """A full-width rule with `label` in it (e.g. "kernel restarted 08:31")."""
        self._drop_hint()
        self.mount(Static(LabelledRule(escape_controls(label)), classes="separator"))
        self._output_came()

    def add_event(self, cell: SessionCell, event: Event) -> None:
        view = self.view_of(cell) or self.add_cell(cell)
        view.add_event(event)
        self._output_came()

    def finish(self, cell: SessionCell, notes: Sequence[str] = (), explanation: Explanation | None = None,
               alerts: Sequence[str] = ()) -> None:
        """The cell's end: an explanation of its error, gradrepl's notes on it, and alerts (where a NaN was born)."""
        view = self.view_of(cell) or self.add_cell(cell)
        if explanation is not None:
            view.add_explanation(explanation)
        if cell.reason and (cell.state in ("timeout", "died") or got_no_reply(cell)):
            view.add_note(cell.reason)
        for note in notes:
            view.add_note(note)
        for alert in alerts:
            view.add_note(alert, alert=True)
        view.finish()
        self._output_came()

    def update_prompt(self, cell: SessionCell) -> None:
        view = self.view_of(cell)
        if view is not None:
            view.refresh_prompt()

    def clear(self) -> None:
        self._views.clear()
        for child in list(self.children):
            if child.id != "new-output":
                child.remove()
        self.scroll_to_latest()

    def scroll_to_latest(self) -> None:
        """Show the end of the transcript and follow new output again."""
        self._away = False
        self.remove_class("-new-below")
        self.anchor()

    def action_scroll_to_latest(self) -> None:
        self.scroll_to_latest()

    def focus_output(self) -> bool:
        """Focus the last output in view (the latest output when none is), so Enter folds it
        and Tab / Shift+Tab walk the outputs from there; False when there is no output."""
        blocks = [block for block in self.query(OutputBlock) if block.display]
        if not blocks:
            return False
        view = self.scrollable_content_region
        seen = [block for block in blocks if block.region.overlaps(view)]
        (seen or blocks)[-1].focus(scroll_visible=not seen)
        return True

    def action_focus_output(self) -> None:
        self.focus_output()

    def _output_came(self) -> None:
        # Anchored, the transcript is at its end once the new content is laid out; if it
        # is not, the user has scrolled away and the marker says there is more below.
        self.call_after_refresh(self._mark_new_output)

    def _mark_new_output(self) -> None:
        # Anchored, the last cell's bottom margin may stay below: more than that is unseen.
        if self._away and self.max_scroll_y - self.scroll_y > 1:
            self.add_class("-new-below")

    def watch_scroll_y(self, old_value: float, new_value: float) -> None:
        super().watch_scroll_y(old_value, new_value)
        if new_value >= self.max_scroll_y - 1:
            self._away = False
            self.remove_class("-new-below")
        elif new_value < old_value:
            self._away = True

    def on_click(self, event: events.Click) -> None:
        if event.widget is not None and event.widget.id == "new-output":
            event.stop()
            self.scroll_to_latest()
