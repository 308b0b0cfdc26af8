"""What a terminal would show of a program's output, made safe to draw inside another one.

User output (streams, Out values, tracebacks, notes) may hold control sequences that would
act on the terminal gradrepl draws in: set its title, leave the alternate screen, write the
clipboard (OSC 52). `TerminalText` keeps only SGR (colour and style) sequences, drops every
other escape sequence, shows lone control characters as visible symbols (␇ for BEL), and
moves the cursor for carriage return, backspace and erase-in-line as a terminal does, so a
progress bar redrawn with '\\r' stays one line. Output comes in chunks: a sequence split
between two of them is held until its end arrives.
"""

from __future__ import annotations

import re

SGR_RESET = "\x1b[0m"
MAX_PENDING = 4096  # an unterminated escape string longer than this is dropped as it comes
_MAX_STYLE = 8  # SGR sequences kept per style (the newest): enough for any real one

# Everything that is not plain text, '\n' or '\t'.
_SPECIAL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u2028\u2029]")
_CSI_BODY = re.compile(r"([0-?]*)([ -/]*)([@-~])")  # after ESC [ or the 8-bit CSI
_ESC_OTHER = re.compile(r"[ -/]*[0-~]")  # after ESC: nF/Fp/Fe/Fs sequences (ESC c, ESC ( B, ESC 7 ...)
_STRING_OPENERS = {"]": "OSC", "P": "DCS", "X": "SOS", "^": "PM", "_": "APC"}
_C1_STRING_OPENERS = {"\x9d", "\x90", "\x98", "\x9e", "\x9f"}
_STRING_END = re.compile(r"\x07|\x1b\\|\x9c")
_PLAIN_SGR = re.compile(r"\x1b\[[0-9;:]*m")


def control_picture(char: str) -> str:
    """A visible stand-in for a control character: ␇ for BEL, ␡ for DEL, ⍰ for C1 and others."""
    code = ord(char)
    if code < 0x20:
        return chr(0x2400 + code)
    if code == 0x7F:
        return "\u2421"
    return "\u2370"


def strip_sgr(text: str) -> str:
    return _PLAIN_SGR.sub("", text)


def escape_controls(text: str) -> str:
    """`text` with every control character but '\\n' and '\\t' shown as a symbol (no cursor
    movement, no sequences kept): for text that is not a program's output, such as source."""
    if not _SPECIAL.search(text):
        return text
    return _SPECIAL.sub(lambda m: control_picture(m.group()), text)


def terminal_text(text: str) -> str:
    """The whole of `text` as a terminal would leave it (see TerminalText), lines joined by '\\n'."""
    screen = TerminalText()
    screen.feed(text)
    screen.close()
    return "\n".join(screen.lines())


class _Line:
    """The line the cursor is on: plain characters and style runs (start, SGR sequences)."""

    def __init__(self, style: str) -> None:
        self.parts: list[str] = []  # appended text, joined when the cursor moves back
        self.text = ""
        self.runs: list[tuple[int, str]] = [(0, style)] if style else []
        self.cursor = 0
        self.length = 0

    def _joined(self) -> str:
        if self.parts:
            self.text += "".join(self.parts)
            self.parts.clear()
        return self.text

    def plain(self) -> str:
        return self._joined()

    def write(self, chunk: str, style: str) -> None:
        if not chunk:
            return
        end = self.cursor + len(chunk)
        if self.cursor == self.length:
            self.parts.append(chunk)
            self._restyle(self.cursor, end, style)
            self.length = end
        else:
            text = self._joined()
            self.text = text[: self.cursor] + chunk + text[end:]
            self._restyle(self.cursor, end, style)
            self.length = len(self.text)
        self.cursor = end

    def _style_at(self, index: int) -> str:
        style = ""
        for start, run_style in self.runs:
            if start > index:
                break
            style = run_style
        return style

    def _restyle(self, start: int, end: int, style: str) -> None:
        runs = self.runs
        if not runs and not style:
            return
        after = self._style_at(end) if end < self.length else None
        kept = [run for run in runs if run[0] < start]
        kept.append((start, style))
        if after is not None:
            kept.append((end, after))
            kept.extend(run for run in runs if run[0] > end)
        merged: list[tuple[int, str]] = []
        for run in kept:
            if merged and merged[-1][0] == run[0]:
                merged[-1] = run
            elif not merged or merged[-1][1] != run[1]:
                merged.append(run)
        self.runs = merged

    def carriage_return(self) -> None:
        self.cursor = 0

    def backspace(self) -> None:
        self.cursor = max(0, self.cursor - 1)

    def erase(self, mode: str, style: str) -> None:
        text = self._joined()
        if mode in ("", "0"):
            self.text = text[: self.cursor]
            self.runs = [run for run in self.runs if run[0] < self.cursor]
        elif mode == "1":
            blanks = min(self.cursor + 1, len(text))
            self.text = " " * blanks + text[blanks:]
            self._restyle(0, blanks, "")
        elif mode == "2":
            self.text = " " * self.cursor if self.cursor else ""
            self.runs = []
        self.length = len(self.text)

    def rendered(self) -> str:
        """The line with its SGR sequences (each run starts from a reset), as Text.from_ansi reads it."""
        text = self._joined()
        if not self.runs or not text:
            return text
        out: list[str] = []
        bounds = [*(start for start, _ in self.runs[1:]), len(text)]
        if self.runs[0][0] > 0:
            out.append(text[: self.runs[0][0]])
        for (start, style), end in zip(self.runs, bounds, strict=True):
            if start >= len(text):
                break
            out.append(SGR_RESET + style if style else SGR_RESET)
            out.append(text[start:end])
        if self.runs[-1][1]:
            out.append(SGR_RESET)
        return "".join(out)


