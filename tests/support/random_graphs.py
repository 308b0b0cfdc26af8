"""Random autograd graphs, for checking what gradrepl says of a backward call against torch."""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator
from typing import Any

import torch


def random_graph(rnd: random.Random) -> tuple[list[Any], list[Any]]:
    """Several leaves mixed by add, mul, sin, exp, matmul and sum, reusing earlier results; the leaves and 1-3 roots."""
    leaves = [torch.randn(3, 3, requires_grad=True) for _ in range(rnd.randint(2, 5))]
    pool = [*leaves, torch.randn(3, 3)]
    ops: list[Callable[[Any, Any], Any]] = [
        lambda a, b: a + b, lambda a, b: a * b, lambda a, b: torch.sin(a) * b, lambda a, b: torch.exp(a * 0.1) + b,
        lambda a, b: a @ b, lambda a, b: a.sum() + b, lambda a, b: (a * a).sum() * b,
    ]
    for _ in range(rnd.randint(5, 25)):
        a, b = rnd.choice(pool), rnd.choice(pool)
        pool.append(rnd.choice(ops)(a, b))
    made = [t for t in pool[len(leaves) + 1:] if t.grad_fn is not None]
    return leaves, rnd.sample(made, min(len(made), rnd.randint(1, 3)))



def every_node(roots: list[Any]) -> Iterator[Any]:
    """Each node of the graphs behind `roots`, once (depth first)."""
    done, stack = set(), [t.grad_fn for t in roots]
    while stack:
        node = stack.pop()
        if node is None or id(node) in done:
            continue
        done.add(id(node))
        stack.extend(child for child, _ in node.next_functions)
        yield node
