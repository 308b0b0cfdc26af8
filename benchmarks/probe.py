"""snapshot-1e8, describe-1e8(-vs-repr), backward-log-mlp, backward-log-chain,
backward-log-loop(-tiny): what the probe's own work costs, measured in this process against torch
doing the same without it."""

from __future__ import annotations

import itertools
import time
import types
from collections.abc import Callable
from typing import Any

from benchmarks.common import BenchError, Row, median, mlp_256, say, time_calls


def snapshot_samples(big: Any, samples: int) -> tuple[list[float], list[float], list[float], list[float]]:
    """Milliseconds of snapshot.snapshot of a namespace holding `big`, of its repr, and of
    values.describe_tensor of it and of a 4x4 tensor; `big` is let go on return."""
    import torch

    from gradrepl.inkernel.snapshot import snapshot
    from gradrepl.inkernel.values import describe_tensor

    shell = types.SimpleNamespace(user_ns={"big": big}, user_ns_hidden={})
    report = snapshot(shell)
    if len(report["tensors"]) != 1 or report["tensors"][0]["data"] is None:
        raise BenchError(f"snapshot of the 1e8 tensor came back as {report['tensors'] or report['notes']}")
    small = torch.randn(4, 4)
    describe_big = time_calls(lambda: describe_tensor(torch, "big", big), samples)
    describe_small = time_calls(lambda: describe_tensor(torch, "small", small), samples)
    repr_big = time_calls(lambda: torch.Tensor.__repr__(big), samples)
    snap = time_calls(lambda: as_the_probe_makes_it(shell), samples)
    return snap, repr_big, describe_big, describe_small


def as_the_probe_makes_it(shell: Any) -> dict[str, Any]:
    """The snapshot with the cyclic collector off, as the probe makes its report (a collection
    starting inside, through every object of a process that imported torch, was the 2 to 144 ms
    outlier of snapshot-1e8)."""
    from gradrepl.inkernel.graph import no_collections
    from gradrepl.inkernel.snapshot import snapshot

    with no_collections():
        return snapshot(shell)


def bench_snapshot(samples: int) -> list[Row]:
    import torch

    say("snapshot-1e8: allocating a 10000x10000 float32 tensor (400 MB)")
    snap, repr_big, describe_big, describe_small = snapshot_samples(torch.randn(10_000, 10_000), samples)
    say(f"snapshot-1e8: snapshot {median(snap):.2f} ms, repr {median(repr_big):.2f} ms")
    return [
        Row(
            "snapshot-1e8", median(snap), "ms", "repr(big)", median(repr_big), median(snap) / median(repr_big),
            "max <= 2 ms", max(snap) <= 2.0, note=f"snapshot.snapshot, in process, the collector off as in the probe; median of {samples}; the target "
            f"holds for the slowest (max {max(snap):.2f} ms)",
            samples=snap, anchor_samples=repr_big, extra={"max_ms": max(snap)},
        ),
        Row(
            "describe-1e8", median(describe_big), "ms", "describe 4x4", median(describe_small),
            median(describe_big) / median(describe_small), "info", None,
            note=f"values.describe_tensor; median of {samples}", samples=describe_big, anchor_samples=describe_small,
        ),
        Row(
            "describe-1e8-vs-repr", median(describe_big), "ms", "repr(big)", median(repr_big),
            median(describe_big) / median(repr_big), "info", None,
            note=f"median of {samples}", samples=describe_big, anchor_samples=repr_big,
        ),
    ]


def bench_backward_log(rounds: int) -> list[Row]:
    """The backward log's cost: a traced call against the same call untraced, same process,
    rounds alternating (the tracer is installed for one half of a round, removed for the other)."""
    import torch

    from gradrepl.inkernel import tracer as backward_trace
    from gradrepl.inkernel.glances import capture_glance, render_capture
    from gradrepl.inkernel.namespace import guarded, named_tensors

    model, opt, xb, yb = mlp_256(torch)
    leaf = torch.ones(1, requires_grad=True)
    shell = types.SimpleNamespace(
        user_ns={"model": model, "opt": opt, "xb": xb, "yb": yb, "leaf": leaf}, user_ns_hidden={}
    )
    tracer = backward_trace.BackwardTracer(
        lambda t: named_tensors(t, shell), guarded, capture_glance, render_capture
    )

    def mlp_step() -> None:
        opt.zero_grad()
        torch.nn.functional.cross_entropy(model(xb), yb).backward()
        opt.step()

    def chain() -> None:
        out = leaf
        for _ in range(10_000):
            out = out * 1.0
        out.sum().backward()

    def timed(step: Callable[[], None], repeat: int, traced: bool) -> float:
        tracer.node_grads = "off"  # the log's own cost; node gradients are node-grads-mlp's
        if traced:
            tracer.install(torch)
        try:
            best = float("inf")
            for _ in range(repeat):
                tracer.start_cell(None)  # every call described, as in a cell's first calls
                started = time.perf_counter()
                step()
                if traced:
                    tracer.rendered_events()  # turning captures into data, done once a cell, counted here
                best = min(best, time.perf_counter() - started)
            return best * 1e3
        finally:
            tracer.uninstall()

    steps: list[tuple[str, Callable[[], None], int, float]] = [
        ("backward-log-mlp", mlp_step, 20, 1.1),
        ("backward-log-chain", chain, 3, 1.5),
    ]
    rows = _traced_against_plain(tracer, steps, timed, rounds)
    rows += [_training_loop(tracer, rounds, *model) for model in LOOP_MODELS]
    return rows


