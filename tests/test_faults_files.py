"""Script files and the command line (issue 12 items 6, 15, 16, 18, 19, 21): a malformed
notebook, a UTF-16 file or a document that is not a script is one line and exit 2; empty
cells are not run, as Jupyter does not run them; options and names go in any order; and
the "Download as Python" export of a notebook reads as its cells. Kernel-free: the command
lines here fail before a kernel starts, and replay and the app run on sessions that fail the
test if a cell is sent to them. /dev/null (item 19) is in tests/test_bad_files.py."""

from __future__ import annotations

import asyncio
import codecs
import json
from functools import partial
from pathlib import Path
from typing import Any

import pytest

from gradrepl.cells import ScriptError, parse_ipynb, read_script
from gradrepl.client.events import CellFinished, CellOutcome
from gradrepl.headless.replay import CellRecord, TextWriter, replay
from support.command_line import gradrepl as run_gradrepl
from support.recorded_app import kernel_free, recorded_app, settled

gradrepl = partial(run_gradrepl, timeout=60)

pytestmark = [pytest.mark.faults]


def notebook(cells: Any, **top: Any) -> str:
    return json.dumps({"nbformat": 4, "nbformat_minor": 5, "metadata": {}, "cells": cells, **top})


def code(source: Any, **fields: Any) -> dict[str, Any]:
    return {"cell_type": "code", "source": source, "metadata": {}, "outputs": [], "execution_count": None, **fields}


MARKDOWN = {"cell_type": "markdown", "source": "# Title", "metadata": {}}

# ---------------------------------------------------------------- item 6: malformed notebooks

MALFORMED = [
    (notebook([MARKDOWN, code(123)]), 'cell 2: "source" is a number, not text or a list of lines'),
    (notebook([code(None)]), 'cell 1: "source" is null, not text or a list of lines'),
    (notebook([code(["x = 1\n", 2])]), 'cell 1: "source" holds a number, not only lines of text'),
    (notebook([{"cell_type": "code", "metadata": {}, "outputs": []}]), 'cell 1 has no "source"'),
    (notebook({}), '"cells" is an object, not a list'),
    (notebook("x = 1"), '"cells" is text, not a list'),
    (json.dumps({"nbformat": 4, "nbformat_minor": 5, "metadata": {}}), 'no "cells" list'),
    (notebook(["x = 1"]), "cell 1 is text, not an object"),
    (notebook([code("x = 1"), None]), "cell 2 is null, not an object"),
    (notebook([{"source": "x = 1"}]), 'cell 1 has no "cell_type"'),
    (notebook([code("x = 1", cell_type=3)]), 'cell 1: "cell_type" is a number, not text'),
    (notebook([code("x = 1", outputs=5)]), 'cell 1: "outputs" is a number, not a list'),
    (notebook([code("x = 1", outputs=[7])]), "cell 1: output 1 is a number, not an object"),
    (notebook([code("x = 1", outputs=[{"output_type": "stream", "name": "stdout", "text": 5}])]),
     'cell 1: output 1: "text" is a number, not text or a list of lines'),
    (notebook([code("x = 1", metadata=5)]), 'cell 1: "metadata" is a number, not an object'),
    (notebook([{**MARKDOWN, "attachments": []}]), 'cell 1: "attachments" is a list, not an object'),
    (notebook([], metadata=[]), '"metadata" is a list, not an object'),
    ("[1, 2]", "the top level is a list, not an object"),
    (json.dumps({"cells": [code("x = 1")]}), 'no "nbformat" version number'),
    (notebook([], nbformat="4"), '"nbformat" is text, not a version number'),
    (json.dumps({"nbformat": 3, "nbformat_minor": 0, "metadata": {}, "worksheets": [{"cells": [
        {"cell_type": "code", "input": 123, "outputs": [], "language": "python"}]}]}),
     'cell 1: "input" is a number, not text or a list of lines'),
    (json.dumps({"nbformat": 3, "nbformat_minor": 0, "metadata": {}, "worksheets": 5}),
     '"worksheets" is a number, not a list'),
    ("[" * 100_000, "nested too deeply"),
    ('{"nbformat": ' + "4" * 5000 + "}", "a number with more than 4300 digits"),
]


@pytest.mark.parametrize("text, reason", MALFORMED, ids=[reason for _, reason in MALFORMED])
def test_a_malformed_notebook_is_one_line_naming_what_is_wrong(text: str, reason: str) -> None:
    with pytest.raises(ScriptError) as raised:
        parse_ipynb(text)
    assert str(raised.value) == f"gradrepl: cannot read script text: not a valid notebook ({reason})"


