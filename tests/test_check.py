"""`gradrepl check` through real kernels: golden files written and compared, notebooks that
Jupyter itself executed, nbval's markers, bad input, CI forms, and the examples folder."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from support.command_line import gradrepl, reader_goes_away, records, script

pytestmark = pytest.mark.kernel

ROOT = Path(__file__).resolve().parent.parent

LESSON = (
    "import torch\nx = torch.tensor([1.0, 2.0], requires_grad=True)\ny = (x * x).sum()\ny.backward()\nprint(x.grad)",
    "y2 = (x * x).sum()\ny2.backward()\nx.grad",
)


def notebook(path: Path, *cells: str, markdown: str = "# A lesson") -> Path:
    book = nbformat.v4.new_notebook()
    book.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    book.cells = [nbformat.v4.new_markdown_cell(markdown), *(nbformat.v4.new_code_cell(c) for c in cells)]
    nbformat.write(book, path)
    return path


def executed_by_jupyter(path: Path) -> None:
    subprocess.run([sys.executable, "-m", "jupyter", "nbconvert", "--to", "notebook", "--execute", "--inplace",
                    "--allow-errors", str(path)], check=True, capture_output=True, timeout=300)


def test_a_script_checks_against_the_golden_file_update_wrote(tmp_path: Path) -> None:
    path = script(tmp_path, *LESSON)
    assert gradrepl("check", str(path)).returncode == 2  # nothing recorded yet
    done = gradrepl("check", "--update", str(path))
    assert done.returncode == 0, done.stderr
    golden = tmp_path / "cells.expected.jsonl"
    assert done.stdout.splitlines()[-1] == "1 of 1 file updated"
    lines = records(golden.read_text())
    assert [line["stdout"] for line in lines] == ["tensor([2., 4.])\n", ""]
    assert lines[1]["result"] == "tensor([4., 8.])" and "tensors" not in lines[0]
    done = gradrepl("check", str(path))
    assert (done.returncode, done.stdout) == (0, "2 passed, 0 failed in 1 file\n")


def test_a_last_digit_change_passes_and_a_changed_grad_fails_with_its_diff(tmp_path: Path) -> None:
    path = script(tmp_path, "import torch\nprint(torch.tensor([0.12345678, 2.0]) * 1)", *LESSON[:1])
    assert gradrepl("check", "--update", str(path)).returncode == 0
    golden = tmp_path / "cells.expected.jsonl"
    lines = records(golden.read_text())
    assert lines[0]["stdout"] == "tensor([0.1235, 2.0000])\n"
    lines[0]["stdout"] = "tensor([0.1234, 2.0000])\n"  # what another torch might print for the same float32
    golden.write_text("".join(json.dumps(line) + "\n" for line in lines))
    assert gradrepl("check", str(path)).returncode == 0
    lines[1]["stdout"] = "tensor([2., 5.])\n"  # the grad itself is another
    golden.write_text("".join(json.dumps(line) + "\n" for line in lines))
    done = gradrepl("check", str(path), cwd=tmp_path)
    assert done.returncode == 1
    assert done.stdout.splitlines() == [
        "cells.py:6 cell 2: output differs",
        "    stdout:",
        "    - tensor([2., 5.])",
        "    + tensor([2., 4.])",
        "      value 2 of 2: 5. expected, 4. printed (off by 1; allowed: 1.65e-05)",
        "1 passed, 1 failed in 1 file",
    ]


def test_a_notebook_jupyter_executed_passes_and_update_keeps_its_other_cells(tmp_path: Path) -> None:
    seed = ROOT / "examples" / "seed_autograd.py"
    from gradrepl.cells import read_script

    cells = [cell.source for cell in read_script(seed).code_cells]
    path = notebook(tmp_path / "seed.ipynb", *cells, markdown="## 梯度")
    executed_by_jupyter(path)
    done = gradrepl("check", str(path))
    assert (done.returncode, done.stdout) == (0, f"{len(cells)} passed, 0 failed in 1 file\n"), done.stdout
    book = nbformat.read(path, as_version=4)
    book.cells[4].outputs[0]["data"]["text/plain"] = "tensor([[0.5000, 1.0000],\n        [1.5000, 2.5000]])"
    nbformat.write(book, path)
    done = gradrepl("check", str(path), cwd=tmp_path)
    assert done.returncode == 1 and done.stdout.startswith("seed.ipynb:"), done.stdout
    assert " cell 4: output differs\n    Out:\n" in done.stdout and "value 4 of 4: 2.5000 expected, 2.0000 printed" in done.stdout
    assert gradrepl("check", "--update", str(path)).returncode == 0
    updated = nbformat.read(path, as_version=4)
    nbformat.validate(updated)
    assert updated.cells[0].source == "## 梯度" and updated.cells[4].execution_count == 4
    assert updated.cells[4].outputs[0]["data"]["text/plain"].endswith("[1.5000, 2.0000]])")
    assert gradrepl("check", str(path)).returncode == 0


def test_nbval_markers_skip_ignore_and_expect_errors(tmp_path: Path) -> None:
    path = notebook(tmp_path / "marked.ipynb",
                    "# NBVAL_IGNORE_OUTPUT\nimport random\nprint(random.random())",
                    "# NBVAL_SKIP\nraise SystemExit('never run')",
                    "1 / 0",
                    "print('after')")
    book = nbformat.read(path, as_version=4)
    book.cells[3].metadata["tags"] = ["raises-exception"]
    nbformat.write(book, path)
    executed_by_jupyter(path)
    done = gradrepl("check", str(path), "--json")
    assert done.returncode == 0, done.stdout
    verdicts = [(r["cell"], r["verdict"], r["summary"]) for r in records(done.stdout)]
    assert verdicts == [(1, "passed", "ran (output not compared)"), (2, "skipped", "skipped (NBVAL_SKIP)"),
                        (3, "passed", "output matches"), (4, "passed", "output matches")]
    book = nbformat.read(path, as_version=4)
    book.cells[3].metadata["tags"] = []
    nbformat.write(book, path)
    done = gradrepl("check", str(path))
    assert done.returncode == 1 and "cell 3: raised ZeroDivisionError unexpectedly: division by zero" in done.stdout


def test_bad_input_is_one_line_and_exit_2(tmp_path: Path) -> None:
    done = gradrepl("check", str(tmp_path / "missing.ipynb"))
    assert (done.returncode, done.stderr) == (2, f"gradrepl: '{tmp_path / 'missing.ipynb'}' does not exist\n")
    broken = tmp_path / "broken.ipynb"
    broken.write_text("{not json")
    done = gradrepl("check", str(broken))
    assert done.returncode == 2 and done.stdout.splitlines()[0].startswith(f"gradrepl: cannot read '{broken}': not a valid notebook")
    path = script(tmp_path, "x = 1")
    done = gradrepl("check", str(path), "--sanitize-with", str(tmp_path / "none.cfg"))
    assert done.returncode == 2 and done.stderr.startswith("gradrepl: cannot read the sanitize file")
    done = gradrepl("check", str(path))
    assert done.returncode == 2 and "has no expected outputs" in done.stdout and "gradrepl check --update" in done.stdout
    empty = tmp_path / "empty"
    empty.mkdir()
    assert gradrepl("check", str(empty)).returncode == 2


def test_seeded_runs_print_the_same_random_numbers(tmp_path: Path) -> None:
    path = script(tmp_path, "import torch, random\nprint(torch.rand(2), random.random())")
    assert gradrepl("check", "--update", "--seed", "7", str(path)).returncode == 0
    assert gradrepl("check", "--seed", "7", str(path)).returncode == 0
    assert gradrepl("check", "--seed", "8", str(path)).returncode == 1
    assert records((tmp_path / "cells.expected.jsonl").read_text())[0]["execution_count"] == 1


def test_ci_gets_annotations_junit_and_parallel_files(tmp_path: Path) -> None:
    for name in ("a", "b"):
        (tmp_path / f"{name}.py").write_text(f"# %%\nprint('{name}')\n")
    assert gradrepl("check", "--update", str(tmp_path)).returncode == 0
    (tmp_path / "b.expected.jsonl").write_text((tmp_path / "b.expected.jsonl").read_text().replace('"b\\n"', '"B\\n"'))
    env = {**os.environ, "NO_COLOR": "1", "GITHUB_ACTIONS": "true"}
    done = gradrepl("check", "-j", "2", "--junit-xml", str(tmp_path / "junit.xml"), str(tmp_path), cwd=tmp_path, env=env)
    assert done.returncode == 1
    assert "::error file=b.py,line=2,title=gradrepl check cell 1::output differs%0Astdout:%0A- B%0A+ b" in done.stdout
    assert done.stdout.splitlines()[-1] == "1 passed, 1 failed in 2 files"
    assert 'failures="1"' in (tmp_path / "junit.xml").read_text()


def test_the_examples_folder_passes_its_check(examples_copy: Path) -> None:
    done = gradrepl("check", "-j", "2", str(examples_copy))
    assert done.returncode == 0, done.stdout
    assert done.stdout.splitlines()[-1].endswith(" passed, 0 failed in 10 files")


def pytest_in(folder: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-p", "no:randomly", "-q", *args],
                          capture_output=True, text=True, cwd=folder, timeout=300)


def test_pytest_collects_each_cell_as_an_item_with_the_same_diff(tmp_path: Path) -> None:
    path = script(tmp_path, *LESSON)
    assert gradrepl("check", "--update", str(path)).returncode == 0
    done = pytest_in(tmp_path, "--gradrepl", "--collect-only")
    assert "cells.py::cell 1" in done.stdout and "cells.py::cell 2" in done.stdout, done.stdout
    assert pytest_in(tmp_path, "--gradrepl").returncode == 0
    golden = tmp_path / "cells.expected.jsonl"
    golden.write_text(golden.read_text().replace("tensor([4., 8.])", "tensor([4., 9.])"))
    done = pytest_in(tmp_path, "--gradrepl")
    assert done.returncode == 1
    assert "cells.py:9 cell 2: output differs\n    Out:\n    - tensor([4., 9.])\n    + tensor([4., 8.])\n" in done.stdout
    assert done.stdout.splitlines()[-1].startswith("1 failed, 1 passed")
    assert "no tests ran" in pytest_in(tmp_path).stdout  # without --gradrepl, lessons are not collected


ACCUMULATES = (
    "import torch\nx = torch.tensor([1.0, 2.0], requires_grad=True)",
    "(x * x).sum().backward()",
    "y = (x * x).sum()\ny.backward()\nprint('the grad accumulates')",
)


def test_autograd_expectations_catch_a_lesson_whose_point_broke_while_its_printout_did_not(tmp_path: Path) -> None:
    path = script(tmp_path, *ACCUMULATES)
    assert gradrepl("check", "--autograd", str(path)).returncode == 2  # only with --update
    assert gradrepl("check", "--update", "--autograd", str(path)).returncode == 0
    third = records((tmp_path / "cells.expected.jsonl").read_text())[2]["autograd"]
    assert third["tensors"]["x"]["grad"] == [4.0, 8.0]
    assert third["backward"] == [{"call": "y.backward()", "leaves": {"x": "accumulated"}}]
    assert gradrepl("check", str(path)).returncode == 0
    path.write_text(path.read_text().replace("y = (x * x).sum()", "x.grad = None\ny = (x * x).sum()"))
    done = gradrepl("check", str(path), cwd=tmp_path)
    assert done.returncode == 1
    assert done.stdout.splitlines()[:4] == [
        "cells.py:9 cell 3: autograd differs; its code changed since they were recorded",
        "    autograd:",
        "    x.grad: value 1 of 2: 4.0 expected, 2.0 now",
        "    backward call 1: x.grad accumulated expected, fresh",
    ]
    assert gradrepl("check", "--update", str(path)).returncode == 0  # a plain update keeps recording them
    assert "autograd" in records((tmp_path / "cells.expected.jsonl").read_text())[2]


def test_a_notebook_keeps_its_autograd_expectations_in_cell_metadata(tmp_path: Path) -> None:
    path = notebook(tmp_path / "lesson.ipynb", *ACCUMULATES)
    assert gradrepl("check", "--update", "--autograd", str(path)).returncode == 0
    book = nbformat.read(path, as_version=4)
    nbformat.validate(book)
    assert book.cells[3].metadata["gradrepl"]["autograd"]["backward"][0]["leaves"] == {"x": "accumulated"}
    book.cells[3].metadata["gradrepl"]["autograd"]["backward"][0]["leaves"] = {"x": "fresh"}
    nbformat.write(book, path)
    done = gradrepl("check", str(path), cwd=tmp_path)
    assert done.returncode == 1 and "    backward call 1: x.grad fresh expected, accumulated\n" in done.stdout


def test_torch_is_imported_ahead_only_where_the_lesson_imports_it_first(tmp_path: Path) -> None:
    (tmp_path / "a.py").write_text("# %%\nimport torch\nprint(torch.ones(1))\n")
    (tmp_path / "b.py").write_text("# %%\nimport sys\nprint('torch' in sys.modules)\n\n# %%\nimport torch\n")
    done = gradrepl("check", "--update", str(tmp_path))
    assert done.returncode == 0, done.stdout
    assert records((tmp_path / "a.expected.jsonl").read_text())[0]["stdout"] == "tensor([1.])\n"
    assert records((tmp_path / "b.expected.jsonl").read_text())[0]["stdout"] == "False\n"  # as in Jupyter
    assert gradrepl("check", str(tmp_path)).returncode == 0


def test_a_script_paired_with_a_notebook_is_checked_against_the_notebooks_outputs(tmp_path: Path) -> None:
    lesson = tmp_path / "pair.py"
    lesson.write_text("# %%\nimport torch\nprint(torch.ones(2) * 3)\n")
    book = notebook(tmp_path / "pair.ipynb", "import torch\nprint(torch.ones(2) * 3)")
    executed_by_jupyter(book)
    done = gradrepl("check", str(lesson))
    assert (done.returncode, done.stdout) == (0, "1 passed, 0 failed in 1 file\n"), done.stdout
    saved = nbformat.read(book, as_version=4)
    saved.cells[1].outputs[0]["text"] = "tensor([3., 4.])\n"
    nbformat.write(saved, book)
    assert gradrepl("check", str(lesson)).returncode == 1
    done = gradrepl("check", "--json", str(tmp_path))  # the folder: the pair is checked once, as the notebook
    assert [(r["file"].rsplit("/", 1)[-1], r["verdict"]) for r in records(done.stdout)] == [("pair.ipynb", "failed")]


def test_a_cell_past_its_timeout_fails_and_the_rest_still_run(tmp_path: Path) -> None:
    path = script(tmp_path, "import time\ntime.sleep(4)", "print('after')")
    assert gradrepl("check", "--update", str(path)).returncode == 0  # no timeout: both run
    done = gradrepl("check", "--cell-timeout", "1", str(path), cwd=tmp_path)
    assert done.returncode == 1
    assert done.stdout.splitlines()[0].startswith("cells.py:2 cell 1: timed out")
    assert done.stdout.splitlines()[-1] == "1 passed, 1 failed in 1 file"


SPHINX_LESSON = '''"""
Gradients accumulate
====================

