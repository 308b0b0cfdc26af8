from __future__ import annotations

import errno
import json
import os
import stat
from dataclasses import replace
from pathlib import Path

import nbformat
import pytest

from gradrepl.cells import (
    Cell,
    Script,
    ScriptError,
    describe_os_error,
    edited,
    new_code_cell,
    parse_ipynb,
    parse_percent,
    parse_sphinx,
    read_script,
    render_percent,
    write_percent,
)

DATA = Path(__file__).resolve().parent / "data" / "cells"
SEED = DATA / "seed_autograd.py"


def content(cells: tuple[Cell, ...] | list[Cell]) -> list[tuple[str, str, str, tuple[tuple[str, str], ...]]]:
    return [(cell.kind, cell.source, cell.title, tuple(cell.metadata)) for cell in cells]


def lines_of(cells: tuple[Cell, ...]) -> list[int]:
    return [cell.line for cell in cells]


# ---------------------------------------------------------------- the seed script


def test_seed_reads_as_thirteen_cells_with_twelve_code_cells() -> None:
    script = read_script(SEED)

    assert script.format == "percent"
    assert script.path == SEED
    assert script.preamble == ""
    assert len(script.cells) == 13
    assert len(script.code_cells) == 12
    assert script.cells[0].kind == "markdown"
    assert script.cells[0].line == 2
    assert script.cells[0].source.startswith("2.3 梯度 — cells transcribed")
    assert script.code_cells[0].line == 5
    assert script.code_cells[0].source == "import torch\nfrom torch.autograd import Variable\ntorch.__version__"
    assert script.code_cells[-1].line == 62
    assert script.code_cells[-1].source.endswith("print(x.grad)")


def test_seed_round_trips_byte_for_byte(tmp_path: Path) -> None:
    original = SEED.read_bytes()
    script = read_script(SEED)

    assert render_percent(script).encode("utf-8") == original
    target = tmp_path / "seed.py"
    write_percent(target, script)
    assert target.read_bytes() == original


def test_seed_line_numbers_point_at_each_cells_first_source_line() -> None:
    text = SEED.read_text(encoding="utf-8")
    file_lines = text.split("\n")
    for cell in read_script(SEED).code_cells:
        assert file_lines[cell.line - 1] == cell.source.split("\n")[0]


# ---------------------------------------------------------------- lossless percent round trips

ROUND_TRIP_TEXTS = {
    "empty": "",
    "only newline": "\n",
    "blank lines only": "\n\n  \n",
    "plain code": "import torch\nx = torch.ones(2)\n",
    "plain without final newline": "x = 1",
    "single marker": "# %%",
    "marker and newline": "# %%\n",
    "no final newline": "# %%\nx = 1\n\n# %%\ny = 2",
    "trailing blank lines": "# %%\nx = 1\n\n\n\n",
    "trailing whitespace lines": "# %%\nx = 1\n  \n\t\n",
    "no blank between cells": "# %%\nx = 1\n# %%\ny = 2\n",
    "many blanks between cells": "# %%\nx = 1\n\n\n\n# %%\ny = 2\n",
    "empty cells": "# %%\n# %%\n\n# %%\n\n\n# %% [markdown]\n",
    "leading blank lines in cell": "# %%\n\n\nx = 1\n",
    "compact marker": "#%%\nx = 1\n#%% [markdown]\n# text\n",
    "titles and metadata": '# %% Training loop tags=["slow"]\nfit()\n\n# %% [markdown] id="abc"\n# Notes\n',
    "odd spacing in marker": "# %%   spaced   title   \nx\n#%%[markdown]\n# m\n",
    "preamble": '#!/usr/bin/env python\n"""Docstring header."""\n\n# %%\nx = 1\n',
    "preamble with code": "import torch\n\n# %%\nx = torch.ones(1)\n",
    "markdown odd comments": "# %% [markdown]\n#   indented\n#no space\n##\n#\n# ====\nnot a comment\n\n# %%\nx\n",
    "raw cell": "# %% [raw]\n# .. note:: raw\n#\n",
    "escaped marker in code": "# %%\n#\\ %% not a cell\nx = 1\n",
    "tabs and unicode": "# %% Ünïcode\n\tx = '→'\n",
    "lone carriage return": "# %%\nx = 1\r\ny = 2\n",
    "crlf": "# %%\r\nx = 1\r\n\r\n# %% [markdown]\r\n# text\r\n",
    "crlf without final newline": "# %%\r\nx = 1",
    "mixed line endings": "# %%\r\nx = 1\n\n# %%\ny = 2\r\n",
    "bom": "\ufeff# %%\nx = 1\n",
    "bom with preamble and crlf": "\ufeff# header\r\n\r\n# %%\r\nx = 1\r\n",
    "bom plain": "\ufeffx = 1\n",
    "bom only": "\ufeff",
    "unparsable title metadata": '# %% a=b c=1 d="unterminated\nx\n',
}


