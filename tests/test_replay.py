"""`gradrepl replay`: fidelity with Jupyter, the transcript, exit codes and bad input."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from conftest import DATA, EXAMPLES  # paths, not fixtures
from gradrepl.headless.replay import short_traceback
from gradrepl.protocol import ErrorFrame
from support.command_line import gradrepl, reader_goes_away

ADDRESS = re.compile(r"0x[0-9a-f]+")
RECORDED = sorted(DATA.glob("*.jupyter.json"))


def json_records(stdout: str) -> list[dict]:
    return [json.loads(line) for line in stdout.splitlines()]


def without_addresses(text: str | None) -> str | None:
    return None if text is None else ADDRESS.sub("0x…", text)


def test_every_example_has_a_recorded_jupyter_run() -> None:
    stems = {p.name.removesuffix(".jupyter.json") for p in RECORDED}
    assert stems == {p.stem for p in EXAMPLES.glob("*.py")}
    assert "seed_autograd" in stems


@pytest.mark.kernel
@pytest.mark.parametrize("recording", RECORDED, ids=lambda p: p.name.removesuffix(".jupyter.json"))
def test_replay_matches_jupyter_cell_for_cell(recording: Path) -> None:
    script = EXAMPLES / (recording.name.removesuffix(".jupyter.json") + ".py")
    expected = json.loads(recording.read_text())
    run = gradrepl("replay", "--json", "--keep-going", str(script))
    records = json_records(run.stdout)
    assert len(records) == len(expected), run.stderr
    for got, want in zip(records, expected, strict=True):
        assert got["cell"] == want["cell"]
        assert without_addresses(got["stdout"]) == without_addresses(want["stdout"]), f"cell {want['cell']}"
        assert got["stderr"] == want["stderr"], f"cell {want['cell']}"
        assert without_addresses(got["result"]) == without_addresses(want["result"]), f"cell {want['cell']}"
        assert (got["error"] or {}).get("ename") == want["ename"], f"cell {want['cell']}"
        assert got["status"] == ("error" if want["ename"] else "ok")
    assert run.returncode == (1 if any(w["ename"] for w in expected) else 0)
    assert "Traceback" not in run.stderr


@pytest.mark.kernel
def test_json_lines_carry_every_field_of_a_cell() -> None:
    run = gradrepl("replay", "--json", str(EXAMPLES / "seed_autograd.py"))
    assert run.returncode == 0, run.stderr
    records = json_records(run.stdout)
    assert [r["cell"] for r in records] == list(range(1, 13))
    fields = {"cell", "line", "source", "status", "stdout", "stderr", "result", "error", "tensors", "backward"}
    assert all(fields <= set(r) for r in records)
    assert [r["line"] for r in records[:3]] == [5, 10, 16]
    assert records[0]["source"].startswith("import torch")
    fourth = {t["name"]: t for t in records[3]["tensors"]}
    assert fourth["varibale"]["grad"]["preview"] == [[0.5, 1.0], [1.5, 2.0]]
    assert fourth["v_out"]["grad_fn"] == "MeanBackward0"
    assert [len(r["backward"]) for r in records] == [0, 0, 0, 1, 0, 0, 0, 0, 1, 0, 0, 1]
    event = records[3]["backward"][0]
    assert event["kind"] == "backward" and event["cell"] == 4
    assert event["roots"][0]["name"] == "v_out" and event["roots"][0]["value"]["preview"] == 7.5
    assert event["retain_graph"] is True and event["gradient"] is None
    assert event["nodes"] == ["MeanBackward0", "PowBackward0", "AccumulateGrad"]
    [leaf] = event["leaves"]
    assert (leaf["name"], leaf["before"], leaf["accumulated"]) == ("varibale", None, False)
    assert leaf["after"]["preview"] == [[0.5, 1.0], [1.5, 2.0]]
    vjp = records[8]["backward"][0]
    assert [pytest.approx(row) for row in vjp["gradient"][0]["preview"]] == [[2.0, 0.2], [0.01, 0.001]]
    assert vjp["leaves"][0]["after"]["preview"] == pytest.approx([4.0, 0.4, 0.02, 0.002])


@pytest.fixture
def failing_script(tmp_path: Path) -> Path:
    script = tmp_path / "failing.py"
    script.write_text(
        "# %% [markdown]\n# A script whose second cell fails.\n\n"
        "# %%\nfirst = 1\nprint('one')\n\n"
        "# %%\ndef helper():\n    return 1 / 0\n\nhelper()\n\n"
        "# %%\nprint('three')\n\n"
        "# %%\nbroken = (\n"
    )
    return script


@pytest.mark.kernel
def test_text_transcript_stops_at_the_first_failure_with_file_lines(failing_script: Path) -> None:
    run = gradrepl("replay", str(failing_script))
    assert run.returncode == 1
    out = run.stdout
    assert "In [1]:  # failing.py, line 5" in out
    assert "one\n" in out
    assert 'File "failing.py", line 12, in <module>\n    helper()' in out
    assert 'File "failing.py", line 10, in helper\n    return 1 / 0' in out
    assert "ZeroDivisionError: division by zero" in out
    assert "three" not in out
    assert run.stderr == ""


@pytest.mark.kernel
def test_keep_going_runs_the_rest_and_a_syntax_error_is_that_cells_error(failing_script: Path) -> None:
    run = gradrepl("replay", "--json", "--keep-going", str(failing_script))
    assert run.returncode == 1
    records = json_records(run.stdout)
    assert [r["status"] for r in records] == ["ok", "error", "ok", "error"]
    assert records[2]["stdout"] == "three\n"
    syntax = records[3]["error"]
    assert syntax["ename"] == "SyntaxError"
    assert syntax["line"] == 18


@pytest.mark.kernel
def test_notebook_and_sphinx_scripts_replay(tmp_path: Path) -> None:
    import nbformat

    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_markdown_cell("# title"), nbformat.v4.new_code_cell("x = 20\nx + 1")]
    (tmp_path / "n.ipynb").write_text(nbformat.writes(nb))
    (tmp_path / "g.py").write_text('"""\nTitle\n=====\n"""\nx = 1\n\n' + "#" * 30 + "\n# Prose\n\nx + 1\n")
    notebook = json_records(gradrepl("replay", "--json", str(tmp_path / "n.ipynb")).stdout)
    gallery = json_records(gradrepl("replay", "--json", str(tmp_path / "g.py")).stdout)
    assert [r["result"] for r in notebook] == ["21"]
    assert [r["result"] for r in gallery] == [None, "2"]
    assert [r["line"] for r in gallery] == [5, 10]


@pytest.mark.kernel
def test_script_runs_in_its_own_folder(tmp_path: Path) -> None:
    (tmp_path / "data.txt").write_text("beside the script")
    (tmp_path / "s.py").write_text("# %%\nopen('data.txt').read()\n")
    run = gradrepl("replay", "--json", "s.py", cwd=tmp_path)
    assert json_records(run.stdout)[0]["result"] == "'beside the script'"


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda d: d / "missing.py", "no such file"),
        (lambda d: d, "is a directory"),
        (lambda d: _write(d / "bin.py", b"\x00\x01\x02"), "binary file"),
        (lambda d: _write(d / "latin.py", "x = 'caf\xe9'\n".encode("latin-1")), "not UTF-8"),
        (lambda d: _write(d / "bad.ipynb", b"{not json"), "not a valid notebook"),
    ],
    ids=["missing", "directory", "binary", "non-utf8", "bad-ipynb"],
)
def test_bad_input_is_one_line_and_exit_2(tmp_path: Path, make, message: str) -> None:
    target = make(tmp_path)
    run = gradrepl("replay", str(target))
    assert run.returncode == 2
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0] and lines[0].startswith("gradrepl: ")
    assert run.stdout == ""


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def test_a_script_without_code_cells_says_so(tmp_path: Path) -> None:
    script = tmp_path / "prose.py"
    script.write_text("# %% [markdown]\n# Only words here.\n")
    run = gradrepl("replay", str(script))
    assert run.returncode == 0
    assert run.stderr.strip() == f"gradrepl: '{script}' has no code cells: nothing to run"


def test_bad_options_are_usage_errors() -> None:
    run = gradrepl("replay", "--cell-timeout", "soon", "x.py")
    assert run.returncode == 2
    assert "not a number of seconds: 'soon'" in run.stderr


def test_short_traceback_keeps_script_frames_and_the_innermost() -> None:
    frames = (
        ErrorFrame("/ipython/interactiveshell.py", 3600, "run_code", "exec(code)"),
        ErrorFrame("/tmp/cell.py", 2, "<module>", "y.backward()", "s.py", 41),
        ErrorFrame("/torch/_tensor.py", 600, "backward", "torch.autograd.backward()"),
        ErrorFrame("/torch/autograd/__init__.py", 300, "backward", "_engine_run_backward()"),
        ErrorFrame("/torch/autograd/graph.py", 800, "_engine_run_backward", "run_backward()"),
    )
    assert short_traceback(frames, "s.py") == [
        "Traceback (most recent call last):",
        '  File "s.py", line 41, in <module>',
        "    y.backward()",
        "  ... 2 frames in library code",
        '  File "/torch/autograd/graph.py", line 800, in _engine_run_backward',
        "    run_backward()",
    ]


def test_source_is_highlighted_only_for_a_terminal() -> None:
    import io

    from gradrepl.headless.replay import CellRecord, TextWriter

    record = CellRecord(1, 3, "x = 1  # note", "ok", 1, "", "", "1", None, [], [])
    plain, colored = io.StringIO(), io.StringIO()
    TextWriter(plain, "s.py", color=False)(record)
    TextWriter(colored, "s.py", color=True)(record)
    assert plain.getvalue() == "In [1]:  # s.py, line 3\nx = 1  # note\n\nOut[1]: 1\n\n"
    assert "\x1b[" in colored.getvalue()
    assert re.sub(r"\x1b\[[0-9;]*m", "", colored.getvalue()) == plain.getvalue()


@pytest.mark.kernel
def test_no_backward_log_turns_tracing_off() -> None:
    run = gradrepl("replay", "--json", "--no-backward-log", str(EXAMPLES / "seed_autograd.py"))
    assert run.returncode == 0, run.stderr
    records = json_records(run.stdout)
    assert all(r["backward"] == [] for r in records)
    fourth = {t["name"]: t for t in records[3]["tensors"]}
    assert fourth["varibale"]["grad"]["preview"] == [[0.5, 1.0], [1.5, 2.0]]


@pytest.mark.kernel
def test_the_transcript_has_a_line_per_backward_call() -> None:
    run = gradrepl("replay", str(EXAMPLES / "seed_autograd.py"))
    lines = [line for line in run.stdout.splitlines() if line.startswith("[backward]")]
    assert lines == [
        "[backward] v_out.backward(retain_graph=True) via MeanBackward0 → PowBackward0 → AccumulateGrad: "
        "varibale.grad fresh [[0.5, 1], [1.5, 2]]",
        "[backward] z.backward(gradient=[[2, 0.2], [0.01, 0.001]], retain_graph=True) via ViewBackward0 → "
        "MulBackward0 → AccumulateGrad: x.grad fresh [4, 0.4, 0.02, 0.002]",
        "[backward] y.backward() via MulBackward0 → AccumulateGrad: x.grad fresh [2]",
    ]


@pytest.mark.kernel
def test_files_left_open_by_the_script_are_written_out_when_the_kernel_ends(tmp_path: Path) -> None:
    """The kernel skips interpreter teardown at exit; what a plain `python` run would still
    write (a file never closed, in a name or in a module's globals) must reach the disk."""
    (tmp_path / "keeper.py").write_text(f"LOG = open({str(tmp_path / 'module.txt')!r}, 'w')\nLOG.write('from a module')\n")
    script = tmp_path / "unclosed.py"
    script.write_text(
        "# %%\n"
        f"f = open({str(tmp_path / 'name.txt')!r}, 'w')\n"
        "f.write('from a name')\n\n"
        "# %%\n"
        "import keeper\n",
        encoding="utf-8",
    )
    run = gradrepl("replay", str(script))
    assert run.returncode == 0, run.stderr
    assert (tmp_path / "name.txt").read_text() == "from a name"
    assert (tmp_path / "module.txt").read_text() == "from a module"


@pytest.mark.kernel
def test_graph_prints_a_tensors_autograd_graph_after_a_chosen_cell() -> None:
    done = gradrepl("graph", str(EXAMPLES / "seed_autograd.py"), "z", "--cell", "8")
    assert done.returncode == 0, done.stderr
    assert done.stdout == (
        "z (2x2 float32): 3 nodes\n"
        "#0 ViewBackward0 → z\n"
        "#1 MulBackward0 → y  [1 input without grad]\n"
        "└─ saved other: scalar int64\n"
        "#2 AccumulateGrad → x (leaf, 4 float32)\n"
    )


@pytest.mark.kernel
def test_graph_defaults_to_every_tensor_with_a_grad_fn_and_speaks_json(tmp_path: Path) -> None:
    script = tmp_path / "s.py"
    script.write_text("# %%\nimport torch\nx = torch.ones(2, requires_grad=True)\na = x * 2\nb = a.sum()\nc = torch.zeros(1)\n")
    done = gradrepl("graph", str(script), "--json")
    assert done.returncode == 0, done.stderr
    graphs = json_records(done.stdout)
    assert [g["root"] for g in graphs] == ["a", "b"]
    assert [n["name"] for n in graphs[1]["nodes"]] == ["SumBackward0", "MulBackward0", "AccumulateGrad"]
    assert graphs[1]["cell"] == 1


@pytest.mark.kernel
def test_graph_names_what_it_cannot_show_in_one_line(tmp_path: Path) -> None:
    script = tmp_path / "s.py"
    script.write_text("# %%\nimport torch\nx = torch.ones(2, requires_grad=True)\ny = x * 2\n# %%\n1 / 0\n")
    done = gradrepl("graph", str(script), "y", "nope")
    assert done.returncode == 1
    assert done.stderr.splitlines() == [
        "gradrepl: cell 2 (line 6) failed: ZeroDivisionError: division by zero; the graphs are of the state it left",
        "gradrepl: no tensor named 'nope' after cell 2 (named tensors: x, y)",
    ]
    assert done.stdout.startswith("y (2 float32): 2 nodes\n")
    too_far = gradrepl("graph", str(script), "--cell", "3")
    assert too_far.returncode == 2 and too_far.stderr == f"gradrepl: --cell 3: '{script}' has 2 code cells\n"


@pytest.mark.kernel
def test_the_seeds_z_backward_v_is_shown_as_v_transposed_times_j() -> None:
    done = gradrepl("replay", str(EXAMPLES / "seed_autograd.py"))
    assert done.returncode == 0, done.stderr
    assert (
        "[backward] z.backward(gradient=[[2, 0.2], [0.01, 0.001]], retain_graph=True) via ViewBackward0 → "
        "MulBackward0 → AccumulateGrad: x.grad fresh [4, 0.4, 0.02, 0.002]\n"
        "[vjp] x.grad += vᵀ·J = [4, 0.4, 0.02, 0.002] ✓  (v = [2, 0.2, 0.01, 0.001], "
        "J 4x4 = [[2, 0, 0, 0], [0, 2, 0, 0], [0, 0, 2, 0], [0, 0, 0, 2]])\n"
    ) in done.stdout
    records = json_records(gradrepl("replay", "--json", str(EXAMPLES / "seed_autograd.py")).stdout)
    (event,) = next(r for r in records if "z.backward" in r["source"])["backward"]
    assert event["jacobian"]["leaves"][0]["matches"] is True


@pytest.mark.kernel
@pytest.mark.parametrize("command", [["replay", "--json"], ["graph"]])
def test_a_reader_that_goes_away_ends_the_run_quietly(command: list[str]) -> None:
    """`gradrepl replay ... | head -1`: exit 141, as a command stopped by the closed pipe, and no traceback."""
    status, err = reader_goes_away(*command, str(EXAMPLES / "seed_autograd.py"))
    assert (status, err) == (141, "")


@pytest.mark.kernel
def test_the_tracers_own_frames_stay_out_of_tracebacks(tmp_path: Path) -> None:
    script = tmp_path / "twice.py"
    script.write_text("# %%\nimport torch\ny = (torch.ones(2, requires_grad=True) * 3).sum()\ny.backward()\ny.backward()\n",
                      encoding="utf-8")
    run = gradrepl("replay", "--json", str(script))
    (record,) = json_records(run.stdout)
    assert record["error"]["ename"] == "RuntimeError"
    assert not any("inkernel" in line for line in record["error"]["traceback"])
    assert "  ... 2 frames in library code" in record["error"]["traceback"]  # torch's own, not the tracer's
