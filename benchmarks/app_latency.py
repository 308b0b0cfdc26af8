"""app-panes-latency and app-key-latency: the app in this process under Textual's run_test
(120x40), its panes and its input timed against the kernel round trip and an idle kernel."""

from __future__ import annotations

import asyncio
import gc
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from benchmarks.common import REPO, TERM_COLUMNS, TERM_LINES, BenchError, Row, median, say
from benchmarks.plain_kernel import gradrepl_run
from benchmarks.processes import kill_leftovers, new_tag, tagged_environ

T = TypeVar("T")

# The warm-up cell imports torch; the timed cells cycle through these.
PANES_WARMUP = "import torch\nx = torch.ones(2, 2, requires_grad=True)\ny = (x * x).sum()\ny.backward()\nx"
PANES_CELLS = [
    "y = (x * x).sum()\ny.backward()\nx.grad",
    "w = x.detach() * 2\nw",
    "x",
    "print(x.grad.sum().item())",
]
KEY_BUSY_CELL = "import time; time.sleep(5)"
KEY_SPREAD = 4.0  # seconds over which the key presses are spread (inside the 5 s cell)
KEY_PRESSES_MAX = 30  # more do not fit in the cell (each pilot.press call takes 40 ms or more)


def leftover_note(leftover: str | None) -> str:
    if leftover is None:
        return ""
    say(leftover)
    return f"; {leftover}"


async def app_cell(app: Any, pilot: Any, source: str) -> float:
    """Run one cell in the app through its input; seconds from its last kernel event to all panes drawn."""
    updated = len(app.panes_updated)
    submitted = len(app.worksheet.cells)
    app.query_one("#input").load_text(source)
    await pilot.press("ctrl+r")
    if len(app.worksheet.cells) != submitted + 1:
        raise BenchError("app-panes-latency: ctrl+r did not submit the cell")
    await app.until_idle()
    await pilot.pause(0.2)
    cell = app.worksheet.cells[-1]
    if cell.state != "ok":
        raise BenchError(f"app-panes-latency: cell {source.splitlines()[0]!r} ended {cell.state} {cell.reason}".rstrip())
    if len(app.panes_updated) != updated + 1:
        raise BenchError(f"app-panes-latency: {len(app.panes_updated) - updated} pane updates recorded for one cell")
    return float(app.panes_updated[-1])


async def bench_panes_async(count: int) -> list[Row]:
    from gradrepl.client.session import KernelSession
    from gradrepl.ui.app import GradReplApp
    from gradrepl.ui.state.history import History

    tag = new_tag()
    panes: list[float] = []
    trips: list[float] = []
    try:
        with tagged_environ(tag):
            app = GradReplApp(history=History(None), stable=True)
            session = KernelSession(cwd=REPO)
            session.launch()
            try:
                async with app.run_test(size=(TERM_COLUMNS, TERM_LINES)) as pilot:
                    say("app-panes-latency: starting the app's kernel and a bare KernelSession")
                    await session.start()
                    await app.until_idle()
                    if app.runner.state != "idle":
                        raise BenchError(f"app-panes-latency: the app's kernel is {app.runner.state}")
                    await app_cell(app, pilot, PANES_WARMUP)
                    await gradrepl_run(session, PANES_WARMUP)
                    for index in range(count):
                        source = PANES_CELLS[index % len(PANES_CELLS)]
                        # Interleaved, the order alternating, so drift hits both alike.
                        if index % 2 == 0:
                            panes.append(await app_cell(app, pilot, source) * 1e3)
                            trips.append((await gradrepl_run(session, source))[0] * 1e3)
                        else:
                            trips.append((await gradrepl_run(session, source))[0] * 1e3)
                            panes.append(await app_cell(app, pilot, source) * 1e3)
            finally:
                await session.shutdown()
    finally:
        leftover = kill_leftovers(tag, "app-panes-latency")
    value, anchor = median(panes), median(trips)
    say(f"app-panes-latency: panes median {value:.2f} ms, max {max(panes):.2f} ms; kernel round trip {anchor:.2f} ms")
    return [
        Row(
            "app-panes-latency", value, "ms", "kernel round trip", anchor, value / anchor, "< 50 ms", value < 50.0,
            note=f"app.panes_updated (last kernel event to the refresh after all panes updated), run_test 120x40, "
            f"median of {count} cells; anchor: the same cells on a bare KernelSession" + leftover_note(leftover),
            samples=panes, anchor_samples=trips, extra={"max_ms": max(panes), "anchor_max_ms": max(trips)},
        )
    ]


def bench_panes(count: int) -> list[Row]:
    return asyncio.run(bench_panes_async(count))