@pytest.mark.parametrize("text", ROUND_TRIP_TEXTS.values(), ids=ROUND_TRIP_TEXTS.keys())
def test_render_gives_back_parsed_text_byte_for_byte(text: str) -> None:
    assert render_percent(parse_percent(text)) == text


@pytest.mark.parametrize("text", ROUND_TRIP_TEXTS.values(), ids=ROUND_TRIP_TEXTS.keys())
def test_reading_a_file_and_writing_it_back_is_byte_identical(tmp_path: Path, text: str) -> None:
    path = tmp_path / "script.py"
    path.write_bytes(text.encode("utf-8"))

    write_percent(path, read_script(path))

    assert path.read_bytes() == text.encode("utf-8")


def test_crlf_file_reads_sources_with_plain_newlines() -> None:
    script = parse_percent("# %%\r\nx = 1\r\ny = 2\r\n\r\n# %% [markdown]\r\n# Title\r\n# -----\r\n")

    assert content(script.cells) == [
        ("code", "x = 1\ny = 2", "", ()),
        ("markdown", "Title\n-----", "", ()),
    ]
    assert lines_of(script.cells) == [2, 6]


def test_bom_is_kept_in_the_preamble_and_not_in_any_source() -> None:
    script = parse_percent("\ufeff# %%\nx = 1\n")

    assert script.preamble == "\ufeff"
    assert script.cells[0].source == "x = 1"
    assert script.cells[0].raw == "# %%\nx = 1\n"
    assert script.cells[0].line == 2


def test_bom_file_on_disk_round_trips(tmp_path: Path) -> None:
    path = tmp_path / "bom.py"
    data = b"\xef\xbb\xbf# %% First\r\nx = 1\r\n"
    path.write_bytes(data)

    script = read_script(path)
    write_percent(path, script)

    assert script.cells[0].title == "First"
    assert path.read_bytes() == data


# ---------------------------------------------------------------- parsing details


def test_fixture_with_preamble_titles_metadata_and_rest_prose() -> None:
    script = read_script(DATA / "titled.py")

    assert script.format == "percent"
    assert script.preamble == '#!/usr/bin/env python\n"""Autograd walkthrough."""\n\n'
    assert content(script.cells) == [
        ("markdown", "Gradients\n=========\n\n# x = 1 is prose here\n~~~~\n----", "", ()),
        ("code", "import torch", "Setup", (("tags", '["setup"]'), ("id", "c1"))),
        ("markdown", "Note", "", ()),
        ("raw", "raw text\n", "Raw block", ()),
        ("code", "", "", ()),
    ]
    assert lines_of(script.cells) == [5, 12, 16, 18, 21]
    assert render_percent(script) == (DATA / "titled.py").read_text(encoding="utf-8")


def test_cell_raw_holds_marker_and_separating_blank_lines() -> None:
    script = parse_percent("# %% A\nx = 1\n\n\n# %% B\ny = 2")

    assert [cell.raw for cell in script.cells] == ["# %% A\nx = 1\n\n\n", "# %% B\ny = 2"]


