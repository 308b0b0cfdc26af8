"""Waits on a condition instead of a sleep: a test goes on as soon as what it needs has
happened, and fails saying what did not happen (the timeout only bounds a broken run)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

STEP = 0.02  # seconds between looks


async def until(condition: Callable[[], object], what: str, timeout: float = 30.0) -> None:
    """Let the event loop run until `condition()` is true; fail if `what` never happened."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not condition():
        if loop.time() > deadline:
            raise AssertionError(f"{what}: not within {timeout:g} s")
        await asyncio.sleep(STEP)


def wait_until(condition: Callable[[], object], what: str, timeout: float = 30.0) -> None:
    """The same for code without an event loop (a subprocess being watched)."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout:g} s")
        time.sleep(STEP)
