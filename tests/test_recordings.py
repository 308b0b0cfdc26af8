"""The recordings the kernel-free UI tests play back (tests/data/reports) are what a real
kernel sends today: recorded again, each matches the stored one but for what differs from
run to run (comm ids, addresses, the kernel's pid). After a deliberate change to the probe
or to the kernel's output: `.venv/bin/python scripts/record-reports`, then look at the
snapshots of tests/test_snapshots_recorded.py it changes."""

from __future__ import annotations

import pytest

from support.recorder import SCENARIOS, Scenario, comparable, record
from support.recording import load, names


def test_every_scenario_is_stored_and_every_stored_recording_has_its_scenario() -> None:
    assert sorted(s.name for s in SCENARIOS) == names()


@pytest.mark.kernel
@pytest.mark.parametrize("scenario", SCENARIOS, ids=lambda s: s.name)
async def test_a_stored_recording_is_what_the_kernel_sends_now(scenario: Scenario) -> None:
    fresh = await record(scenario)
    assert comparable(load(scenario.name)) == comparable(fresh), (
        f"tests/data/reports/{scenario.name}.json is stale: run scripts/record-reports {scenario.name}"
    )
