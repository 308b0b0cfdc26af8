"""node-grads-chain, node-grads-mlp: what recording every node's gradients (--node-grads)
costs, measured in this process: the traced call with node gradients recorded against the same
traced call with them off, paired rounds, the order alternating."""

from __future__ import annotations

import time
import types
from collections.abc import Callable

from benchmarks.common import BenchError, Row, median, mlp_256, say
from gradrepl.protocol import NodeGradsMode

CHAIN_NODES = 1000


def bench_node_grads(rounds: int) -> list[Row]:
    import torch

    from gradrepl.inkernel import tracer as backward_trace
    from gradrepl.inkernel.glances import capture_glance, render_capture
    from gradrepl.inkernel.namespace import guarded, named_tensors

    model, _, xb, yb = mlp_256(torch)
    leaf = torch.ones(1, requires_grad=True)
    shell = types.SimpleNamespace(user_ns={"leaf": leaf, "model": model, "xb": xb, "yb": yb}, user_ns_hidden={})
    tracer = backward_trace.BackwardTracer(lambda t: named_tensors(t, shell), guarded, capture_glance, render_capture)

    def chain() -> None:
        out = leaf
        for _ in range(CHAIN_NODES - 2):  # with SumBackward0 and AccumulateGrad: CHAIN_NODES nodes
            out = out * 1.01
        out.sum().backward()

    def mlp() -> None:
        model.zero_grad()
        torch.nn.functional.cross_entropy(model(xb), yb).backward()

    def timed(step: Callable[[], None], repeat: int, mode: NodeGradsMode) -> float:
        tracer.node_grads = mode
        best = float("inf")
        for _ in range(repeat):
            tracer.start_cell(None)
            started = time.perf_counter()
            step()
            events = tracer.rendered_events()
            best = min(best, time.perf_counter() - started)
            if (events[0].node_grads is not None) != (mode != "off"):
                raise BenchError(f"node grads {mode}: {events[0].node_grads_note}")
        return best * 1e3

    tracer.install(torch)
    try:
        return [
            _paired("node-grads-chain", chain, 5, "on", 2.0, timed, rounds, f"a {CHAIN_NODES:,}-node chain of scalar multiplies"),
            _paired("node-grads-mlp", mlp, 20, "auto", 2.5, timed, rounds, "the 4-layer MLP step of backward-log-mlp (batch 256)"),
        ]
    finally:
        tracer.uninstall()


def _paired(name: str, step: Callable[[], None], repeat: int, mode: NodeGradsMode, limit: float,
            timed: Callable[[Callable[[], None], int, NodeGradsMode], float], rounds: int, what: str) -> Row:
    step()
    recorded: list[float] = []
    off: list[float] = []
    for index in range(rounds):
        for on in ((False, True) if index % 2 == 0 else (True, False)):
            (recorded if on else off).append(timed(step, repeat, mode if on else "off"))
    ratio = median([r / o for r, o in zip(recorded, off, strict=True)])
    say(f"{name}: --node-grads {mode} {median(recorded):.2f} ms, off {median(off):.2f} ms")
    return Row(name, median(recorded), "ms", "same call traced, --node-grads off", median(off), ratio,
               f"ratio <= {limit}", ratio <= limit,
               note=f"{what}, --node-grads {mode}; best of {repeat} per half round, median of {rounds} paired rounds",
               samples=recorded, anchor_samples=off)