@pytest.mark.parametrize(
    ("marker", "expected"),
    [
        ("# %%", ("code", "", ())),
        ("#%%", ("code", "", ())),
        ("# %% Load data", ("code", "Load data", ())),
        ('# %% Training loop tags=["slow"]', ("code", "Training loop", (("tags", '["slow"]'),))),
        ('# %% [markdown] id="abc"', ("markdown", "", (("id", "abc"),))),
        ("# %% [md] Intro", ("markdown", "Intro", ())),
        ("# %% [raw]", ("raw", "", ())),
        ("#%%[markdown]", ("markdown", "", ())),
        ('# %% k=1 flag=true none=null s="two words"', ("code", "", (("k", "1"), ("flag", "true"), ("none", "null"), ("s", "two words")))),
        ('# %% slideshow={"slide_type": "slide"}', ("code", "", (("slideshow", '{"slide_type": "slide"}'),))),
        ('# %% Step a=b c="x"', ("code", "Step a=b", (("c", "x"),))),
        ("# %% x=(1)", ("code", "x=(1)", ())),
        ("# %% [javascript] widget", ("code", "[javascript] widget", ())),
        ('# %% say "hi"', ("code", 'say "hi"', ())),
    ],
)
def test_marker_line_kind_title_and_metadata(marker: str, expected: tuple[str, str, tuple[tuple[str, str], ...]]) -> None:
    cell = parse_percent(marker + "\nbody\n").cells[0]

    assert (cell.kind, cell.title, cell.metadata) == expected


def test_only_marker_lines_break_cells() -> None:
    text = (
        "# %% [markdown]\n"
        "# Section\n"
        "# =======\n"
        "# x = 1\n"
        "# for i in range(3):\n"
        "# ~~~~~~\n"
        "# ------\n"
        "# %%%% not a marker\n"
        "# %%timeit is a commented cell magic\n"
        "  # %% indented is not a marker\n"
        "# %% Next\n"
        "x = 1\n"
    )
    script = parse_percent(text)

    assert content(script.cells) == [
        (
            "markdown",
            "Section\n=======\nx = 1\nfor i in range(3):\n~~~~~~\n------\n%%%% not a marker\n"
            "%%timeit is a commented cell magic\n  # %% indented is not a marker",
            "",
            (),
        ),
        ("code", "x = 1", "Next", ()),
    ]
    assert lines_of(script.cells) == [2, 12]


def test_marker_at_column_zero_inside_markdown_starts_a_new_cell() -> None:
    script = parse_percent("# %% [markdown]\n# prose\n# %% still a marker\n# more prose\n")

    assert content(script.cells) == [
        ("markdown", "prose", "", ()),
        ("code", "# more prose", "still a marker", ()),
    ]


def test_leading_and_trailing_blank_lines_are_not_source_and_line_skips_them() -> None:
    script = parse_percent("# %%\n\n\nx = 1\n\ny = 2\n\n\n# %%\n")

    assert script.cells[0].source == "x = 1\n\ny = 2"
    assert script.cells[0].line == 4
    assert script.cells[1].source == ""
    assert script.cells[1].line == 10


def test_markdown_blank_and_bare_hash_lines() -> None:
    script = parse_percent("# %% [markdown]\n#\n# a\n\n# b\n#\n\n")

    assert script.cells[0].source == "\na\n\nb\n"
    assert script.cells[0].line == 2


def test_plain_file_is_one_code_cell() -> None:
    script = parse_percent("\n\nimport torch\nx = torch.ones(2)\n\n")

    assert script.format == "plain"
    assert script.preamble == ""
    assert content(script.cells) == [("code", "import torch\nx = torch.ones(2)", "", ())]
    assert script.cells[0].line == 3


def test_blank_plain_file_has_no_cells() -> None:
    script = parse_percent("\n  \n")

    assert script.format == "plain"
    assert script.cells == ()
    assert script.preamble == "\n  \n"


def test_code_before_the_first_marker_is_a_cell_not_preamble() -> None:
    script = parse_percent("# setup\nimport torch\n\n# %%\nx = 1\n")

    assert script.preamble == ""
    assert content(script.cells) == [("code", "# setup\nimport torch", "", ()), ("code", "x = 1", "", ())]
    assert lines_of(script.cells) == [1, 5]
    assert script.cells[0].raw == "# setup\nimport torch\n\n"


