"""The layout by process is a rule the suite checks: kernel-side code (gradrepl/inkernel) never
imports the front end, Textual or jupyter_client; renderers import neither Textual nor torch;
the front end never imports torch or kernel-side code; the protocol is standard library only.

Three checks, each able to fail on its own: import-linter's contracts (pyproject.toml), a scan
of every import statement (also those inside functions, which is where the front end defers
its heavy imports), and what importing a module really loads, in a fresh interpreter."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "gradrepl"

FRONT_END = ("gradrepl.client", "gradrepl.render", "gradrepl.headless", "gradrepl.ui", "gradrepl.cli", "gradrepl.cells")
RULES: list[tuple[str, tuple[str, ...]]] = [
    # modules under this prefix ... may not import these (or anything below them)
    *((prefix, ("torch", "gradrepl.inkernel")) for prefix in FRONT_END),
    ("gradrepl.inkernel", ("gradrepl.client", "gradrepl.ui", "gradrepl.render", "gradrepl.headless", "gradrepl.cli",
                          "gradrepl.cells", "textual", "jupyter_client", "rich", "torch")),
    ("gradrepl.render", ("textual", "rich", "jupyter_client", "gradrepl.ui")),
    ("gradrepl.protocol", ("gradrepl.client", "gradrepl.ui", "gradrepl.render", "gradrepl.headless", "gradrepl.inkernel",
                           "textual", "torch", "jupyter_client", "ipykernel", "IPython", "zmq", "rich")),
]


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_names(source: str, module: str) -> set[str]:
    """Every module an import statement in `source` names, absolute, wherever the statement is."""
    names: set[str] = set()
    package = module.rsplit(".", 1)[0]
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1] + ([base] if base else []))
            names.add(base)
            names.update(f"{base}.{alias.name}" for alias in node.names)
    return names


def violations(module: str, names: set[str]) -> list[str]:
    found = []
    for prefix, forbidden in RULES:
        if module != prefix and not module.startswith(prefix + "."):
            continue
        for name in sorted(names):
            for banned in forbidden:
                if name == banned or name.startswith(banned + "."):
                    found.append(f"{module} imports {name} ({prefix} may not import {banned})")
    return found


def test_the_import_linter_contracts_hold() -> None:
    linter = Path(sys.executable).parent / "lint-imports"
    assert linter.exists(), "import-linter is missing: it comes with the test extra (scripts/bootstrap test)"
    run = subprocess.run([str(linter), "--no-cache"], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-2000:]
    assert "0 broken" in run.stdout


def test_no_import_statement_crosses_a_process_boundary() -> None:
    found: list[str] = []
    modules = sorted(PACKAGE.rglob("*.py"))
    assert len(modules) > 30
    for path in modules:
        module = module_name(path)
        found += violations(module, imported_names(path.read_text(encoding="utf-8"), module))
    assert found == []


@pytest.mark.parametrize(("module", "source"), [
    ("gradrepl.inkernel.probe", "def f():\n    from gradrepl.ui.app import GradReplApp\n"),
    ("gradrepl.inkernel.graph", "import jupyter_client\n"),
    ("gradrepl.render.text", "from textual.widgets import Static\n"),
    ("gradrepl.ui.widgets.inspector", "import torch\n"),
    ("gradrepl.client.events", "from ..inkernel import probe\n"),
    ("gradrepl.protocol", "import zmq\n"),
])
def test_the_scan_sees_a_crossing_import(module: str, source: str) -> None:
    assert violations(module, imported_names(source, module))


def loaded_after_import(module: str) -> list[str]:
    # The module's name comes on stdin: a command line naming the kernel's entry point would
    # look like a kernel start to the guard against kernels in unmarked tests.
    code = "import importlib, json, sys; importlib.import_module(sys.stdin.read().strip()); print(json.dumps(sorted(sys.modules)))"
    run = subprocess.run([sys.executable, "-c", code], input=module, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    return list(json.loads(run.stdout))


def test_importing_the_session_client_loads_no_kernel_side_code_and_no_torch() -> None:
    loaded = loaded_after_import("gradrepl.client.session")
    assert [m for m in loaded if m.startswith("gradrepl.inkernel")] == []
    assert "torch" not in loaded


@pytest.mark.parametrize("module", ["gradrepl.ui.app", "gradrepl.headless.replay", "gradrepl.headless.graph", "gradrepl.cli"])
def test_front_end_modules_load_neither_torch_nor_kernel_side_code(module: str) -> None:
    loaded = loaded_after_import(module)
    assert "torch" not in loaded
    assert [m for m in loaded if m.startswith("gradrepl.inkernel")] == []


@pytest.mark.parametrize("module", ["gradrepl.inkernel.probe", "gradrepl.inkernel.launch"])
def test_kernel_side_modules_load_no_front_end(module: str) -> None:
    loaded = loaded_after_import(module)
    front = [m for m in loaded if m.startswith(("gradrepl.client", "gradrepl.ui", "gradrepl.render", "gradrepl.headless"))]
    assert front == []
    assert not {"textual", "jupyter_client", "torch"} & set(loaded)


def test_renderers_load_neither_textual_nor_torch() -> None:
    code = ("import json, sys; import gradrepl.render.text, gradrepl.render.graph, gradrepl.render.explain, "
            "gradrepl.render.tensors; print(json.dumps(sorted(sys.modules)))")
    run = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    assert not {"textual", "torch", "rich", "jupyter_client"} & set(json.loads(run.stdout))