async def key_series(app: Any, pilot: Any, presses: int) -> dict[str, tuple[list[float], list[float]]]:
    """Key presses with the kernel idle, then while KEY_BUSY_CELL runs: for each, the
    milliseconds to the key handled and those the pilot.press call took."""
    from textual import events

    from gradrepl.ui.widgets.code_input import CodeInput

    gap = max(KEY_SPREAD / presses - 0.07, 0.0)
    code_input = app.query_one("#input", CodeInput)
    if app.focused is not code_input:
        raise BenchError(f"app-key-latency: focus is on {app.focused!r}, not on the input")
    # When the input had dispatched each "a" key, and how many "a" its text held by then.
    handled: list[tuple[float, int]] = []

    def dispatched(message: Any) -> None:
        if isinstance(message, events.Key) and message.character == "a":
            handled.append((time.perf_counter(), code_input.text.count("a")))

    code_input.message_signal.subscribe(app, dispatched, immediate=True)

    async def press_a() -> tuple[float, float]:
        typed, seen = code_input.text.count("a"), len(handled)
        start = time.perf_counter()
        await pilot.press("a")
        took = time.perf_counter() - start
        if len(handled) != seen + 1 or handled[-1][1] != typed + 1:
            raise BenchError("app-key-latency: the key press did not reach the input")
        return handled[-1][0] - start, took

    results: dict[str, tuple[list[float], list[float]]] = {}

    async def series(name: str, busy: bool) -> None:
        handle: list[float] = []
        wall: list[float] = []
        for _ in range(presses):
            if busy and app.runner.running is None:
                raise BenchError(f"app-key-latency: the {KEY_BUSY_CELL!r} cell ended after {len(handle)} presses")
            to_handled, call = await press_a()
            handle.append(to_handled * 1e3)
            wall.append(call * 1e3)
            await pilot.pause(gap)
        results[name] = (handle, wall)

    await series("idle", busy=False)
    code_input.load_text(KEY_BUSY_CELL)
    await pilot.press("ctrl+r")
    deadline = time.perf_counter() + 10.0
    while app.runner.running is None:
        if time.perf_counter() > deadline:
            raise BenchError("app-key-latency: the sleep cell did not start within 10 s")
        await pilot.pause(0.01)
    await series("busy", busy=True)
    if app.runner.running is not None:
        await pilot.press("ctrl+c")
    await app.until_idle()
    return results


async def in_fresh_app(series: Callable[[Any, Any], Awaitable[T]], label: str) -> tuple[T, str | None]:
    """`series(app, pilot)` in an app with private state dirs, once its kernel is idle (its
    start-up objects frozen out of the collector as `gradrepl` freezes them); then
    whatever processes it left are killed and named (the second value, for leftover_note)."""
    from gradrepl.ui.app import GradReplApp
    from gradrepl.ui.state.history import History

    tag = new_tag()
    gc.collect()  # the app freezes what exists once its kernel is idle, as `gradrepl` does: no garbage of earlier rows
    try:
        with tagged_environ(tag):
            app = GradReplApp(history=History(None), stable=True, freeze_start_up=True)
            async with app.run_test(size=(TERM_COLUMNS, TERM_LINES)) as pilot:
                await app.until_idle()
                results = await series(app, pilot)
    finally:
        gc.unfreeze()
        leftover = kill_leftovers(tag, label)
    return results, leftover


async def bench_keys_async(presses: int) -> list[Row]:
    results, leftover = await in_fresh_app(lambda app, pilot: key_series(app, pilot, presses), "app-key-latency")
    (busy, busy_wall), (idle, idle_wall) = results["busy"], results["idle"]
    value, anchor = median(busy), median(idle)
    say(
        f"app-key-latency: handled in {value:.2f} ms busy, {anchor:.2f} ms idle (medians); "
        f"pilot.press took {median(busy_wall):.1f} ms busy, {median(idle_wall):.1f} ms idle"
    )
    return [
        Row(
            "app-key-latency", value, "ms", "same keys, kernel idle", anchor, value / anchor, "< 50 ms", value < 50.0,
            note=f"run_test 120x40: from pilot.press('a') to the input having handled the key (its text holds the new "
            f"'a'), while {KEY_BUSY_CELL!r} runs; median of {presses}. pilot.press itself returns later: it waits "
            f"for the app to go idle (two 20 ms sleeps at least); its times are in extra" + leftover_note(leftover),
            samples=busy, anchor_samples=idle,
            extra={
                "max_ms": max(busy), "anchor_max_ms": max(idle),
                "press_call_ms": busy_wall, "anchor_press_call_ms": idle_wall,
                "press_call_median_ms": median(busy_wall), "anchor_press_call_median_ms": median(idle_wall),
            },
        )
    ]


def bench_keys(presses: int) -> list[Row]:
    return asyncio.run(bench_keys_async(presses))