def test_docstring_and_comments_before_the_first_marker_are_preamble() -> None:
    script = parse_percent('#!/usr/bin/env python\n"""Header."""\n# note\n\n# %%\nx = 1\n')

    assert script.preamble == '#!/usr/bin/env python\n"""Header."""\n# note\n\n'
    assert len(script.cells) == 1


def test_code_cells_property_keeps_order_and_only_code() -> None:
    script = parse_percent("# %%\na\n# %% [markdown]\n# b\n# %% [raw]\n# c\n# %%\nd\n")

    assert [cell.source for cell in script.code_cells] == ["a", "d"]


# ---------------------------------------------------------------- rendering new and edited cells


def test_new_cells_render_with_markers_one_blank_line_between_and_one_final_newline() -> None:
    cells = [
        new_code_cell("import torch"),
        Cell("markdown", "Title\n=====\n\nText"),
        Cell("code", "x = 1", title="Step", metadata=(("tags", '["slow"]'), ("id", "abc"))),
        Cell("raw", ".. raw"),
    ]

    assert render_percent(cells) == (
        "# %%\nimport torch\n\n"
        "# %% [markdown]\n# Title\n# =====\n#\n# Text\n\n"
        '# %% Step tags=["slow"] id="abc"\nx = 1\n\n'
        "# %% [raw]\n# .. raw\n"
    )


def test_new_cells_parse_back_to_the_same_content() -> None:
    cells = [
        new_code_cell("x = 1\n\nif x:\n    y = 2"),
        Cell("markdown", "\nLeading empty line\n# heading-like\n  indented\n\ntrailing\n"),
        Cell("code", "", title="Empty"),
        Cell("raw", "%% looks like a marker once commented"),
        Cell("code", "print('hi')", metadata=(("n", "3"), ("s", "3 "), ("multi", "a\nb"), ("obj", '{"a": [1, 2]}'))),
        Cell("markdown", "", title="Only a title"),
    ]

    assert content(parse_percent(render_percent(cells)).cells) == content(cells)


def test_code_line_that_looks_like_a_marker_is_escaped_and_reads_back() -> None:
    cell = new_code_cell("# %% a comment, not a cell\n#%%\nx = 1\n#\\ %% already escaped")

    text = render_percent([cell])

    assert text == "# %%\n#\\ %% a comment, not a cell\n#\\%%\nx = 1\n#\\\\ %% already escaped\n"
    [reread] = parse_percent(text).cells
    assert reread.source == cell.source


def test_markdown_line_starting_with_percent_percent_is_escaped() -> None:
    text = render_percent([Cell("markdown", "%% note")])

    assert text == "# %% [markdown]\n#\\ %% note\n"
    assert parse_percent(text).cells[0].source == "%% note"


def test_new_code_cell_drops_surrounding_blank_lines_and_crlf() -> None:
    cell = new_code_cell("\r\n\nx = 1\r\n  \ny = 2\n\n")

    assert cell == Cell("code", "x = 1\n  \ny = 2")
    assert cell.raw is None
    assert cell.line == 0


def test_edited_drops_raw_and_applies_changes() -> None:
    original = parse_percent("# %% A\nx = 1\n").cells[0]

    changed = edited(original, source="x = 2")

    assert changed.raw is None
    assert (changed.source, changed.title, changed.line) == ("x = 2", "A", 2)


def test_editing_one_cell_rewrites_only_that_block() -> None:
    text = SEED.read_text(encoding="utf-8")
    script = read_script(SEED)
    cells = list(script.cells)
    cells[2] = edited(cells[2], source="tensor = torch.zeros(2)")

    rendered = render_percent(replace(script, cells=tuple(cells)))

    old_block = script.cells[2].raw
    assert old_block is not None
    assert rendered == text.replace(old_block, "# %%\ntensor = torch.zeros(2)\n\n")


