"""The inspector's rows, cells and column widths as pure functions (no Textual, no torch):
modules folded under summary rows, the filter, what a change marks, widths by priority."""

from __future__ import annotations

import math
from dataclasses import replace

import pytest

from gradrepl.protocol import Stats, Values
from gradrepl.render.inspector_cells import (
    WHOLE_ROW,
    column_widths,
    cut,
    grad_norm,
    row_cells,
    row_changes,
    text_width,
)
from gradrepl.render.inspector_rows import FOLD_OVER, ModuleRow, TensorRow, inspector_rows
from support.model_tensors import linear, parameter, plain, sequential

LINEAR = linear(("model",), ("Linear",), 64, 32, grad=0.02)  # model = nn.Linear(64, 32), after a backward


def labels(rows: list) -> list[str]:
    return [row_cells(row)["name"] for row in rows]


# ---------------------------------------------------------------- grouping


def test_a_small_module_is_open_under_its_summary_row_with_its_tensors_by_their_names_in_it() -> None:
    rows = inspector_rows([plain("x"), *LINEAR, plain("loss", (), grad_fn="MeanBackward0")])
    assert labels(rows) == ["x", "▾ model  Linear", "  weight", "  bias", "loss"]
    summary = rows[1]
    assert isinstance(summary, ModuleRow) and summary.tensors == tuple(LINEAR)


def test_a_100_layer_model_is_one_row_until_opened_then_a_row_per_layer_each_folded() -> None:
    deep = sequential("deep", 100)
    rows = inspector_rows([*deep, plain("x")])
    assert labels(rows) == ["▸ deep  Sequential", "x"]
    opened = inspector_rows(deep, {("deep",): True})
    assert len(opened) == 101
    assert labels(opened)[:3] == ["▾ deep  Sequential", "  ▸ 0  Linear", "  ▸ 1  Linear"]
    assert all(isinstance(row, ModuleRow) and len(row.tensors) == 2 for row in opened[1:])
    layer = inspector_rows(deep, {("deep",): True, ("deep", "7"): True})
    assert labels(layer)[8:11] == ["  ▾ 7  Linear", "    weight", "    bias"]
    assert [row.key for row in layer[9:11]] == ["deep.7.weight", "deep.7.bias"]


def test_a_small_model_folds_when_asked_and_a_big_ones_own_tensors_come_before_its_submodules() -> None:
    assert labels(inspector_rows(LINEAR, {("model",): False})) == ["▸ model  Linear"]
    own = parameter(("net",), ("Net",), "scale", (1,))
    body = sequential("net", 5)
    body = [replace(t, module_path=("net", "body", *t.module_path[1:]), module_types=("Net", "Sequential", "Linear"),
                    name=t.name.replace("net.", "net.body.", 1)) for t in body]
    head = [replace(t, module_path=("net", "head", "fc"), module_types=("Net", "Head", "Linear"),
                    name=t.name.replace("net.0.", "net.head.fc.")) for t in linear(("net", "0"), ("Net", "Linear"), 2, 2)]
    rows = inspector_rows([*body, own, *head], {("net",): True})
    # net holds 13 tensors: its own first, then a row per submodule; head.fc, a chain, is one row
    assert labels(rows) == ["▾ net  Net", "  scale", "  ▸ body  Sequential", "  ▸ head.fc  Linear"]
    assert len(rows[2].tensors) == 10 and len(rows[3].tensors) == 2
    assert labels(inspector_rows([*body, own, *head], {("net",): True, ("net", "body"): True}))[3:5] == \
        ["    ▸ 0  Linear", "    ▸ 1  Linear"]


