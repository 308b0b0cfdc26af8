"""nan-check-mlp, nan-check-vs-anomaly: what --nan-check costs, in this process: a step as a
cell runs it under --nan-check (every op's result checked, the backward traced and each node's
gradients checked, the events rendered; as for a loop's steps past a cell's fifth, whose node
gradients are not recorded) against the same step with no gradrepl at all (an MLP training
step), and against the same step under torch.autograd.detect_anomaly(check_nan=True) (a 400-op
chain, where anomaly mode was measured at 4.7-5.7x)."""

from __future__ import annotations

import contextlib
import time
import types
from collections.abc import Callable
from typing import Any

from benchmarks.common import BenchError, Row, median, mlp_256, say


def bench_nan_check(rounds: int) -> list[Row]:
    import torch

    from gradrepl.inkernel import tracer as backward_trace
    from gradrepl.inkernel.errors import CellOrigins
    from gradrepl.inkernel.glances import capture_glance, render_capture
    from gradrepl.inkernel.namespace import guarded, named_tensors
    from gradrepl.inkernel.nan_watch import NanWatch

    model, opt, xb, yb = mlp_256(torch)
    shell = types.SimpleNamespace(user_ns={"model": model, "opt": opt, "xb": xb, "yb": yb}, user_ns_hidden={})
    tracer = backward_trace.BackwardTracer(lambda t: named_tensors(t, shell), guarded, capture_glance, render_capture)
    watch = NanWatch(CellOrigins())
    watch.enabled = True
    tracer.node_grads = "off"  # a loop's steps past a cell's fifth: checked, not recorded (node-grads-mlp)
    tracer.on_node_grads = watch.backward_births

    leaf = torch.ones(100, requires_grad=True)

    def mlp() -> None:
        opt.zero_grad()
        torch.nn.functional.cross_entropy(model(xb), yb).backward()
        opt.step()

    def chain() -> None:  # the 400-op chain detect_anomaly was measured on (4.7-5.7x)
        h = leaf
        for _ in range(CHAIN_OPS - 1):
            h = h * 1.001
        h.sum().backward()

    rows = [_measure(tracer, watch, mlp, rounds)[0], _measure(tracer, watch, chain, rounds)[1]]
    return rows


CHAIN_OPS = 400


def _measure(tracer: Any, watch: Any, step: Callable[[], None], rounds: int) -> list[Row]:
    import torch

    def plain() -> None:
        step()

    def checked() -> None:
        tracer.start_cell(None)
        watch.start_cell(torch)
        try:
            step()
        finally:
            if watch.end_cell(1):
                raise BenchError(f"the {step.__name__} step made a nan")
        if not tracer.rendered_events():
            raise BenchError("--nan-check traced no call")

    def anomaly() -> None:
        with warnings_off(), torch.autograd.detect_anomaly(check_nan=True):
            step()

    def best(run: Callable[[], None], repeat: int) -> float:
        times = []
        for _ in range(repeat):
            started = time.perf_counter()
            run()
            times.append(time.perf_counter() - started)
        return min(times) * 1e3

    tracer.install(torch)
    try:
        for run in (plain, checked, anomaly):
            run()
        samples: dict[str, list[float]] = {"plain": [], "checked": [], "anomaly": []}
        for index in range(rounds):
            order = [("plain", plain), ("checked", checked), ("anomaly", anomaly)]
            for name, run in order if index % 2 == 0 else reversed(order):
                samples[name].append(best(run, 10))
    finally:
        tracer.uninstall()
    over_plain = median([c / p for c, p in zip(samples["checked"], samples["plain"], strict=True)])
    over_anomaly = median([c / a for c, a in zip(samples["checked"], samples["anomaly"], strict=True)])
    say(f"nan-check ({step.__name__}): checked {median(samples['checked']):.2f} ms, plain {median(samples['plain']):.2f} ms, "
        f"detect_anomaly {median(samples['anomaly']):.2f} ms")
    what = "4-layer MLP step (batch 256, SGD)" if step.__name__ == "mlp" else f"a {CHAIN_OPS}-op chain of multiplies, backward"
    note = f"{what}; best of 10 per round, median of {rounds} rounds, order alternating"
    return [
        Row("nan-check-mlp", median(samples["checked"]), "ms", "same step, no gradrepl", median(samples["plain"]),
            over_plain, "ratio <= 1.5", over_plain <= 1.5, note=note, samples=samples["checked"],
            anchor_samples=samples["plain"]),
        Row("nan-check-vs-anomaly", median(samples["checked"]), "ms", "same step, detect_anomaly(check_nan=True)",
            median(samples["anomaly"]), over_anomaly, "ratio <= 0.7", over_anomaly <= 0.7, note=note,
            samples=samples["checked"], anchor_samples=samples["anomaly"]),
    ]


def warnings_off() -> Any:
    """detect_anomaly warns once that it slows things down."""
    import warnings

    stack = contextlib.ExitStack()
    stack.enter_context(warnings.catch_warnings())
    warnings.simplefilter("ignore")
    return stack