@pytest.mark.parametrize("command", ["replay", "graph", None])
@pytest.mark.parametrize("source, what", [(123, "a number"), (None, "null")])
def test_a_notebook_cell_whose_source_is_not_text_is_exit_2_in_replay_graph_and_the_app(
        tmp_path: Path, command: str | None, source: Any, what: str) -> None:
    (tmp_path / "bad.ipynb").write_text(notebook([MARKDOWN, code(source)]))
    done = gradrepl(*([command] if command else []), "bad.ipynb", cwd=tmp_path)
    assert (done.returncode, done.stdout) == (2, "")
    assert done.stderr == ("gradrepl: cannot read 'bad.ipynb': not a valid notebook "
                           f'(cell 2: "source" is {what}, not text or a list of lines)\n')


def test_well_formed_notebooks_still_read_with_lists_of_lines_and_without_optional_fields() -> None:
    text = notebook([
        {"cell_type": "markdown", "source": ["# A\n", "b"], "metadata": {}, "attachments": {}},
        {"cell_type": "code", "source": ["x = 1\n", "y = 2"], "metadata": {"tags": ["a"]}, "execution_count": 3,
         "outputs": [{"output_type": "stream", "name": "stdout", "text": ["1\n", "2\n"]},
                     {"output_type": "execute_result", "execution_count": 3, "metadata": {},
                      "data": {"text/plain": ["1"]}}]},
        {"cell_type": "raw", "source": "", "metadata": {}},
        {"cell_type": "future", "source": "?", "metadata": {}},
    ])
    assert [(c.kind, c.source) for c in parse_ipynb(text).cells] == [
        ("markdown", "# A\nb"), ("code", "x = 1\ny = 2"), ("raw", ""), ("raw", "?")]


# ---------------------------------------------------------------- item 15: UTF-16, documents


@pytest.mark.parametrize("encoding, name", [("utf-16", "UTF-16"), ("utf-16-be", "UTF-16"),
                                            ("utf-32", "UTF-32"), ("utf-32-be", "UTF-32")])
def test_a_utf16_or_utf32_file_is_said_to_be_so(tmp_path: Path, encoding: str, name: str) -> None:
    path = tmp_path / "wide.py"
    bom = {"utf-16-be": codecs.BOM_UTF16_BE, "utf-32-be": codecs.BOM_UTF32_BE}.get(encoding, b"")
    path.write_bytes(bom + "# %%\nx = 1\n".encode(encoding))
    with pytest.raises(ScriptError) as raised:
        read_script(path)
    assert raised.value.reason == (f"{name} text, not UTF-8 (gradrepl reads UTF-8 scripts: convert it, "
                                   f"e.g. iconv -f {name} -t UTF-8)")


def test_a_utf16_file_is_one_line_and_exit_2_on_the_command_line(tmp_path: Path) -> None:
    (tmp_path / "wide.py").write_bytes("x = 1\n".encode("utf-16"))
    done = gradrepl("replay", "wide.py", cwd=tmp_path)
    assert (done.returncode, done.stdout) == (2, "")
    assert done.stderr.startswith("gradrepl: cannot read 'wide.py': UTF-16 text, not UTF-8") and done.stderr.count("\n") == 1


@pytest.mark.parametrize("name", ["notes.md", "README.rst", "notes.txt", "NOTES.MD", "data.json", "config.yaml"])
def test_documents_are_not_scripts(tmp_path: Path, name: str) -> None:
    (tmp_path / name).write_text("# A title\n\nSome prose, not Python.\n")
    suffix = Path(name).suffix
    expected = (f"gradrepl: cannot read '{name}': not a script or notebook (a {suffix} file; "
                "gradrepl runs Python scripts and .ipynb notebooks)\n")
    for command in ("replay", "graph", None):
        done = gradrepl(*([command] if command else []), name, cwd=tmp_path)
        assert (command, done.returncode, done.stdout, done.stderr) == (command, 2, "", expected)


def test_the_app_does_not_start_a_new_session_saving_to_a_document(tmp_path: Path) -> None:
    done = gradrepl("todo.md", cwd=tmp_path)
    assert (done.returncode, done.stdout) == (2, "")
    assert done.stderr.startswith("gradrepl: cannot read 'todo.md': not a script or notebook")
    assert not (tmp_path / "todo.md").exists()


