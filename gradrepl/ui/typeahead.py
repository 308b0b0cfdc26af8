"""Keys typed while the app starts, kept with their meaning.

Until Textual puts the terminal in raw mode, the tty is in cooked mode: it turns Enter (CR)
into LF, which the app would read as Ctrl+J (a newline, never run), and it holds each
finished line for a line-reading program. `keep_typeahead` stops the translation for what is
typed from now on and takes the lines already finished, with Enter given back its CR; the
app's driver then reads those keys before anything typed later.
"""

from __future__ import annotations

import os
import sys
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from textual.driver import Driver

TYPEAHEAD_LIMIT = 1 << 16  # bytes; a terminal's input queue holds 4 KB


class Terminal:
    """The tty's settings as they were before the app changed them, and the keys typed so far."""

    def __init__(self, fd: int, saved: list[Any]) -> None:
        self.fd = fd
        self.saved = saved
        self.typeahead = ""

    def restore(self) -> None:
        import termios

        try:
            termios.tcsetattr(self.fd, termios.TCSADRAIN, self.saved)
        except (OSError, ValueError, termios.error):
            pass


def keep_typeahead(fd: int | None = None) -> Terminal | None:
    """Stop CR becoming LF on the terminal at `fd` (stdin) and take the finished lines typed so
    far; None when stdin is not a terminal."""
    try:
        import termios
    except ImportError:  # not a POSIX system
        return None
    try:
        fd = sys.stdin.fileno() if fd is None else fd
        if not os.isatty(fd):
            return None
        saved = termios.tcgetattr(fd)
        changed = termios.tcgetattr(fd)
        changed[0] &= ~termios.ICRNL
        termios.tcsetattr(fd, termios.TCSANOW, changed)
    except (OSError, ValueError, AttributeError, termios.error):
        return None
    terminal = Terminal(fd, saved)
    if saved[3] & termios.ICANON:
        terminal.typeahead = _finished_lines(fd, translated=bool(saved[0] & termios.ICRNL))
    return terminal


def _finished_lines(fd: int, *, translated: bool) -> str:
    """The lines the tty holds, read without waiting: in cooked mode only finished lines can be
    read, so a line still being typed stays for the app's driver, and it has no LF in it."""
    import fcntl
    import termios

    chunks: list[bytes] = []
    total = 0
    while total < TYPEAHEAD_LIMIT:
        try:
            waiting = int.from_bytes(fcntl.ioctl(fd, termios.FIONREAD, b"\0\0\0\0"), sys.byteorder)
        except OSError:
            break
        if waiting <= 0:
            break
        try:
            chunk = os.read(fd, min(waiting, TYPEAHEAD_LIMIT - total))
        except (BlockingIOError, OSError):
            break
        if not chunk:  # Ctrl+D on an empty line
            break
        chunks.append(chunk)
        total += len(chunk)
    text = b"".join(chunks).decode("utf-8", errors="replace")
    return text.replace("\n", "\r") if translated else text


def driver_with_typeahead(typeahead: str) -> type[Driver]:
    """Textual's terminal driver, reading `typeahead` as keys before the terminal's own input."""
    from textual._xterm_parser import XTermParser
    from textual.drivers.linux_driver import LinuxDriver

    class TypeaheadDriver(LinuxDriver):
        def run_input_thread(self) -> None:
            if typeahead:
                parser = XTermParser()
                for event in (*parser.feed(typeahead), *parser.feed("")):  # "": the end, a lone Escape is a key
                    self.process_message(event)
            super().run_input_thread()

    return TypeaheadDriver
