"""Runs scenarios through a real kernel with gradrepl's own KernelSession, exactly as the
app drives it (same cwd, same origin metadata for a script's cells), and keeps what the
front end consumed: per cell the IOPub messages as they reached parse_iopub, the
execute_reply's status and count, how the cell ended, and where a scenario asks, the
probe's graph replies and the kernel's completions (format: recording.py).

scripts/record-reports writes these to tests/data/reports; a `kernel` test records them
again and checks the stored ones are still what the kernel sends (`comparable`)."""

from __future__ import annotations

import json
import re
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

import gradrepl.client.session as session_module
from gradrepl.cells import read_script
from gradrepl.client.events import CellFinished, Event, ProbeReport
from gradrepl.client.session import KernelSession
from gradrepl.protocol import graph_request
from support.model_cells import DEEP_BACKWARD, DEEP_MODEL, LINEAR_MODEL
from support.recording import CellStep, Completion, RawMessage, Recording, RestartStep, Step

REPO = Path(__file__).resolve().parents[2]

SEED = REPO / "examples" / "seed_autograd.py"
SEED_BACKWARD = "v_out.backward(retain_graph=True)\nvaribale.grad"
MARKDOWN_BETWEEN = REPO / "tests" / "data" / "scripts" / "markdown_between.py"
RECURRENCE = ("import torch\nh = torch.ones(3, requires_grad=True)\nx = h\nfor _ in range(1000):\n    h = h * 1.01 + 0.5\n"
              "y = (x * 2).sum()")
TRAINING_SETUP = ("import torch\ntorch.manual_seed(0)\n"
                  "model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 1))\n"
                  "opt = torch.optim.SGD(model.parameters(), lr=0.05)\nxb, yb = torch.randn(64, 4), torch.randn(64, 1)")
TRAINING_LOOP = ("for step in range(300):\n    opt.zero_grad()\n    loss = ((model(xb) - yb) ** 2).mean()\n"
                 "    loss.backward()\n    opt.step()")
BACKWARD_TWICE = "w = torch.ones(2, requires_grad=True)\nr = (w * 3).sum()\nr.backward()\nr.backward()"


@dataclass(frozen=True)
class Cell:
    source: str
    line: int | None = None  # the script line it came from (the app sends it as origin)
    graphs: bool = False  # ask the probe for the graph of every named tensor after it
    completions: tuple[tuple[str, int], ...] = ()  # (code, cursor) asked after it


@dataclass(frozen=True)
class Restart:
    pass


@dataclass(frozen=True)
class Scenario:
    name: str
    description: str
    steps: Callable[[], list[Cell | Restart]]
    script: Path | None = None  # its cells go with origin {"file": script, "line": ...}
    output_limit: int = session_module.OUTPUT_LIMIT
    env: dict[str, str] | None = None  # the kernel's, as the command line's options give it


def seed_cells(*, graphs_after_last: bool = True) -> list[Cell | Restart]:
    cells = read_script(SEED).code_cells
    last = len(cells) - 1
    return [Cell(c.source, c.line, graphs=graphs_after_last and i == last) for i, c in enumerate(cells)]


NAN_ORIGIN = SEED.parent / "nan_origin.py"
VANISHING = SEED.parent / "vanishing_gradients.py"

