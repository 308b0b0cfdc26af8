"""graph-view-1e4 and graph-text-1e4: the autograd graph of a 10,001-node recurrence
(h = h * 1.01 + 0.5, 5,000 steps from a leaf), shown by the app and printed as text, each
against the seed's small graph (z, 3 nodes) measured the same way in the same run.

graph-view-1e4: in-process run_test 120x40 with a real kernel (the app's own): the seed's
cells and the recurrence run in it, then, alternating, the graph screen opened for `big` and
for `z` (app.show_graph, what `g` on the inspector does) until its graph has come from the
kernel and its tree has drawn its last line with it (GraphView.render_line timed, as fold_expand.py
times its output block); Escape closes it between samples.
The time includes the probe's walk, description and folding in the kernel and the comm.

graph-text-1e4: the same request on a bare KernelSession (as `gradrepl graph` makes it) and
graph_text of the answer written out, for `big` and for `z`, alternating.
"""

from __future__ import annotations

import asyncio
import io
import time
from typing import Any

from benchmarks.app_latency import in_fresh_app, leftover_note
from benchmarks.common import REPO, SEED, BenchError, Row, alternating, median, say
from benchmarks.plain_kernel import gradrepl_run
from benchmarks.processes import kill_leftovers, new_tag, tagged_environ

STEPS = 5_000
BIG_CELL = f"import torch\nbig_x = torch.ones(3, requires_grad=True)\nbig = big_x\nfor _ in range({STEPS}):\n    big = big * 1.01 + 0.5"
BIG_NODES = 2 * STEPS + 1
SMALL = "z"


def seed_cells() -> list[str]:
    from gradrepl.cells import read_script

    return [cell.source for cell in read_script(SEED).code_cells if cell.source.strip()]


async def _run_in_app(app: Any, pilot: Any, source: str) -> None:
    app.query_one("#input").load_text(source)
    await pilot.press("ctrl+r")
    await app.until_idle()
    await pilot.pause()


LAST_TREE_LINE: list[float] = [0.0]  # when the graph view last drew a line


def record_tree_drawing() -> None:
    from gradrepl.ui.widgets.graph_view import GraphView

    render_line = GraphView.render_line
    if getattr(render_line, "timed", False):
        return

    def timed(self: Any, y: int) -> Any:
        strip = render_line(self, y)
        LAST_TREE_LINE[0] = time.perf_counter()
        return strip

    timed.timed = True  # type: ignore[attr-defined]
    GraphView.render_line = timed  # type: ignore[method-assign]


async def _open_graph(app: Any, pilot: Any, name: str) -> float:
    """Milliseconds from asking for the graph screen to its tree's last line drawn with the graph."""
    from gradrepl.ui.screens.autograd_graph import AutogradGraphScreen
    from gradrepl.ui.widgets.graph_view import GraphView

    record_tree_drawing()
    start = time.perf_counter()
    app.show_graph(name)
    deadline = start + 30.0
    while not (isinstance(app.screen, AutogradGraphScreen) and app.screen.graph is not None):
        if time.perf_counter() > deadline:
            raise BenchError(f"graph-view: the graph of {name} did not come within 30 s")
        await asyncio.sleep(0.001)
    await pilot.pause()  # whatever the graph makes the screen draw is drawn by then
    # The view has no lines to draw before its graph comes, so a line drawn since `start` is
    # drawn with the graph (it may be drawn before this loop sees the graph has come).
    if LAST_TREE_LINE[0] < start:
        raise BenchError(f"graph-view: the tree of {name} was not drawn after its graph came")
    elapsed = (LAST_TREE_LINE[0] - start) * 1e3
    screen = app.screen
    graph = screen.graph
    if graph is None or graph.error or not screen.query_one(GraphView).shown:
        raise BenchError(f"graph-view: the graph of {name} was not drawn ({graph.error if graph else 'none came'})")
    await pilot.press("escape")
    await pilot.pause()
    return elapsed


