"""Wrapping that keeps a line's shape in a narrow pane: a long line's wrapped parts continue
under its own indentation (Rich wraps them to column 0, where they read as lines of their
own), and a rule's label too long for the pane is wrapped, not cut."""

from __future__ import annotations

from collections.abc import Iterator

from rich.cells import cell_len
from rich.console import Console, ConsoleOptions, RenderResult
from rich.rule import Rule
from rich.text import Text

HANG = 2  # columns a wrapped part starts right of its line's indentation


def leading_spaces(text: str) -> int:
    return len(text) - len(text.lstrip(" "))


def hang_wrapped(console: Console, line: Text, width: int, hang: int = HANG, marker: Text | None = None) -> Iterator[Text]:
    """`line` in rows of `width` cells, its wrapped parts indented to its indentation plus
    `hang` (at most half the width), after `marker` when given."""
    if line.cell_len <= width:
        yield line
        return
    indent = min(leading_spaces(line.plain) + hang, width // 2)
    first = line.wrap(console, width)[0]
    yield first
    taken = len(first.plain)
    taken += leading_spaces(line.plain[taken:])
    lead = Text(" " * indent) + (marker or Text())
    for part in line[taken:].wrap(console, max(width - lead.cell_len, 1)):
        yield lead + part


class HangingText:
    """Lines of text wrapped by hang_wrapped (a backward log entry: "  via A → B → C" goes on
    under "via", an unindented line two columns in)."""

    def __init__(self, text: Text) -> None:
        self.text = text
        self._rows: dict[int, list[Text]] = {}  # by width: Textual measures, then draws, at each layout

    def __str__(self) -> str:
        return self.text.plain

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        width = max(options.max_width, 4)
        rows = self._rows.get(width)
        if rows is None:
            if len(self._rows) > 4:
                self._rows.clear()
            rows = self._rows[width] = [row for line in self.text.split("\n", allow_blank=True)
                                        for row in hang_wrapped(console, line, width)]
        yield from rows


class LabelledRule:
    """A rule across the pane with `label` in it; in a pane too narrow for the label, a plain
    rule with the label wrapped under it, whole."""

    def __init__(self, label: str, style: str = "none") -> None:
        self.label, self.style = label, style

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        if cell_len(self.label) + 6 <= options.max_width:
            yield Rule(self.label, characters="─", style=self.style)
            return
        yield Rule(characters="─", style=self.style)
        yield Text(self.label, style=self.style, justify="center")