@pytest.mark.parametrize("name", ["lesson.py", "lesson", "lesson.PY", "lesson.ipy", "lesson.pyw"])
def test_scripts_with_or_without_a_python_suffix_are_read(tmp_path: Path, name: str) -> None:
    (tmp_path / name).write_text("# %%\nx = 1\n")
    assert [c.source for c in read_script(tmp_path / name).cells] == ["x = 1"]


# ---------------------------------------------------------------- item 16: empty cells


class SendsNoBlankCell:
    """A replay session that fails the test if a blank cell is sent; others finish at once."""

    stuck = False  # no cell is left running

    def __init__(self) -> None:
        self.sent: list[str] = []

    async def start(self) -> None:
        pass

    async def run(self, code: str, **kwargs: Any) -> CellOutcome:
        assert code.strip(), f"replay sent a blank cell: {code!r}"
        self.sent.append(code)
        return CellOutcome([CellFinished("ok", len(self.sent))])

    async def shutdown(self) -> None:
        pass


EMPTY_CELLS = "# %%\n\n# %%\nx = 1\n\n# %%\n   \n\n# %%\ny = 2\n"


def test_replay_does_not_run_empty_cells_and_gives_them_no_count(tmp_path: Path) -> None:
    path = tmp_path / "gaps.py"
    path.write_text(EMPTY_CELLS)
    session = SendsNoBlankCell()
    records: list[CellRecord] = []
    assert asyncio.run(replay(read_script(path), records.append, session=session)) == 0  # type: ignore[arg-type]
    assert session.sent == ["x = 1", "y = 2"]
    assert [(r.cell, r.status, r.execution_count, r.reason) for r in records] == [
        (1, "skipped", None, "empty cell"), (2, "ok", 1, ""), (3, "skipped", None, "empty cell"), (4, "ok", 2, "")]
    assert records[0].to_json()["execution_count"] is None
    out = tmp_path / "out.txt"
    with out.open("w") as stream:
        for record in records:
            TextWriter(stream, "gaps.py", color=False)(record)
    text = out.read_text()
    assert "In [0]" not in text
    assert text.startswith("In [ ]:  # gaps.py, line 2\n")
    assert text.count("[not run (skipped: empty cell)]") == 2


def test_graph_does_not_run_empty_cells(tmp_path: Path) -> None:
    from gradrepl.headless.graph import GraphRequest, show_graphs

    path = tmp_path / "gaps.py"
    path.write_text(EMPTY_CELLS)
    session = SendsNoBlankCell()
    out, err = tmp_path / "out.txt", tmp_path / "err.txt"
    with out.open("w") as out_stream, err.open("w") as err_stream:
        code = asyncio.run(show_graphs(read_script(path), GraphRequest((), None), session,  # type: ignore[arg-type]
                                       out=out_stream, err=err_stream))
    assert (code, session.sent) == (0, ["x = 1", "y = 2"])
    assert err.read_text() == "gradrepl: no named tensor has an autograd graph after cell 4\n"


async def test_the_app_resuming_a_script_does_not_run_its_empty_cells(tmp_path: Path) -> None:
    path = tmp_path / "gaps.py"
    path.write_text("# %%\n\n# %%\n   \n")
    app = recorded_app(None, script=path)  # an empty recording: any cell sent would fail
    with kernel_free(app):
        async with app.run_test() as pilot:
            await settled(pilot)
            assert [(c.state, c.execution_count) for c in app.worksheet.cells] == [("ok", None), ("ok", None)]
            prompts = [str(view.query_one(".prompt").render()) for view in app.transcript.query("CellView")]
            assert prompts == ["In [ ]:  line 2 of the script", "In [ ]:  line 4 of the script"]


# ---------------------------------------------------------------- item 18: any order


@pytest.mark.parametrize("args", [
    ["missing.py", "--json", "y"],
    ["--json", "missing.py", "y", "--cell", "1", "z"],
    ["missing.py", "y", "--memory-limit", "1G", "z"],
])
def test_graph_takes_options_and_names_in_any_order(tmp_path: Path, args: list[str]) -> None:
    done = gradrepl("graph", *args, cwd=tmp_path)
    assert (done.returncode, done.stdout, done.stderr) == (2, "", "gradrepl: cannot read 'missing.py': no such file\n")


