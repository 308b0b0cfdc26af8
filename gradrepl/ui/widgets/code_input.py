"""The code input: a Python editor where Enter runs the cell once IPython calls it complete."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from textual import events, on
from textual.binding import Binding
from textual.message import Message
from textual.widgets import TextArea

from gradrepl.ui.state.history import History
from gradrepl.ui.syntax import DARK_INPUT, LIGHT_INPUT, light_input_theme

if TYPE_CHECKING:
    from textual.widgets import OptionList

Checker = Callable[[str], "tuple[str, int | None]"]


def _codeop_check(text: str) -> tuple[str, int | None]:
    """Until IPython's checker has loaded (it loads in the background): plain Python's rules."""
    import codeop

    try:
        compiled = codeop.compile_command(text + "\n", symbol="exec")
    except (SyntaxError, ValueError, OverflowError):
        return "invalid", None
    return ("complete", None) if compiled is not None else ("incomplete", 4)


def without_trailing_blank_lines(source: str) -> str:
    lines = source.split("\n")
    while len(lines) > 1 and not lines[-1].strip():
        lines.pop()
    return "\n".join(lines)


PLACEHOLDER = "PyTorch code here: Enter runs it when complete, Ctrl+J adds a line, Tab completes"
SHORT_PLACEHOLDER = "PyTorch code here: Enter runs it, Ctrl+J adds a line, Tab completes"


class CodeInput(TextArea):
    """Multi-line Python input with history, kernel completion and IPython's notion of done."""

    BINDINGS = [
        Binding("ctrl+r", "run", "Run", tooltip="Run the cell now, complete or not"),
        Binding("ctrl+j,alt+enter", "newline", "Newline", tooltip="Insert a newline, never run", show=False),
        Binding("up", "history_older", "Older", show=False),
        Binding("down", "history_newer", "Newer", show=False),
        Binding("escape", "clear_draft", "Clear", tooltip="Clear the input; the draft is kept in the history", show=False),
        Binding("backspace", "dedent_or_delete", "Delete left", show=False),
        Binding("ctrl+d", "quit_or_delete", "Quit when empty", show=False),
        Binding("pageup", "scroll_transcript(-1)", "Transcript up", show=False),
        Binding("pagedown", "scroll_transcript(1)", "Transcript down", show=False),
    ]

    @dataclass
    class Submitted(Message):
        source: str

    @dataclass
    class CompletionWanted(Message):
        code: str
        cursor: int

    @dataclass
    class ScrollWanted(Message):
        """PageUp / PageDown: the transcript, not this few-line editor, should scroll."""

        pages: int

    class QuitWanted(Message):
        """Ctrl+D on an empty input, as in IPython."""

    def __init__(self, history: History, *, id: str | None = None) -> None:
        super().__init__(
            "",
            language=None,  # enable_highlighting() sets it once the first frame is drawn
            theme="css",  # follows the app theme
            soft_wrap=False,
            tab_behavior="indent",
            show_line_numbers=False,
            id=id,
            placeholder=PLACEHOLDER,
        )
        self.input_history = history
        self.check_complete: Checker = _codeop_check
        self.completions: OptionList | None = None
        self._completion_span: tuple[int, int] = (0, 0)

    def on_mount(self) -> None:
        self.cursor_blink = not self.app.is_headless

    def on_resize(self, event: events.Resize) -> None:
        fits = len(PLACEHOLDER) < self.scrollable_content_region.width
        self.placeholder = PLACEHOLDER if fits else SHORT_PLACEHOLDER

    def follow_theme(self, dark: bool) -> None:
        """Token colours for the app theme's background (the "css" theme's are a dark theme's)."""
        if not dark and LIGHT_INPUT not in self.available_themes:
            self.register_theme(light_input_theme())
        self.theme = DARK_INPUT if dark else LIGHT_INPUT

    def enable_highlighting(self) -> None:
        """Python highlighting (tree-sitter); deferred, its parser takes a while to load.
        The document is rebuilt, so whatever was typed meanwhile keeps its cursor."""
        selection = self.selection
        self.language = "python"
        self.selection = selection

    # ------------------------------------------------------------------ keys

    async def _on_key(self, event: events.Key) -> None:
        if self._completion_open() and event.key in ("up", "down", "enter", "escape", "tab"):
            event.stop()
            event.prevent_default()
            self._drive_completion(event.key)
            return
        if self._completion_open() and event.is_printable:
            self.close_completions()
        # Keys are handled here, in order with the typed characters: a binding's action would
        # run after keys already queued behind it (fast typing, or keys buffered at start-up).
        if event.key == "enter":
            event.stop()
            event.prevent_default()
            self._enter()
            return
        if event.key == "tab":
            event.stop()
            event.prevent_default()
            self.action_complete()
            return
        if not event.is_printable:
            # This widget's bindings (run, newline, history) and the editor's (backspace, ...).
            bindings = self._bindings.key_to_bindings.get(event.key)
            if bindings:
                event.stop()
                event.prevent_default()
                await self.run_action(bindings[0].action)
                return
        await super()._on_key(event)

    def _enter(self) -> None:
        """As IPython does: on the last line (blank lines after it aside), Enter runs a
        complete cell and continues an incomplete one; elsewhere it splits the line."""
        text = self.text
        if not text.strip():
            return
        lines = text.split("\n")
        last_code_line = max(i for i, line in enumerate(lines) if line.strip())
        if self.cursor_location[0] < last_code_line:
            self.insert("\n", maintain_selection_offset=False)
            return
        status, indent = self.check_complete(text)
        if status != "incomplete":
            self.action_run()
            return
        self.move_cursor(self.document.end)
        self.insert("\n" + " " * (indent or 0), maintain_selection_offset=False)

    def action_run(self) -> None:
        source = without_trailing_blank_lines(self.text)  # a paste's last newline: not recalled with Up
        if not source.strip():
            return
        self.close_completions()
        self.input_history.add(source)
        self.set_text("")
        self.post_message(self.Submitted(source))

    def set_text(self, text: str) -> None:
        """The whole text replaced, with no undo history, as load_text does, but as an edit:
        load_text compiles tree-sitter's highlight query again, 23 ms at every Enter."""
        self.replace(text, (0, 0), self.document.end, maintain_selection_offset=False)
        self.history.clear()

    def action_newline(self) -> None:
        self.insert("\n", maintain_selection_offset=False)

    def action_clear_draft(self) -> None:
        """Empty the input, the draft kept in the history (Up brings it back)."""
        self.close_completions()
        if self.text.strip():
            self.input_history.add(self.text)
        self.set_text("")

    def action_dedent_or_delete(self) -> None:
        """In the indentation before the first character, one level (4 columns) goes."""
        row, column = self.cursor_location
        before = self.document.get_line(row)[:column]
        if self.selection.is_empty and column > 0 and not before.strip(" "):
            self.delete((row, (column - 1) // 4 * 4), (row, column), maintain_selection_offset=False)
            return
        self.action_delete_left()

    def action_quit_or_delete(self) -> None:
        if self.text:
            self.action_delete_right()
        else:
            self.post_message(self.QuitWanted())

    def action_scroll_transcript(self, pages: int) -> None:
        self.post_message(self.ScrollWanted(pages))

    def action_history_older(self) -> None:
        if self.cursor_location[0] != 0:
            self.action_cursor_up()
            return
        entry = self.input_history.older(self.text)
        if entry is not None:
            self._show_entry(entry, at_start=True)

    def action_history_newer(self) -> None:
        if self.cursor_location[0] != self.document.line_count - 1:
            self.action_cursor_down()
            return
        entry = self.input_history.newer()
        if entry is not None:
            self._show_entry(entry, at_start=False)

    def _show_entry(self, text: str, *, at_start: bool) -> None:
        """A recalled cell, cursor at its end: Enter runs it again."""
        self.set_text(text)
        self.move_cursor(self.document.end)

    # ------------------------------------------------------------ completion

    def action_complete(self) -> None:
        row, column = self.cursor_location
        line = self.document.get_line(row)
        before = line[:column]
        if not before.strip() or before[-1].isspace():
            self.insert(" " * (4 - column % 4), maintain_selection_offset=False)
            return
        offset = sum(len(line) + 1 for line in self.text.split("\n")[:row]) + column
        self.post_message(self.CompletionWanted(self.text, offset))

    def show_completions(self, matches: list[str], start: int, end: int) -> None:
        """Apply the kernel's answer: one match is inserted, several open a list."""
        if not matches:
            self.app.bell()
            return
        self._completion_span = (start, end)
        if len(matches) == 1:
            self._apply_completion(matches[0])
            return
        common = _common_prefix(matches)
        typed = self.text[start:end]
        if len(common) > len(typed):
            self._apply_completion(common)
            self._completion_span = (start, start + len(common))
        menu = self.completions
        if menu is None:
            return
        menu.clear_options()
        from textual.widgets.option_list import Option

        menu.add_options([Option(m, id=m) for m in matches[:200]])
        menu.highlighted = 0
        menu.display = True

    def _apply_completion(self, text: str) -> None:
        start, end = self._completion_span
        begin = _location(self.text, start)
        finish = _location(self.text, end)
        self.replace(text, begin, finish, maintain_selection_offset=False)

    def accept_completion(self, match: str | None) -> None:
        """Put a chosen match in place and close the list."""
        if match:
            self._apply_completion(match)
        self.close_completions()

    def _completion_open(self) -> bool:
        return self.completions is not None and bool(self.completions.display)

    def _drive_completion(self, key: str) -> None:
        menu = self.completions
        assert menu is not None
        if key == "up":
            menu.action_cursor_up()
        elif key == "down":
            menu.action_cursor_down()
        elif key in ("enter", "tab") and menu.highlighted is not None:
            self.accept_completion(menu.get_option_at_index(menu.highlighted).id)
        else:
            self.close_completions()

    def close_completions(self) -> None:
        if self.completions is not None:
            self.completions.display = False

    @on(events.Blur)
    def _blurred(self) -> None:
        self.close_completions()


def _location(text: str, index: int) -> tuple[int, int]:
    before = text[:index].split("\n")
    return len(before) - 1, len(before[-1])


def _common_prefix(words: list[str]) -> str:
    first, last = min(words), max(words)
    size = 0
    while size < min(len(first), len(last)) and first[size] == last[size]:
        size += 1
    return first[:size]