def test_stale_raw_is_not_reused() -> None:
    script = parse_percent("# %%\nx = 1\n\n# %%\ny = 2\n")
    stale = replace(script.cells[0], source="x = 100")

    assert render_percent(replace(script, cells=(stale, script.cells[1]))) == "# %%\nx = 100\n\n# %%\ny = 2\n"


def test_raw_spanning_several_cells_is_not_reused() -> None:
    cell = Cell("code", "x = 1", raw="# %%\nx = 1\n# %%\ny = 2\n")

    assert render_percent([cell]) == "# %%\nx = 1\n"


def test_new_cell_after_last_cell_without_final_newline() -> None:
    script = parse_percent("# %%\nx = 1")

    rendered = render_percent(replace(script, cells=(*script.cells, new_code_cell("y = 2"))))

    assert rendered == "# %%\nx = 1\n\n# %%\ny = 2\n"


def test_new_cell_before_unchanged_cell_gets_a_blank_line() -> None:
    script = parse_percent("# %%\ny = 2\n")

    rendered = render_percent(replace(script, cells=(new_code_cell("x = 1"), *script.cells)))

    assert rendered == "# %%\nx = 1\n\n# %%\ny = 2\n"


def test_unchanged_cells_moved_keep_their_text_and_gain_a_line_break() -> None:
    script = parse_percent("# %%\nx = 1\n# %%\ny = 2")

    rendered = render_percent(replace(script, cells=script.cells[::-1]))

    assert rendered == "# %%\ny = 2\n# %%\nx = 1\n"
    assert content(parse_percent(rendered).cells) == [("code", "y = 2", "", ()), ("code", "x = 1", "", ())]


def test_plain_file_with_an_added_cell_keeps_the_first_cell() -> None:
    script = parse_percent("import torch\n")

    rendered = render_percent(replace(script, cells=(*script.cells, new_code_cell("x = 1"))))

    assert rendered == "import torch\n\n# %%\nx = 1\n"
    assert content(parse_percent(rendered).cells) == [("code", "import torch", "", ()), ("code", "x = 1", "", ())]


def test_comment_only_plain_cell_gets_a_marker_once_other_cells_follow() -> None:
    script = parse_percent("# just a comment\n")
    assert content(script.cells) == [("code", "# just a comment", "", ())]

    rendered = render_percent(replace(script, cells=(*script.cells, new_code_cell("x = 1"))))

    assert rendered == "# %%\n# just a comment\n\n# %%\nx = 1\n"
    assert content(parse_percent(rendered).cells) == content((*script.cells, new_code_cell("x = 1")))


def test_markerless_cell_moved_from_the_top_gets_a_marker() -> None:
    script = parse_percent("import torch\n\n# %%\nx = 1\n")

    rendered = render_percent(replace(script, cells=script.cells[::-1]))

    assert rendered == "# %%\nx = 1\n\n# %%\nimport torch\n"


def test_new_cells_in_a_crlf_file_use_crlf() -> None:
    script = parse_percent("# %%\r\nx = 1\r\n")

    rendered = render_percent(replace(script, cells=(*script.cells, Cell("markdown", "a\nb"))))

    assert rendered == "# %%\r\nx = 1\r\n\r\n# %% [markdown]\r\n# a\r\n# b\r\n"


def test_preamble_without_final_newline_is_ended_before_a_new_cell() -> None:
    script = Script(None, "percent", (new_code_cell("x = 1"),), preamble="# header")

    assert render_percent(script) == "# header\n# %%\nx = 1\n"


def test_bom_preamble_stays_first_when_the_first_cell_is_edited() -> None:
    script = parse_percent("\ufeff# %%\nx = 1\n")

    rendered = render_percent(replace(script, cells=(edited(script.cells[0], source="x = 2"),)))

    assert rendered == "\ufeff# %%\nx = 2\n"