SCENARIOS = [
    Scenario(
        "vanishing",
        "examples/vanishing_gradients.py resumed: 20 steps of a deep sigmoid MLP whose first layers' grads vanish",
        lambda: [Cell(c.source, c.line) for c in read_script(VANISHING).code_cells],
        script=VANISHING,
    ),
    Scenario(
        "nan_origin",
        "examples/nan_origin.py resumed under --nan-check: torch.log made the nan, PowBackward0 passed one on",
        lambda: [Cell(c.source, c.line) for c in read_script(NAN_ORIGIN).code_cells],
        script=NAN_ORIGIN,
        env={"GRADREPL_NAN_CHECK": "1"},
    ),
    Scenario(
        "seed",
        "examples/seed_autograd.py resumed: its 12 cells, graphs of every tensor after the last",
        lambda: seed_cells(),
        script=SEED,
    ),
    Scenario(
        "seed_backward_again",
        "the seed resumed, then its backward cell typed three times more: varibale.grad accumulates",
        lambda: [*seed_cells(graphs_after_last=False), Cell(SEED_BACKWARD), Cell(SEED_BACKWARD), Cell(SEED_BACKWARD)],
        script=SEED,
    ),
    Scenario(
        "leaf_in_place_error",
        "a leaf that requires grad changed in place: a RuntimeError the front end explains",
        lambda: [Cell("import torch\nx = torch.ones(2, 2, requires_grad=True)"), Cell("x.add_(1)")],
    ),
    Scenario(
        "backward_needs_gradient",
        "backward() on a 2x2 tensor without gradient=: a RuntimeError the front end explains",
        lambda: [Cell("import torch\nm = torch.ones(2, 2, requires_grad=True) * 2"), Cell("m.backward()")],
    ),
    Scenario(
        "saved_tensor_in_place",
        "b = (a.sin() * a).sum(), then a changed in place: graphs with two saved tensors marked",
        lambda: [Cell("import torch\nx = torch.ones(3, requires_grad=True)\na = x * 3\nb = (a.sin() * a).sum()\na.add_(1)",
                      graphs=True)],
    ),
    Scenario(
        "long_output",
        "100 printed lines (folded), 40 lines then an Out value, and 300 lines over a 2,000-character output limit",
        lambda: [
            Cell("for i in range(100):\n    print('line', i)"),
            Cell("for i in range(40):\n    print('more', i)\n'done'"),
            Cell("for i in range(300):\n    print(f'row {i:3d}')"),
        ],
        output_limit=2_000,
    ),
    Scenario(
        "kernel_death",
        "cells, a segfault that kills the kernel, a restart and the good cells run again, then w.grad",
        lambda: [
            Cell("kept = 1"),
            Cell("import torch\nw = torch.ones(2, requires_grad=True)"),
            Cell("1 / 0"),
            Cell("(w * 3).sum().backward()"),
            Cell("import ctypes\nctypes.string_at(0)"),
            Restart(),
            Cell("kept = 1"),
            Cell("import torch\nw = torch.ones(2, requires_grad=True)"),
            Cell("(w * 3).sum().backward()"),
            Cell("w.grad"),
        ],
    ),
    Scenario(
        "restart_with_tensors",
        "a tensor named and its grad made, a restart (F8, confirmed), then a cell in the fresh kernel",
        lambda: [
            Cell("import torch\nw = torch.ones(2, requires_grad=True)\n(w * 3).sum().backward()"),
            Restart(),
            Cell("import torch\nv = torch.zeros(3)"),
        ],
    ),
    Scenario(
        "recover_typed_ahead",
        "a cell typed at start-up while the recover offer shows, then the left-over cell run again, then both names",
        lambda: [Cell("do_this = 1"), Cell("answer = 6 * 7"), Cell("print(answer + do_this)")],
    ),
    Scenario(
        "markdown_between",
        "tests/data/scripts/markdown_between.py resumed: markdown, code, markdown, code",
        lambda: [Cell(c.source, c.line) for c in read_script(MARKDOWN_BETWEEN).code_cells],
        script=MARKDOWN_BETWEEN,
    ),
    Scenario(
        "completion",
        "two names that start alike, then completions of 'varibale_u' (one match) and 'varibale_' (two)",
        lambda: [Cell("varibale_unique = 3\nvaribale_other = 4", completions=(("varibale_u", 10), ("varibale_", 9)))],
    ),
    Scenario(
        "recurrence",
        "a 1,000-step recurrence h = h * 1.01 + 0.5 from the leaf x, and y from x: graphs of h (2,001 nodes), x and y",
        lambda: [Cell(RECURRENCE, graphs=True)],
    ),
    Scenario(
        "linear_model",
        "an nn.Linear(64, 32), a batch through it and loss.backward(): the inspector with model parameters",
        lambda: [Cell(LINEAR_MODEL)],
    ),
    Scenario(
        "deep_model",
        "a 16-layer nn.Sequential, a small MLP and a tensor under two names, then a backward through the deep one",
        lambda: [Cell(DEEP_MODEL), Cell(DEEP_BACKWARD)],
    ),
    Scenario(
        "training_loop",
        "a small MLP trained 300 steps in one cell (zero_grad, loss.backward(), step), then a cell whose second "
        "r.backward() fails: the backward log's grouped entry and a failed call",
        lambda: [Cell(TRAINING_SETUP), Cell(TRAINING_LOOP), Cell(BACKWARD_TWICE)],
    ),
]


