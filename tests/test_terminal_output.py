"""User output is drawn as a terminal would leave it, and no control sequence of it reaches
the terminal gradrepl draws in (issue 11, item 4)."""

from __future__ import annotations

import pytest

from gradrepl.render.terminal_output import TerminalText, escape_controls, terminal_text


@pytest.mark.parametrize(
    "printed,shown",
    [
        ("\x1b]0;pwned\x07hi\n", "hi"),  # terminal title (OSC 0, BEL)
        ("\x1b[?1049l\x1b[2Jafter\n", "after"),  # leave the alternate screen, clear it
        ("\x1b]52;c;aGVsbG8=\x1b\\x\n", "x"),  # clipboard (OSC 52, ST)
        ("\x1bP1$r\x1b\\d\n", "d"),  # DCS
        ("\x9d0;title\x9cc1\n", "c1"),  # the 8-bit OSC and ST
        ("\x1bc reset\n", " reset"),
        ("bell\x07\n", "bell␇"),
    ],
)
def test_control_sequences_are_dropped_or_shown_escaped(printed: str, shown: str) -> None:
    assert terminal_text(printed) == shown


def test_colours_are_kept_as_sgr_only() -> None:
    assert terminal_text("a\x1b[31mred\x1b[0m b\n") == "a\x1b[0m\x1b[31mred\x1b[0m b"
    assert "\x1b[31m" in terminal_text("\x1b[31mone\ntwo\n").split("\n")[1]  # a colour goes on past a newline


def test_carriage_return_and_backspace_move_the_cursor_as_a_terminal_does() -> None:
    assert terminal_text("\r 10%|#   |\r 50%|#####|\r100%|##########|\n") == "100%|##########|"
    assert terminal_text("hello\rab\n") == "abllo"
    assert terminal_text("abc\b\bX\n") == "aXc"
    assert terminal_text("step 1 of 9\rdone\x1b[K\n") == "done"
    assert terminal_text("kept\r\nnext\n") == "kept\nnext"


def test_a_progress_bar_in_10000_chunks_is_one_line() -> None:
    screen = TerminalText()
    for i in range(10_000):
        screen.feed(f"\r{i:5d} it")
    screen.feed("\n")
    assert screen.lines() == [" 9999 it"]


def test_a_sequence_split_between_chunks_is_still_dropped() -> None:
    screen = TerminalText()
    for chunk in ["\x1b]0;pw", "ned", "\x07ok\n", "\x1b", "[3", "1mR\x1b[0m\n"]:
        screen.feed(chunk)
    assert screen.lines() == ["ok", "\x1b[0m\x1b[31mR\x1b[0m"]


def test_an_endless_escape_string_is_dropped_not_kept() -> None:
    screen = TerminalText()
    screen.feed("\x1b]0;" + "x" * 100_000)
    screen.feed("still title\x07shown\n")
    assert screen.lines() == ["shown"]


def test_source_text_shows_its_controls() -> None:
    assert escape_controls("print('\x1b]0;x\x07')") == "print('␛]0;x␇')"