@pytest.mark.parametrize(
    "cell",
    [
        Cell("code", "x", title="two\nlines"),
        Cell("code", "x", title="Set x=1"),
        Cell("code", "x", title="[markdown] title"),
        Cell("code", "x", title=" padded "),
        Cell("code", "x", metadata=(("bad key", "1"),)),
    ],
    ids=["newline", "metadata-like", "kind-like", "padded", "bad-key"],
)
def test_marker_line_that_would_not_read_back_raises(cell: Cell) -> None:
    with pytest.raises(ValueError, match="would not read back"):
        render_percent([cell])


def test_unknown_cell_kind_is_rejected() -> None:
    with pytest.raises(ValueError, match="unknown cell kind 'sql'"):
        Cell("sql", "select 1")  # type: ignore[arg-type]


# ---------------------------------------------------------------- writing


def test_write_percent_replaces_the_file_and_keeps_its_mode(tmp_path: Path) -> None:
    path = tmp_path / "script.py"
    path.write_text("# %%\nold\n", encoding="utf-8")
    path.chmod(0o640)

    write_percent(path, [new_code_cell("new")])

    assert path.read_bytes() == b"# %%\nnew\n"
    assert stat.S_IMODE(path.stat().st_mode) == 0o640
    assert sorted(p.name for p in tmp_path.iterdir()) == ["script.py"]


def test_write_percent_creates_a_new_file(tmp_path: Path) -> None:
    path = tmp_path / "fresh.py"

    write_percent(path, Script(None, "percent", (Cell("markdown", "Hi"),)))

    assert path.read_text(encoding="utf-8") == "# %% [markdown]\n# Hi\n"


def test_write_percent_through_a_symlink_writes_the_target(tmp_path: Path) -> None:
    target = tmp_path / "real.py"
    target.write_text("# %%\nold\n", encoding="utf-8")
    link = tmp_path / "link.py"
    link.symlink_to(target)

    write_percent(link, [new_code_cell("new")])

    assert link.is_symlink()
    assert target.read_text(encoding="utf-8") == "# %%\nnew\n"


def test_failed_write_leaves_the_original_and_no_temporary_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "script.py"
    path.write_text("# %%\nold\n", encoding="utf-8")

    def failing_replace(source: object, destination: object) -> None:
        raise OSError(errno.EIO, "simulated failure")

    monkeypatch.setattr(os, "replace", failing_replace)
    with pytest.raises(OSError, match="simulated failure"):
        write_percent(path, [new_code_cell("new")])

    assert path.read_text(encoding="utf-8") == "# %%\nold\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["script.py"]


def test_write_percent_never_replaces_what_is_not_a_regular_file(tmp_path: Path) -> None:
    fifo = tmp_path / "pipe.py"
    os.mkfifo(fifo)
    with pytest.raises(OSError, match="not a regular file"):
        write_percent(fifo, [new_code_cell("x = 1")])
    assert stat.S_ISFIFO(fifo.stat().st_mode)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pipe.py"]


# ---------------------------------------------------------------- sphinx-gallery


def test_sphinx_gallery_example_cells_and_line_numbers() -> None:
    script = read_script(DATA / "sphinx_gallery.py")

    assert script.format == "sphinx"
    assert content(script.cells) == [
        ("markdown", "Gradients in a sphinx gallery\n=============================\n\nShows how gradients flow.", "", ()),
        ("code", "import torch", "", ()),
        ("markdown", "Build a leaf tensor\n-------------------\n\n``requires_grad`` marks it.", "", ()),
        ("code", "x = torch.ones(2, requires_grad=True)\ny = (x * 3).sum()", "", ()),
        ("markdown", "Backward\n~~~~~~~~", "", ()),
        ("code", "y.backward()\nprint(x.grad)", "", ()),
    ]
    assert lines_of(script.cells) == [2, 8, 11, 16, 20, 23]
    assert all(cell.raw is None for cell in script.cells)