class TerminalText:
    """A program's output fed in chunks, kept as finished lines plus the line being written."""

    def __init__(self) -> None:
        self._lines: list[str] = []
        self._style = ""
        self._line = _Line("")
        self._pending = ""  # the start of an escape sequence whose end has not come yet
        self._skipping = False  # inside an over-long escape string: drop until its end

    @property
    def finished_lines(self) -> list[str]:
        """The lines ended by a newline so far (the list grows as output comes; do not change it)."""
        return self._lines

    def current_line(self) -> str:
        return self._line.rendered()

    def lines(self) -> list[str]:
        """Every line, the one being written included unless it is empty."""
        if not self._line.length:
            return list(self._lines)
        return [*self._lines, self._line.rendered()]

    def line_count(self) -> int:
        return len(self._lines) + (1 if self._line.length else 0)

    def feed(self, text: str) -> None:
        if self._pending or self._skipping:
            text, self._pending = self._pending + text, ""
            if self._skipping:
                end = _STRING_END.search(text)
                if end is None:
                    return
                self._skipping = False
                text = text[end.end():]
        position = 0
        while True:
            special = _SPECIAL.search(text, position)
            stop = special.start() if special else len(text)
            if stop > position:
                self._write_plain(text[position:stop])
            if special is None:
                return
            position = self._control(text, stop)
            if position < 0:
                return

    def close(self) -> None:
        """The output ended: an escape sequence still open is dropped."""
        self._pending = ""
        self._skipping = False

    def _write_plain(self, text: str) -> None:
        if "\n" not in text:
            self._line.write(text, self._style)
            return
        pieces = text.split("\n")
        self._line.write(pieces[0], self._style)
        self._newline()
        style = self._style
        if style:
            self._lines.extend(f"{SGR_RESET}{style}{piece}{SGR_RESET}" if piece else "" for piece in pieces[1:-1])
        else:
            self._lines.extend(pieces[1:-1])
        self._line.write(pieces[-1], style)

    def _newline(self) -> None:
        self._lines.append(self._line.rendered())
        self._line = _Line(self._style)

    def _control(self, text: str, at: int) -> int:
        """Handle the control character at `at`; where plain text resumes, or -1 if the rest
        of `text` is an unfinished sequence (kept for the next chunk)."""
        char = text[at]
        if char == "\r":
            self._line.carriage_return()
            return at + 1
        if char == "\b":
            self._line.backspace()
            return at + 1
        if char == "\x1b":
            return self._escape(text, at)
        if char == "\x9b":
            return self._csi(text, at, at + 1)
        if char in _C1_STRING_OPENERS:
            return self._string(text, at, at + 1)
        if char in "\u2028\u2029":
            self._line.write(" ", self._style)
            return at + 1
        self._line.write(control_picture(char), self._style)
        return at + 1

    def _escape(self, text: str, at: int) -> int:
        if at + 1 >= len(text):
            self._pending = text[at:]
            return -1
        kind = text[at + 1]
        if kind == "[":
            return self._csi(text, at, at + 2)
        if kind in _STRING_OPENERS:
            return self._string(text, at, at + 2)
        other = _ESC_OTHER.match(text, at + 1)
        if other is not None:
            return other.end()
        if _ESC_OTHER_PREFIX.fullmatch(text, at + 1):
            self._pending = text[at:]
            return -1
        self._line.write(control_picture("\x1b"), self._style)
        return at + 1

    def _csi(self, text: str, at: int, body: int) -> int:
        """A CSI sequence (ESC [ or the 8-bit CSI at `at`, its parameters from `body`): SGR
        changes the style, EL erases in the line, every other one is dropped."""
        match = _CSI_BODY.match(text, body)
        if match is None:
            rest = text[body:]
            if len(rest) < 64 and _CSI_PREFIX.fullmatch(rest):
                self._pending = text[at:]
                return -1
            self._line.write(control_picture(text[at]), self._style)
            return at + 1
        params, intermediates, final = match.groups()
        if final == "m" and not intermediates:
            self._sgr(params)
        elif final == "K" and not intermediates:
            self._line.erase(params, self._style)
        return match.end()

    def _sgr(self, params: str) -> None:
        if params in ("", "0") or not re.fullmatch(r"[0-9;:]*", params):
            self._style = ""
            return
        if params.startswith("0;"):
            self._style = f"\x1b[{params}m"
            return
        sequences = [*re.findall(r"\x1b\[[0-9;:]*m", self._style), f"\x1b[{params}m"]
        self._style = "".join(sequences[-_MAX_STYLE:])

    def _string(self, text: str, at: int, body: int) -> int:
        """OSC, DCS, SOS, PM, APC: dropped up to their terminator (BEL or ST)."""
        end = _STRING_END.search(text, body)
        if end is not None:
            return end.end()
        if len(text) - at > MAX_PENDING:
            self._skipping = True
            self._pending = text[-1:] if text.endswith("\x1b") else ""
        else:
            self._pending = text[at:]
        return -1


_CSI_PREFIX = re.compile(r"[0-?]*[ -/]*")
_ESC_OTHER_PREFIX = re.compile(r"[ -/]*")