def test_replay_takes_options_before_or_after_the_script(tmp_path: Path) -> None:
    for args in (["missing.py", "--json", "--keep-going"], ["--json", "missing.py", "--cell-timeout", "5"]):
        done = gradrepl("replay", *args, cwd=tmp_path)
        assert (done.returncode, done.stderr) == (2, "gradrepl: cannot read 'missing.py': no such file\n")


# ---------------------------------------------------------------- item 21: # In[3]: markers

# What `jupyter nbconvert --to python` (Jupyter's "Download as Python") writes for a notebook of a
# markdown cell, two run code cells, a markdown cell, a cell not run (with a magic), an empty cell
# and a code cell ending in a comment, byte for byte.
EXPORTED = (
    "#!/usr/bin/env python\n# coding: utf-8\n\n# # Title\n# \n# Some *text*.\n\n"
    "# In[1]:\n\n\nimport math\nx = 2\n\n\n"
    "# In[3]:\n\n\ndef f(a):\n    return a\n\n\ny = f(x)\n\n\n"
    "# More prose\n\n# Second paragraph cell\n\n"
    "# In[ ]:\n\n\nget_ipython().run_line_magic('time', 'y')\ny * 2\n\n\n"
    "# In[ ]:\n\n\n\n\n"
    "# In[12]:\n\n\nprint(y)\n# the end\n\n"
)


def test_an_exported_notebook_reads_as_its_cells(tmp_path: Path) -> None:
    path = tmp_path / "exported.py"
    path.write_text(EXPORTED)
    script = read_script(path)
    assert script.format == "nbconvert"
    assert [(c.kind, c.source, c.line) for c in script.cells] == [
        ("markdown", "# Title\n\nSome *text*.", 4),
        ("code", "import math\nx = 2", 11),
        ("code", "def f(a):\n    return a\n\n\ny = f(x)", 18),
        ("markdown", "More prose", 25),
        ("markdown", "Second paragraph cell", 27),
        ("code", "get_ipython().run_line_magic('time', 'y')\ny * 2", 32),
        ("code", "", 37),
        ("code", "print(y)\n# the end", 44),
    ]


def test_in_markers_without_the_header_and_code_before_the_first_marker(tmp_path: Path) -> None:
    path = tmp_path / "edited.py"
    path.write_text("import os\n\n# In[2]:\nx = 1\n# In[ ]:\ny = 2\n")
    assert [(c.kind, c.source, c.line) for c in read_script(path).cells] == [
        ("code", "import os", 1), ("code", "x = 1", 4), ("code", "y = 2", 6)]


def test_in_markers_inside_a_percent_script_are_only_comments(tmp_path: Path) -> None:
    path = tmp_path / "percent.py"
    path.write_text("# %%\nx = 1\n# In[2]:\ny = 2\n")
    script = read_script(path)
    assert script.format == "percent" and [c.source for c in script.cells] == ["x = 1\n# In[2]:\ny = 2"]


def test_prose_after_an_empty_cell_and_a_cell_of_only_a_comment(tmp_path: Path) -> None:
    """nbconvert's layout: markdown follows an empty code cell after five blank lines; a code
    cell holding only a comment has two blank lines before it and stays a code cell."""
    path = tmp_path / "exported.py"
    path.write_text("#!/usr/bin/env python\n# coding: utf-8\n\n# In[1]:\n\n\nx=1\n\n\n# More prose\n\n# Second\n\n"
                    "# In[ ]:\n\n\n\n\n\n# after empty\n\n# In[ ]:\n\n\n# only a comment\n\n\n# In[ ]:\n\n\ny\n")
    assert [(c.kind, c.source, c.line) for c in read_script(path).cells] == [
        ("code", "x=1", 7), ("markdown", "More prose", 10), ("markdown", "Second", 12),
        ("code", "", 15), ("markdown", "after empty", 20),
        ("code", "# only a comment", 25), ("code", "y", 31),
    ]


@pytest.mark.parametrize("text", [
    '"""A docstring."""\nx = ' + "+" * 100_000 + "1\n" + "#" * 30 + "\n",  # sphinx: the docstring is parsed
    "import os\nx = " + "-" * 100_000 + "1\n# %%\ny = 2\n",  # percent: the text before the first marker
])
def test_a_script_nested_too_deeply_for_the_parser_is_still_read(tmp_path: Path, text: str) -> None:
    """Python's parser gives up on it with MemoryError: the cell is sent as it is and fails
    in the kernel, as `python script.py` fails."""
    path = tmp_path / "deep.py"
    path.write_text(text)
    assert any("1" in cell.source for cell in read_script(path).code_cells)