A sphinx-gallery example.
"""

import torch

x = torch.tensor([1.0, 2.0], requires_grad=True)
(x * x).sum().backward()
print(x.grad)

###############################################################################
# Once more, and the grad adds up.

(x * x).sum().backward()
print(x.grad)
'''


def test_a_sphinx_gallery_script_is_checked_block_by_block(tmp_path: Path) -> None:
    path = tmp_path / "plot_accumulate.py"
    path.write_text(SPHINX_LESSON)
    assert gradrepl("check", "--update", str(path)).returncode == 0
    lines = records((tmp_path / "plot_accumulate.expected.jsonl").read_text())
    assert [line["stdout"] for line in lines] == ["tensor([2., 4.])\n", "tensor([4., 8.])\n"]
    assert gradrepl("check", str(path)).returncode == 0
    path.write_text(SPHINX_LESSON[: SPHINX_LESSON.rindex("print")] + "print(x.grad + 1)\n")
    done = gradrepl("check", str(path), cwd=tmp_path)
    assert done.returncode == 1
    assert done.stdout.splitlines()[0] == "plot_accumulate.py:17 cell 2: output differs; its code changed since they were recorded"


def test_lax_compares_only_the_cells_marked_check_output(tmp_path: Path) -> None:
    path = notebook(tmp_path / "lax.ipynb", "print('free text')", "# NBVAL_CHECK_OUTPUT\nprint(2 + 2)")
    executed_by_jupyter(path)
    book = nbformat.read(path, as_version=4)
    book.cells[1].outputs[0]["text"] = "other free text\n"
    nbformat.write(book, path)
    assert gradrepl("check", str(path)).returncode == 1
    done = gradrepl("check", "--lax", "--json", str(path))
    assert done.returncode == 0, done.stdout
    assert [(r["verdict"], r["summary"]) for r in records(done.stdout)] == [
        ("passed", "ran (output not compared)"), ("passed", "output matches")]
    book.cells[2].outputs[0]["text"] = "5\n"
    nbformat.write(book, path)
    done = gradrepl("check", "--lax", str(path), cwd=tmp_path)
    assert done.returncode == 1 and done.stdout.startswith("lax.ipynb:") and " cell 2: output differs" in done.stdout


def test_a_sanitize_file_makes_run_to_run_text_agree(tmp_path: Path) -> None:
    path = script(tmp_path, "import uuid\nprint('run', uuid.uuid4().hex)")
    assert gradrepl("check", "--update", str(path)).returncode == 0
    assert gradrepl("check", str(path)).returncode == 1
    rules = tmp_path / "sanitize.cfg"
    rules.write_text("[uuid]\nregex: [0-9a-f]{32}\nreplace: UUID\n")
    assert gradrepl("check", "--sanitize-with", str(rules), str(path)).returncode == 0


def test_parallel_kernels_give_the_verdicts_one_kernel_gives(examples_copy: Path) -> None:
    (examples_copy / "grad_modes.expected.jsonl").write_text(
        (examples_copy / "grad_modes.expected.jsonl").read_text().replace("grad enabled: True", "grad enabled: False", 1))
    one = gradrepl("check", "--json", "-j", "1", str(examples_copy))
    two = gradrepl("check", "--json", "-j", "2", str(examples_copy))
    assert one.returncode == two.returncode == 1
    verdicts = [[(r["file"], r["cell"], r["verdict"], r.get("diff")) for r in records(run.stdout)] for run in (one, two)]
    assert verdicts[0] == verdicts[1] and any(v[2] == "failed" for v in verdicts[0])


def test_a_reader_that_goes_away_ends_the_check_quietly(tmp_path: Path) -> None:
    """`gradrepl check --json ... | head -1`: more lines than a pipe holds, exit 141 and no traceback."""
    path = script(tmp_path, *[f"{n}" for n in range(1000)])
    assert gradrepl("check", "--update", str(path)).returncode == 0
    status, err = reader_goes_away("check", "--json", str(path))
    assert (status, err) == (141, "")