def test_sphinx_without_docstring_and_with_docstring_text_on_the_quote_line() -> None:
    no_docstring = parse_sphinx("import torch\n" + "#" * 20 + "\n# Text\nx = 1\n")
    assert content(no_docstring.cells) == [
        ("code", "import torch", "", ()),
        ("markdown", "Text", "", ()),
        ("code", "x = 1", "", ()),
    ]
    assert lines_of(no_docstring.cells) == [1, 3, 4]

    inline = parse_sphinx('# -*- coding: utf-8 -*-\n"""Title\n\nMore."""\n' + "#" * 79 + "\nx = 1\n")
    assert content(inline.cells) == [("markdown", "Title\n\nMore.", "", ()), ("code", "x = 1", "", ())]
    assert lines_of(inline.cells) == [2, 6]


def test_sphinx_needs_twenty_hashes_and_crlf_keeps_line_numbers(tmp_path: Path) -> None:
    nineteen = tmp_path / "nineteen.py"
    nineteen.write_text("x = 1\n" + "#" * 19 + "\n# comment\ny = 2\n", encoding="utf-8")
    assert read_script(nineteen).format == "plain"

    script = parse_sphinx("x = 1\r\n" + "#" * 20 + "\r\n# Note\r\n\r\ny = 2\r\n")
    assert content(script.cells) == [("code", "x = 1", "", ()), ("markdown", "Note", "", ()), ("code", "y = 2", "", ())]
    assert lines_of(script.cells) == [1, 3, 5]


def test_percent_markers_win_over_sphinx_separators(tmp_path: Path) -> None:
    path = tmp_path / "both.py"
    path.write_text("# %%\nx = 1\n" + "#" * 30 + "\n# still code\n", encoding="utf-8")
    script = read_script(path)

    assert script.format == "percent"
    assert content(script.cells) == [("code", "x = 1\n" + "#" * 30 + "\n# still code", "", ())]


# ---------------------------------------------------------------- notebooks


def write_notebook(path: Path) -> None:
    notebook = nbformat.v4.new_notebook()
    notebook.cells = [
        nbformat.v4.new_markdown_cell("# Gradients\nSome *text*."),
        nbformat.v4.new_code_cell("import torch\nx = torch.ones(2)", metadata={"tags": ["setup"]}),
        nbformat.v4.new_raw_cell("raw text"),
        nbformat.v4.new_code_cell("x.sum()"),
    ]
    path.write_text(nbformat.writes(notebook), encoding="utf-8")


def test_ipynb_cells_through_nbformat(tmp_path: Path) -> None:
    path = tmp_path / "grad.ipynb"
    write_notebook(path)

    script = read_script(path)

    assert script.format == "ipynb"
    assert script.path == path
    assert content(script.cells) == [
        ("markdown", "# Gradients\nSome *text*.", "", ()),
        ("code", "import torch\nx = torch.ones(2)", "", (("tags", '["setup"]'),)),
        ("raw", "raw text", "", ()),
        ("code", "x.sum()", "", ()),
    ]
    assert lines_of(script.cells) == [1, 1, 1, 1]
    assert [cell.source for cell in script.code_cells] == ["import torch\nx = torch.ones(2)", "x.sum()"]


def test_ipynb_converts_to_percent_and_back(tmp_path: Path) -> None:
    path = tmp_path / "grad.ipynb"
    write_notebook(path)
    script = read_script(path)

    text = render_percent(script)

    assert text.startswith('# %% [markdown]\n# # Gradients\n# Some *text*.\n\n# %% tags=["setup"]\nimport torch\n')
    assert content(parse_percent(text).cells) == content(script.cells)


def test_ipynb_unknown_cell_type_reads_as_raw() -> None:
    text = json.dumps(
        {
            "nbformat": 4,
            "nbformat_minor": 5,
            "metadata": {},
            "cells": [{"id": "a1", "cell_type": "sql", "source": ["select 1\n", "from t"], "metadata": {}}],
        }
    )

    script = parse_ipynb(text)

    assert content(script.cells) == [("raw", "select 1\nfrom t", "", ())]


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("", "not a valid notebook (Expecting value: line 1 column 1)"),
        ('{"cells": [', "not a valid notebook (Expecting value: line 1 column 12)"),
        ("[1, 2]", "not a valid notebook (the top level is a list, not an object)"),
    ],
)
def test_invalid_notebook_text(text: str, reason: str) -> None:
    with pytest.raises(ScriptError) as caught:
        parse_ipynb(text)

    assert caught.value.reason == reason
    assert str(caught.value) == f"gradrepl: cannot read script text: {reason}"