class Recorder:
    """A KernelSession whose consumed IOPub messages and shell replies are kept as they pass."""

    def __init__(self, session: KernelSession) -> None:
        self.session = session
        self.iopub: list[RawMessage] = []
        self.replies: list[dict[str, Any]] = []
        self._parse = session_module.parse_iopub
        next_reply = session._next_reply

        async def keep_reply(msg_id: str, timeout: float) -> dict[str, Any] | None:
            reply = await next_reply(msg_id, timeout)
            if reply is not None:
                self.replies.append(reply)
            return reply

        session._next_reply = keep_reply  # type: ignore[method-assign]

    def __enter__(self) -> Recorder:
        def keep_message(msg: dict[str, Any], probe: Any) -> Event | None:
            self.iopub.append(RawMessage(msg["header"]["msg_type"], msg["content"]))
            return self._parse(msg, probe)

        session_module.parse_iopub = keep_message
        return self

    def __exit__(self, *exc: object) -> None:
        session_module.parse_iopub = self._parse

    async def cell(self, cell: Cell, origin_file: str | None) -> CellStep:
        self.iopub.clear()
        self.replies.clear()
        origin = {"file": origin_file, "line": cell.line} if origin_file and cell.line else None
        events = [event async for event in self.session.execute(cell.source, origin=origin)]
        finished = events[-1]
        assert isinstance(finished, CellFinished), events
        reply = next((r["content"] for r in self.replies if r["header"]["msg_type"] == "execute_reply"), None)
        step = CellStep(
            source=cell.source,
            origin_line=cell.line if origin else None,
            iopub=tuple(self.iopub),
            reply={"status": reply.get("status"), "execution_count": reply.get("execution_count")} if reply else None,
            died=finished.reason if finished.status == "died" else None,
            finished={"status": finished.status, "execution_count": finished.execution_count, "reason": finished.reason},
            events=tuple(type(e).__name__ for e in events),
        )
        report = next((e for e in reversed(events) if isinstance(e, ProbeReport)), None)
        if cell.graphs and report is not None:
            names = [t.name for t in report.tensors]
            step.graphs.update({name: await self.session._ask_probe(graph_request(name), 30.0) for name in names})
        for code, cursor in cell.completions:
            self.replies.clear()
            await self.session.complete(code, cursor)
            content = next((r["content"] for r in self.replies if r["header"]["msg_type"] == "complete_reply"), None)
            assert content is not None, f"no complete_reply for {code!r}"
            step = _with_completion(step, Completion(code, cursor, content))
        return step


def _with_completion(step: CellStep, completion: Completion) -> CellStep:
    return CellStep(step.source, step.origin_line, step.iopub, step.reply, step.died, step.finished, step.events,
                    step.graphs, (*step.completions, completion))


def versions() -> dict[str, str]:
    found = {"python": sys.version.split()[0]}
    for package in ("torch", "ipykernel", "jupyter_client"):
        found[package] = metadata.version(package)
    return found


async def record(scenario: Scenario) -> Recording:
    with tempfile.TemporaryDirectory(prefix="record-reports-") as tmp:
        cwd = scenario.script.parent if scenario.script else Path(tmp)
        session = KernelSession(cwd=cwd, env=scenario.env)
        session.output_limit = scenario.output_limit
        origin_file = str(scenario.script) if scenario.script else None
        steps: list[Step] = []
        await session.start()
        try:
            with Recorder(session) as recorder:
                for planned in scenario.steps():
                    if isinstance(planned, Restart):
                        await session.restart()
                        steps.append(RestartStep())
                    else:
                        steps.append(await recorder.cell(planned, origin_file))
        finally:
            await session.shutdown()
    return Recording(scenario.name, scenario.description, tuple(steps), scenario.output_limit, versions())


_VARYING = [
    (re.compile(r"0x[0-9a-f]{6,}"), "0x…"),  # object addresses in reprs
    (re.compile(r"ipykernel_\d+/\d+"), "ipykernel_…"),  # the kernel's cell files: pid and hash
    (re.compile(r'"comm_id": "[0-9a-f]+"'), '"comm_id": "…"'),
    # Where the checkout is (CI clones it elsewhere): the folder holding .venv or examples.
    (re.compile(r"(?:/[\w.+\-]+)+(?=/\.venv/)"), "<repo>"),
    (re.compile(r"(?:/[\w.+\-]+)+(?=/examples/)"), "<repo>"),
]

_BOOKKEEPING = ("status", "execute_input")  # carry no event: parse_iopub returns None


def comparable(recording: Recording) -> list[str]:
    """The recording without what differs from one run to the next (comm ids, addresses,
    the kernel's pid, bookkeeping messages), one JSON line per step: equal when the kernel
    sends the same."""
    lines = []
    for step in recording.steps:
        data = step.to_json()
        if isinstance(step, CellStep):  # which of these get out before a kernel dies is luck
            data["iopub"] = [m for m in data["iopub"] if m["msg_type"] not in _BOOKKEEPING]
        text = json.dumps(data, sort_keys=True, ensure_ascii=False)
        for pattern, replacement in _VARYING:
            text = pattern.sub(replacement, text)
        lines.append(text)
    return lines
