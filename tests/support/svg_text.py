"""The text of a Textual snapshot SVG, row by row, as the terminal showed it (for tests that
compare a screen printed in the README with the screen the app draws)."""

from __future__ import annotations

import html
import re
from collections import defaultdict
from pathlib import Path

_TEXT = re.compile(r'<text class="[^"]*" x="([\d.]+)" y="([\d.]+)"[^>]*>(.*?)</text>', re.S)
CELL_WIDTH = 12.2  # pixels per column in Textual's SVG export


def screen_rows(svg: Path) -> list[str]:
    rows: dict[float, list[tuple[float, str]]] = defaultdict(list)
    for match in _TEXT.finditer(svg.read_text(encoding="utf-8")):
        x, y, text = float(match.group(1)), float(match.group(2)), html.unescape(match.group(3))
        rows[y].append((x, text.replace("\xa0", " ")))
    lines = []
    for y in sorted(rows):
        line = ""
        for x, text in sorted(rows[y]):
            line = line.ljust(round(x / CELL_WIDTH)) + text
        lines.append(line.rstrip())
    return lines


if __name__ == "__main__":
    import sys

    print("\n".join(screen_rows(Path(sys.argv[1]))))
