"""fold-expand-1e5, fold-expand-key and fold-expand-first-key: opening the fold of a 100,000-line output in the app
(run_test 120x40), timed against the same app drawing a 12-line output, and a key typed into
the input while the fold opens, against the same key with nothing opening; and, in a fresh
app each round, the issue's own steps: the cell run in the kernel, its fold opened the first
time with a key typed at once.

Opened, an output that long keeps its folded height and scrolls inside (output_block.py says
why), so opening it costs one layout of the app, as a 12-line output does. The full garbage
collections of the process during the series are kept in `extra` (full_gc_ms): a sample far
above the median is one of them."""

from __future__ import annotations

import asyncio
import gc
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from benchmarks.app_latency import in_fresh_app, leftover_note
from benchmarks.common import BenchError, Row, median, say

HUGE_LINES = 100_000
SMALL_LINES = 12


def numbers(count: int) -> str:
    return "".join(f"{i}\n" for i in range(count))


# When each OutputBlock (by id) last drew a line: what was on screen is drawn by then.
LAST_DRAWN: dict[int, float] = {}


def record_drawing() -> None:
    from gradrepl.ui.widgets.output_block import OutputBlock

    render_line = OutputBlock.render_line
    if getattr(render_line, "timed", False):
        return

    def timed(self: OutputBlock, y: int) -> Any:
        strip = render_line(self, y)
        LAST_DRAWN[id(self)] = time.perf_counter()
        return strip

    timed.timed = True  # type: ignore[attr-defined]
    OutputBlock.render_line = timed  # type: ignore[method-assign]


@contextmanager
def full_collections() -> Iterator[list[float]]:
    """The length in ms of each full (generation 2) garbage collection while inside."""
    lengths: list[float] = []
    started: list[float] = []

    def timed(phase: str, info: dict[str, Any]) -> None:
        if info["generation"] != 2:
            return
        if phase == "start":
            started[:] = [time.perf_counter()]
        elif started:
            lengths.append((time.perf_counter() - started[0]) * 1e3)

    gc.callbacks.append(timed)
    try:
        yield lengths
    finally:
        gc.callbacks.remove(timed)


def key_clock(app: Any, code_input: Any) -> list[float]:
    """When the input handles each "a" from now on (perf_counter seconds, appended)."""
    from textual import events

    handled: list[float] = []

    def dispatched(message: Any) -> None:
        if isinstance(message, events.Key) and message.character == "a":
            handled.append(time.perf_counter())

    code_input.message_signal.subscribe(app, dispatched, immediate=True)
    return handled


async def drawn(pilot: Any, block: Any, since: float) -> float:
    """When `block` last drew a line once the app has settled; fails if it drew none after `since`."""
    await pilot.pause()
    await pilot.wait_for_scheduled_animations()
    await pilot.pause()
    at = LAST_DRAWN.get(id(block), 0.0)
    if at < since:
        raise BenchError("fold-expand: the output block was not drawn")
    return at


async def fold_series(app: Any, pilot: Any, rounds: int) -> dict[str, list[float]]:

    from gradrepl.client.events import Stream
    from gradrepl.ui.state.worksheet import SessionCell
    from gradrepl.ui.widgets.code_input import CodeInput
    from gradrepl.ui.widgets.output_block import OutputBlock

    record_drawing()
    transcript = app.transcript
    code_input = app.query_one("#input", CodeInput)
    huge_cell = SessionCell(900, "for i in range(100000): print(i)")
    transcript.add_cell(huge_cell)
    transcript.add_event(huge_cell, Stream("stdout", numbers(HUGE_LINES)))
    await pilot.pause()
    block = transcript.view_of(huge_cell).query_one(OutputBlock)
    if not block.foldable or block.line_count != HUGE_LINES:
        raise BenchError(f"fold-expand: the output block holds {block.line_count} lines, folded {block.foldable}")
    code_input.focus()
    await pilot.pause()
    handled = key_clock(app, code_input)

    async def key_after(open_fold: bool) -> float:
        seen, typed = len(handled), code_input.text.count("a")
        start = time.perf_counter()
        if open_fold:
            block.action_toggle_fold()
        await pilot.press("a")
        if len(handled) != seen + 1 or code_input.text.count("a") != typed + 1:
            raise BenchError("fold-expand-key: the key press did not reach the input")
        return (handled[-1] - start) * 1e3

    async def close_fold() -> None:
        if block.expanded:
            block.action_toggle_fold()
        await pilot.pause()

    results: dict[str, list[float]] = {"expand": [], "small": [], "key": [], "key_idle": []}
    for index in range(rounds):
        # Each pair in alternating order, so drift hits both alike.
        for which in (("expand", "small") if index % 2 == 0 else ("small", "expand")):
            if which == "expand":
                transcript.scroll_to_widget(block, animate=False, top=True)
                await pilot.pause()
                start = time.perf_counter()
                block.action_toggle_fold()
                end = await drawn(pilot, block, start)
                if not block.expanded:
                    raise BenchError("fold-expand-1e5: the fold did not open")
                results["expand"].append((end - start) * 1e3)
                await close_fold()
            else:
                cell = SessionCell(1000 + index, "print(small)")
                transcript.add_cell(cell)
                await pilot.pause()
                start = time.perf_counter()
                transcript.add_event(cell, Stream("stdout", numbers(SMALL_LINES)))
                small = transcript.view_of(cell).query_one(OutputBlock)
                results["small"].append((await drawn(pilot, small, start) - start) * 1e3)
            transcript.scroll_to_latest()
            await pilot.pause()
        # The fold is on screen when it opens: the huge block is scrolled to, as a user who clicks it has.
        transcript.scroll_to_widget(block, animate=False, top=True)
        await pilot.pause()
        for which in (("key", "key_idle") if index % 2 == 0 else ("key_idle", "key")):
            results[which].append(await key_after(open_fold=which == "key"))
            await close_fold()
        transcript.scroll_to_latest()
        await pilot.pause()
    return results


