"""The tensor inspector's columns are as wide as what they show now, not the widest value
they ever showed (a snapshot then depends only on the tensors, not on the updates before)."""

from __future__ import annotations

import pytest
from textual.app import App, ComposeResult
from textual.widgets.data_table import ColumnKey

from gradrepl.protocol import TensorInfo, Values
from gradrepl.ui.widgets.inspector import TensorInspector


class InspectorApp(App[None]):
    def compose(self) -> ComposeResult:
        yield TensorInspector(id="inspector")


def tensor(name: str, grad: object) -> TensorInfo:
    return TensorInfo(name, (2,), "float32", "cpu", True, True, None, data=Values((1.0, 2.0)),
                      grad=None if grad is None else Values(grad))


def grad_width(inspector: TensorInspector) -> int:
    return inspector.columns[ColumnKey("grad")].get_render_width(inspector)


@pytest.mark.parametrize("third", ["c", "a"], ids=["other-names-table-rebuilt", "same-names-rows-updated"])
async def test_grad_column_narrows_when_the_wide_grad_is_gone(third: str) -> None:
    async with InspectorApp().run_test(size=(160, 20)) as pilot:
        inspector = pilot.app.query_one(TensorInspector)
        widths = []
        for table in [(tensor("a", (0.5, 1.0)),), (tensor("a", (123456.789, -98765.4321)),), (tensor(third, (0.5, 1.0)),)]:
            inspector.show(table)
            await pilot.pause()
            widths.append(grad_width(inspector))
        narrow, wide, after = widths
        assert wide > narrow
        assert after == narrow