async def view_series(app: Any, pilot: Any, rounds: int) -> dict[str, list[float]]:
    if app.runner.state != "idle":
        raise BenchError(f"graph-view: the app's kernel is {app.runner.state}")
    for source in seed_cells():
        await _run_in_app(app, pilot, source)
    await _run_in_app(app, pilot, BIG_CELL)
    results: dict[str, list[float]] = {"big": [], SMALL: []}
    await _open_graph(app, pilot, "big")  # warm: the first request imports the layout code on both sides
    for index in range(rounds):
        for name in alternating(index, "big", SMALL):
            results[name].append(await _open_graph(app, pilot, name))
    return results


async def text_series(rounds: int) -> tuple[dict[str, list[float]], str]:
    from gradrepl.client.session import KernelSession
    from gradrepl.render.graph import graph_text

    session = KernelSession(cwd=REPO / "examples")
    session.launch()
    results: dict[str, list[float]] = {"big": [], SMALL: []}
    first_line = ""
    try:
        await session.start()
        for source in seed_cells():
            await session.run(source, timeout=60.0)
        await gradrepl_run(session, BIG_CELL)
        await session.graph("big", timeout=60.0)  # warm
        for index in range(rounds):
            for name in alternating(index, "big", SMALL):
                out = io.StringIO()
                start = time.perf_counter()
                graph = await session.graph(name, timeout=60.0)
                out.write(graph_text(graph) + "\n")
                results[name].append((time.perf_counter() - start) * 1e3)
                if graph.error:
                    raise BenchError(f"graph-text: {name}: {graph.error}")
                if name == "big":
                    first_line = out.getvalue().splitlines()[0]
    finally:
        await session.shutdown()
    return results, first_line


async def bench_graph_scale_async(rounds: int) -> list[Row]:
    view, leftover = await in_fresh_app(lambda app, pilot: view_series(app, pilot, rounds), "graph-view")
    tag = new_tag()
    try:
        with tagged_environ(tag):
            text, title = await text_series(rounds)
    finally:
        text_leftover = kill_leftovers(tag, "graph-text")
    if not title.startswith(f"big (3 float32): {BIG_NODES:,} nodes"):
        raise BenchError(f"graph-text: the recurrence's graph says {title!r}")
    view_value, view_anchor = median(view["big"]), median(view[SMALL])
    text_value, text_anchor = median(text["big"]), median(text[SMALL])
    say(f"graph-view-1e4: {view_value:.1f} ms (max {max(view['big']):.1f}); the seed's z {view_anchor:.1f} ms")
    say(f"graph-text-1e4: {text_value:.1f} ms (max {max(text['big']):.1f}); the seed's z {text_anchor:.1f} ms")
    return [
        Row(
            "graph-view-1e4", view_value, "ms", "same screen, the seed's z (3 nodes)", view_anchor,
            view_value / view_anchor, "<= 300 ms", view_value <= 300.0,
            note=f"run_test 120x40, the app's kernel: from app.show_graph to the tree's last line drawn with the graph of a "
            f"{BIG_NODES:,}-node recurrence (kernel walk, folding, comm, tree); median of {rounds}"
            + leftover_note(leftover),
            samples=view["big"], anchor_samples=view[SMALL],
            extra={"max_ms": max(view["big"]), "anchor_max_ms": max(view[SMALL])},
        ),
        Row(
            "graph-text-1e4", text_value, "ms", "same, the seed's z (3 nodes)", text_anchor, text_value / text_anchor,
            "<= 1000 ms", text_value <= 1000.0,
            note=f"a KernelSession as `gradrepl graph` uses it: from the graph request to graph_text of the "
            f"{BIG_NODES:,}-node recurrence written out; median of {rounds}" + leftover_note(text_leftover),
            samples=text["big"], anchor_samples=text[SMALL],
            extra={"max_ms": max(text["big"]), "anchor_max_ms": max(text[SMALL])},
        ),
    ]


def bench_graph_scale(rounds: int) -> list[Row]:
    return asyncio.run(bench_graph_scale_async(rounds))