async def bench_fold_async(rounds: int) -> list[Row]:
    with full_collections() as collections:
        results, leftover = await in_fresh_app(lambda app, pilot: fold_series(app, pilot, rounds), "fold-expand")
    full_gc = [round(ms, 1) for ms in collections]
    expand, small, key, idle = results["expand"], results["small"], results["key"], results["key_idle"]
    value, anchor = median(expand), median(small)
    key_value, key_anchor = median(key), median(idle)
    say(f"fold-expand-1e5: drawn in {value:.1f} ms (max {max(expand):.1f}); a 12-line output in {anchor:.1f} ms")
    say(f"fold-expand-key: key handled in {key_value:.1f} ms while opening (max {max(key):.1f}); {key_anchor:.1f} ms idle")
    say(f"fold-expand: {len(full_gc)} full garbage collections meanwhile, {full_gc} ms")
    note = leftover_note(leftover)
    return [
        Row(
            "fold-expand-1e5", value, "ms", "same app, a 12-line output drawn", anchor, value / anchor, "< 1000 ms",
            value < 1000.0,
            note=f"run_test 120x40: from opening the fold of a {HUGE_LINES:,}-line output (scrolled to its head) "
            f"to the screen refreshed with it; median of {rounds}" + note,
            samples=expand, anchor_samples=small,
            extra={"max_ms": max(expand), "anchor_max_ms": max(small), "full_gc_ms": full_gc},
        ),
        Row(
            "fold-expand-key", key_value, "ms", "same key, nothing opening", key_anchor, key_value / key_anchor,
            "< 50 ms", key_value < 50.0,
            note=f"run_test 120x40: from opening the {HUGE_LINES:,}-line fold and pilot.press('a') at once to the "
            f"input having handled the key; median of {rounds}" + note,
            samples=key, anchor_samples=idle, extra={"max_ms": max(key), "anchor_max_ms": max(idle), "full_gc_ms": full_gc},
        ),
    ]


FIRST_OPEN_CELL = "for i in range(100000): print(i)"


async def first_open_key(app: Any, pilot: Any) -> tuple[float, float]:
    """The issue's own steps in a fresh app: the cell run through the kernel, then its fold
    opened for the first time with a key typed at once; and the same key with nothing opening."""

    from gradrepl.ui.widgets.code_input import CodeInput
    from gradrepl.ui.widgets.output_block import OutputBlock

    code_input = app.query_one("#input", CodeInput)
    code_input.load_text(FIRST_OPEN_CELL)
    await pilot.press("ctrl+r")
    await app.until_idle()
    await pilot.pause()
    blocks = list(app.transcript.query(OutputBlock))
    if not blocks or blocks[-1].line_count != HUGE_LINES:
        raise BenchError(f"fold-expand-first-key: the cell's output has {blocks[-1].line_count if blocks else 0} lines")
    block = blocks[-1]
    app.transcript.scroll_to_widget(block, animate=False, top=True)
    await pilot.pause()
    handled = key_clock(app, code_input)
    start = time.perf_counter()
    block.action_toggle_fold()
    await pilot.press("a")
    first = (handled[-1] - start) * 1e3
    await pilot.pause()
    start = time.perf_counter()
    await pilot.press("a")
    if len(handled) != 2 or not block.expanded:
        raise BenchError("fold-expand-first-key: the keys did not reach the input, or the fold did not open")
    return first, (handled[-1] - start) * 1e3


async def bench_first_open_async(rounds: int) -> list[Row]:
    firsts: list[float] = []
    idles: list[float] = []
    notes: list[str] = []
    for _ in range(rounds):
        (first, idle), leftover = await in_fresh_app(first_open_key, "fold-expand-first-key")
        firsts.append(first)
        idles.append(idle)
        notes.append(leftover_note(leftover))
    value, anchor = median(firsts), median(idles)
    say(f"fold-expand-first-key: key handled in {value:.1f} ms on a first opening (max {max(firsts):.1f}); {anchor:.1f} ms idle")
    return [
        Row(
            "fold-expand-first-key", value, "ms", "same key, nothing opening", anchor, value / anchor, "< 50 ms",
            value < 50.0,
            note=f"run_test 120x40, a fresh app each round: {FIRST_OPEN_CELL!r} run in its kernel, then its fold "
            f"opened for the first time and pilot.press('a') at once, to the input having handled the key; "
            f"median of {rounds}" + "".join(dict.fromkeys(notes)),
            samples=firsts, anchor_samples=idles, extra={"max_ms": max(firsts), "anchor_max_ms": max(idles)},
        ),
    ]


def bench_fold(rounds: int) -> list[Row]:
    async def both() -> list[Row]:
        return [*await bench_fold_async(rounds), *await bench_first_open_async(rounds)]

    return asyncio.run(both())