def _traced_against_plain(tracer: Any, steps: list[tuple[str, Callable[[], None], int, float]],
                          timed: Callable[[Callable[[], None], int, bool], float], rounds: int) -> list[Row]:
    rows = []
    for name, step, repeat, limit in steps:
        step()
        plain: list[float] = []
        traced: list[float] = []
        for index in range(rounds):
            order = (False, True) if index % 2 == 0 else (True, False)
            for with_tracer in order:
                (traced if with_tracer else plain).append(timed(step, repeat, with_tracer))
        ratio = median([t / p for t, p in zip(traced, plain, strict=True)])
        say(f"{name}: traced {median(traced):.2f} ms, plain {median(plain):.2f} ms")
        rows.append(
            Row(
                name, median(traced), "ms", "same step untraced", median(plain), ratio, f"ratio <= {limit}",
                ratio <= limit, note=f"best of {repeat} per half round, median of {rounds} paired rounds",
                samples=traced, anchor_samples=plain,
            )
        )
    return rows



LOOP_STEPS = 1000
# (row, layer sizes, batch, target): a small MLP as tutorials train one (MNIST-sized), and a
# tiny one whose step is all Python and dispatch (0.3 ms), the dearest case, for information.
LOOP_MODELS: list[tuple[str, tuple[int, ...], int, float | None]] = [
    ("backward-log-loop", (784, 128, 128, 10), 64, 1.3),
    ("backward-log-loop-tiny", (8, 32, 32, 1), 32, None),
]


def _training_loop(tracer: Any, rounds: int, name: str, sizes: tuple[int, ...], batch: int,
                   limit: float | None) -> Row:
    """backward-log-loop(-tiny): a cell that trains an MLP of `sizes` (ReLU between, SGD) for
    LOOP_STEPS steps, each zero_grad, loss.backward(), step: traced as the probe traces a cell
    (start_cell, every call, rendered_events), against the same cell untraced; paired rounds,
    the order alternating, best of 3 per half round."""
    import torch

    torch.manual_seed(0)
    layers: list[torch.nn.Module] = []
    for index, (size_in, size_out) in enumerate(itertools.pairwise(sizes)):
        layers += [torch.nn.Linear(size_in, size_out)] + ([torch.nn.ReLU()] if index < len(sizes) - 2 else [])
    model = torch.nn.Sequential(*layers)
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    xb, yb = torch.randn(batch, sizes[0]), torch.randn(batch, sizes[-1])

    def cell(traced: bool) -> float:
        if traced:
            tracer.install(torch)
        try:
            best = float("inf")
            for _ in range(3):
                started = time.perf_counter()
                tracer.start_cell(None)
                for _ in range(LOOP_STEPS):
                    opt.zero_grad()
                    loss = ((model(xb) - yb) ** 2).mean()
                    loss.backward()
                    opt.step()
                if traced:
                    events = tracer.rendered_events()
                    if len(events) != 50 or events[-1].step != LOOP_STEPS:
                        raise BenchError(f"{name}: {len(events)} events, the last at step {events[-1].step}")
                best = min(best, time.perf_counter() - started)
            return best * 1e3
        finally:
            tracer.uninstall()

    cell(False)
    plain: list[float] = []
    traced: list[float] = []
    for index in range(rounds):
        for with_tracer in ((False, True) if index % 2 == 0 else (True, False)):
            (traced if with_tracer else plain).append(cell(with_tracer))
    ratio = median([t / p for t, p in zip(traced, plain, strict=True)])
    say(f"{name}: traced {median(traced):.1f} ms, plain {median(plain):.1f} ms")
    shape = "-".join(map(str, sizes))
    return Row(
        name, median(traced), "ms", f"same {LOOP_STEPS}-step cell untraced", median(plain), ratio,
        f"ratio <= {limit}" if limit is not None else "info", None if limit is None else ratio <= limit,
        note=f"MLP {shape}, batch {batch}; best of 3 per half round, median of {rounds} paired rounds",
        samples=traced, anchor_samples=plain,
    )
