"""`gradrepl graph SCRIPT [NAME ...]`: run a script's cells (all, or up to `--cell N`) in a
fresh kernel, then print the autograd graph of the named tensors as text trees (or, with
`--json`, one JSON object each; with `--dot`, Graphviz DOT).
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from typing import IO

from gradrepl.cells import Script
from gradrepl.client.events import CellOutcome
from gradrepl.client.session import KernelSession
from gradrepl.headless.replay import runnable
from gradrepl.render.graph import graph_text
from gradrepl.render.graph_dot import graph_dot


@dataclass(frozen=True)
class GraphRequest:
    names: tuple[str, ...]  # empty: every named tensor that has a grad_fn
    last_cell: int | None  # 1-based among code cells; None: all of them
    as_json: bool = False
    as_dot: bool = False
    node_grads: bool = False  # the tree shows what each node was given and passed on


def _failure(outcome: CellOutcome) -> str:
    error = outcome.error
    if error is not None:
        return f"{error.ename}: {error.evalue}".splitlines()[0]
    finished = outcome.finished
    return f"{outcome.status}: {finished.reason}" if finished and finished.reason else outcome.status


async def show_graphs(script: Script, request: GraphRequest, session: KernelSession,
                      out: IO[str] = sys.stdout, err: IO[str] = sys.stderr) -> int:
    """Print the graphs; return the exit code (1 when a cell failed or a name is unknown)."""
    cells = script.code_cells[: request.last_cell] if request.last_cell else script.code_cells
    await session.start()
    status = 0
    last: CellOutcome | None = None
    ran = 0
    for number, cell in enumerate(cells, start=1):
        if not cell.source.strip():  # as replay and Jupyter: a blank cell is not run
            ran = number
            continue
        code, line = runnable(cell)
        outcome = await session.run(code, origin={"file": str(script.path) if script.path else None, "line": line})
        ran = number
        if outcome.report is not None:
            last = outcome
        if outcome.status != "ok":
            print(f"gradrepl: cell {number} (line {cell.line}) failed: {_failure(outcome)}; "
                  f"the graphs are of the state it left", file=err)
            status = 1
            if outcome.status == "died":
                return status
            break
    tensors = last.report.tensors if last is not None and last.report is not None else ()
    known = [name for t in tensors for name in t.names]  # `c = x`: c is listed among x's names
    names = list(request.names) or [t.name for t in tensors if t.grad_fn]
    if not names:
        print(f"gradrepl: no named tensor has an autograd graph after cell {ran}", file=err)
        return status
    for index, name in enumerate(names):
        if name not in known:
            listed = ", ".join(str(k) for k in known[:12]) + (", …" if len(known) > 12 else "")
            print(f"gradrepl: no tensor named {name!r} after cell {ran} "
                  f"({'named tensors: ' + listed if known else 'no tensors are named'})", file=err)
            status = 1
            continue
        graph = await session.graph(name)
        if request.as_json:
            out.write(json.dumps({"cell": ran, **graph.to_json()}, ensure_ascii=False) + "\n")
        elif request.as_dot:
            out.write(("\n" if index else "") + graph_dot(graph))
        else:
            out.write(("\n" if index else "") + graph_text(graph, request.node_grads) + "\n")
        out.flush()
    return status