def test_a_module_holding_as_many_as_fold_over_starts_open_and_one_more_folded() -> None:
    fits = sequential("m", FOLD_OVER // 2)
    assert isinstance(inspector_rows(fits)[0], ModuleRow) and inspector_rows(fits)[0].unfolded
    over = sequential("m", FOLD_OVER // 2 + 1)
    assert not inspector_rows(over)[0].unfolded


def test_the_filter_lists_matching_tensors_by_full_name_or_other_name_unfolded() -> None:
    deep = sequential("deep", 100)
    tensors = [*deep, plain("x", aliases=("c",)), plain("weights")]
    rows = inspector_rows(tensors, filter_text="7.WEIGHT")
    assert labels(rows) == [f"deep.{n}.weight" for n in range(7, 100, 10)]
    assert labels(inspector_rows(tensors, filter_text="c")) == ["x (= c)"]
    assert inspector_rows(tensors, filter_text="nothing like it") == []


# ---------------------------------------------------------------- cells


def test_a_tensor_under_several_names_shows_them_beside_its_own() -> None:
    row = TensorRow(plain("x", aliases=("c", "g['x']")), "x")
    assert row_cells(row)["name"] == "x (= c, g['x'])"


def test_the_summary_row_counts_params_and_values_and_gives_the_norm_of_all_grads() -> None:
    cells = row_cells(inspector_rows(LINEAR)[0])
    assert (cells["shape"], cells["data"], cells["requires_grad"]) == ("2 params", "2,080 values", "yes")
    expected = math.hypot(*(t.grad.stats.norm for t in LINEAR))  # type: ignore[union-attr]
    assert cells["grad"] == f"norm {expected:.4g}"
    buffers = [*LINEAR, parameter(("model",), ("Linear",), "running_mean", (32,), buffer=True)]
    assert row_cells(inspector_rows(buffers)[0])["shape"] == "2 params + 1 buf"


def test_grad_norm_says_how_many_have_grads_and_passes_nan_and_inf_on() -> None:
    with_grad, without = linear(("m",), ("Linear",), 2, 2, grad=0.5), linear(("m",), ("Linear",), 2, 2)
    assert grad_norm(without) == "—"
    assert grad_norm([with_grad[0], without[1]]) == f"norm {with_grad[0].grad.stats.norm:.4g} (1 of 2)"  # type: ignore[union-attr]
    nan = replace(with_grad[0], grad=Values((1.0,), stats=Stats("nan", None, None, 1, 0, False, 1)))
    assert grad_norm([nan, with_grad[1]]) == "norm nan"
    huge = replace(with_grad[0], grad=Values((1.0,), stats=Stats(1e200, 0, 0, 0, 0, False, 1)))
    assert grad_norm([huge, huge]) == f"norm {math.hypot(1e200, 1e200):.4g}"  # no overflow on the way


def test_a_new_tensor_marks_its_row_a_change_its_column_and_a_folded_module_its_summary() -> None:
    deep = sequential("deep", 100, grad=0.1)
    rows = inspector_rows([*deep, plain("x")])
    grads = {t.name: {"grad"} for t in deep[-4:]}
    assert row_changes(rows[0], grads) == {"grad"}
    assert row_changes(rows[1], grads) == set()
    assert row_changes(rows[0], {t.name: {"name"} for t in deep}) == {WHOLE_ROW}
    assert row_changes(rows[0], {deep[0].name: {"name"}}) == {"data"}  # a tensor more: the count changed
    assert row_changes(rows[1], {"x": {"aliases"}}) == {"name"}
    assert row_changes(rows[1], {"x": {"name"}}) == {WHOLE_ROW}


# ---------------------------------------------------------------- widths


def test_cut_ends_in_an_ellipsis_and_counts_wide_characters_as_two() -> None:
    assert cut("[[-0.15, -0.2832, 0.022]]", 10) == "[[-0.15, …"
    assert cut("short", 10) == "short"
    assert text_width(cut("张量张量张量", 7)) <= 7 and cut("张量张量张量", 7).endswith("…")


def model_table() -> list[dict[str, str]]:
    return [row_cells(row) for row in inspector_rows([plain("x"), *LINEAR, plain("loss", (), grad_fn="MeanBackward0")])]


@pytest.mark.parametrize("available", [76, 116, 40, 200])
def test_the_columns_fit_the_pane(available: int) -> None:
    widths = column_widths(model_table(), available)
    assert sum(w + 2 for w in widths.values()) <= available


def test_at_80_columns_name_shape_grad_fn_data_and_grad_show_with_model_parameters() -> None:
    widths = column_widths(model_table(), 76)  # 80 less the border and the scroll bar
    assert {"name", "shape", "grad_fn", "data", "grad"} <= set(widths)
    assert widths["name"] >= len("▾ model  Linear") and widths["grad_fn"] == len("MeanBackward0")
    assert widths["grad"] >= 12 and widths["data"] >= 12


def test_at_120_columns_every_column_shows_and_grad_has_its_share() -> None:
    widths = column_widths(model_table(), 116)
    assert list(widths) == ["name", "shape", "dtype", "requires_grad", "is_leaf", "grad_fn", "data", "grad"]
    assert widths["grad"] >= 24


def test_columns_with_room_are_as_wide_as_their_widest_text() -> None:
    table = [row_cells(TensorRow(plain("x"), "x"))]
    widths = column_widths(table, 200)
    assert widths == {key: max(len(key if key not in ("requires_grad", "is_leaf") else {"requires_grad": "req_grad",
                      "is_leaf": "leaf"}[key]), len(table[0][key])) for key in widths}