def test_invalid_notebook_file_names_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    Path("x.ipynb").write_text("", encoding="utf-8")

    with pytest.raises(ScriptError) as caught:
        read_script("x.ipynb")

    assert str(caught.value) == "gradrepl: cannot read 'x.ipynb': not a valid notebook (Expecting value: line 1 column 1)"


def test_json_without_notebook_structure_is_not_a_notebook(tmp_path: Path) -> None:
    path = tmp_path / "data.ipynb"
    path.write_text(json.dumps({"hello": "world"}), encoding="utf-8")

    with pytest.raises(ScriptError) as caught:
        read_script(path)

    assert str(caught.value).startswith(f"gradrepl: cannot read '{path}': not a valid notebook (")
    assert "\n" not in str(caught.value)


# ---------------------------------------------------------------- read errors


def read_error(path: str | Path) -> str:
    with pytest.raises(ScriptError) as caught:
        read_script(path)
    message = str(caught.value)
    assert "\n" not in message
    return message


def test_missing_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)

    assert read_error("missing.py") == "gradrepl: cannot read 'missing.py': no such file"


def test_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    Path("folder.py").mkdir()

    assert read_error("folder.py") == "gradrepl: cannot read 'folder.py': is a directory"


def test_permission_denied(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Tests run as root, which may read any file, so the failing read is simulated.
    monkeypatch.chdir(tmp_path)
    Path("secret.py").write_text("x = 1\n", encoding="utf-8")

    def denied(path: Path) -> int:
        raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(path))

    monkeypatch.setattr("gradrepl.cells.reading._open", denied)

    assert read_error("secret.py") == "gradrepl: cannot read 'secret.py': permission denied"


def test_binary_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    Path("blob.py").write_bytes(b"x = 1\n\x00\x01\x02")

    assert read_error("blob.py") == "gradrepl: cannot read 'blob.py': binary file, not a script"


def test_not_utf8(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    Path("x.py").write_bytes(b"# %%\nname = '\xff'\n")

    assert read_error("x.py") == "gradrepl: cannot read 'x.py': not UTF-8 text (byte 0xff at offset 13)"


def test_latin1_text_reports_first_bad_byte(tmp_path: Path) -> None:
    path = tmp_path / "latin.py"
    path.write_bytes("# café\n".encode("latin-1"))

    assert read_error(path) == f"gradrepl: cannot read '{path}': not UTF-8 text (byte 0xe9 at offset 5)"


@pytest.mark.parametrize(
    ("error", "reason"),
    [
        (FileNotFoundError(errno.ENOENT, "No such file or directory"), "no such file"),
        (IsADirectoryError(errno.EISDIR, "Is a directory"), "is a directory"),
        (PermissionError(errno.EACCES, "Permission denied"), "permission denied"),
        (NotADirectoryError(errno.ENOTDIR, "Not a directory"), "not a directory"),
        (OSError(errno.EIO, "Input/output error"), "input/output error"),
    ],
)
def test_os_error_reasons(error: OSError, reason: str) -> None:
    assert describe_os_error(error) == reason


def test_script_error_is_one_line_even_for_multiline_reasons() -> None:
    error = ScriptError("bad\n  thing\thappened", "a.py")

    assert str(error) == "gradrepl: cannot read 'a.py': bad thing happened"
    assert error.path == "a.py"


def test_plain_and_sphinx_files_are_detected_by_content(tmp_path: Path) -> None:
    plain = tmp_path / "plain.py"
    plain.write_text("x = 1\n", encoding="utf-8")
    sphinx = tmp_path / "gallery.py"
    sphinx.write_text("x = 1\n" + "#" * 40 + "\n# Text\ny = 2\n", encoding="utf-8")

    assert read_script(plain).format == "plain"
    assert read_script(sphinx).format == "sphinx"
    assert read_script(sphinx).path == sphinx
