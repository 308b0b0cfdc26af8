"""The private and undocumented APIs of torch, IPython, ipykernel, CPython and Textual that
gradrepl relies on (docs/private-apis.md lists them, with why and the versions tested).

One test each. A test fails with a message naming the API and what breaks in gradrepl
when an upgrade removes it or changes its shape. The tests run in this process (torch,
Textual) or in a plain Python subprocess (IPython, atexit) and start no kernel, except
those marked `kernel`. The last group checks that the IOPub pipe patch fails closed.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import textwrap
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar, NoReturn

import ipykernel
import pytest
import torch
import zmq
from ipykernel import iostream
from rich.segment import Segment
from textual import events
from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.color import Color
from textual.filter import LineFilter
from textual.screen import Screen
from textual.widgets import Footer, Static, TextArea

from gradrepl.inkernel import graph, launch
from gradrepl.protocol import RUNTIME_DIR_PREFIX

ROOT = Path(__file__).resolve().parent.parent
NO_TCP = "refusing to open a TCP port"


def changed(api: str, breaks: str) -> str:
    """The message of a failed check: which API changed, and what in gradrepl breaks."""
    return f"private API changed: {api}. In gradrepl: {breaks}. See docs/private-apis.md."


def run_python(code: str, tmp_path: Path) -> str:
    """Run `code` in a fresh interpreter (gradrepl importable, IPython's state in tmp_path);
    its stdout. For APIs that would disturb this process (IPython's shell, atexit)."""
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, timeout=120, cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(ROOT), "IPYTHONDIR": str(tmp_path / "ipython")},
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


# ---------------------------------------------------------------- torch


def test_tensor_version_counts_in_place_changes() -> None:
    x = torch.zeros(3)
    before = x._version
    x.add_(1)
    assert isinstance(before, int) and x._version == before + 1, changed(
        "Tensor._version", "the probe's `version` field and the backward log's check of which .grad changed"
    )


def test_flatten_dense_tensors_copies_tensors_into_one_flat_buffer_in_order() -> None:
    parts = [torch.tensor([[1.0, 2.0], [3.0, 4.0]]).t(), torch.tensor(5.0), torch.zeros(0), torch.tensor([6.0])]
    flat = torch._utils._flatten_dense_tensors(parts)
    assert flat.tolist() == [1.0, 3.0, 2.0, 4.0, 5.0, 6.0] and flat.data_ptr() not in {p.data_ptr() for p in parts}, changed(
        "torch._utils._flatten_dense_tensors", "the report's check of which small tensors' values changed (described_cache.py)"
    )


def test_node_sequence_nr_grows_with_each_node_created() -> None:
    x = torch.ones(2, requires_grad=True)
    first: Any = (x * 2).grad_fn
    second: Any = (x + 1).grad_fn
    accumulate = first.next_functions[0][0]
    why = changed("Node._sequence_nr()", "the backward log lists graph nodes in the order the engine runs them")
    assert callable(getattr(first, "_sequence_nr", None)), why
    assert isinstance(first._sequence_nr(), int) and second._sequence_nr() > first._sequence_nr(), why
    assert accumulate._sequence_nr() > second._sequence_nr(), changed(
        "Node._sequence_nr() of AccumulateGrad (the largest)", "the backward log puts a leaf's AccumulateGrad late in the order"
    )


def test_node_saved_attributes_hold_the_tensors_and_values_saved_for_backward() -> None:
    x = torch.ones(2, 2, requires_grad=True)
    node: Any = (x**2).grad_fn
    why = changed("Node._saved_<name>", "the graph view lists what each node saved (`saved self: 2x2`, `exponent=2`)")
    assert sorted(a for a in dir(node) if a.startswith("_saved_")) == ["_saved_exponent", "_saved_self"], why
    assert node._saved_self is x and node._saved_exponent == 2, why
    view: Any = x.view(4).grad_fn
    shapes = [a for a in dir(view) if a.startswith("_saved_")]
    assert shapes and all(a.endswith(graph._SHAPE_SUFFIXES) for a in shapes), changed(
        f"the names of saved sizes and strides ({', '.join(shapes)})", "the graph view shows sizes as saved values"
    )


def test_a_saved_tensor_modified_in_place_says_both_versions() -> None:
    x = torch.ones(2, requires_grad=True)
    y = x * 1
    node: Any = (y**2).grad_fn
    with torch.no_grad():
        y.add_(1)
    with pytest.raises(RuntimeError) as error:
        _ = node._saved_self
    found = graph._VERSIONS.search(str(error.value))
    assert found is not None and (found.group(1), found.group(2)) == ("1", "0"), changed(
        "the error reading Node._saved_<name> after an in-place change ('is at version N; expected version M')",
        "the graph view no longer marks a saved tensor modified in place, with its versions",
    )


def test_a_freed_saved_tensor_says_it_was_freed() -> None:
    x = torch.ones(2, requires_grad=True)
    y = x * x
    node: Any = y.grad_fn
    y.sum().backward()
    with pytest.raises(RuntimeError) as error:
        _ = node._saved_self
    message = str(error.value)
    assert "freed" in message or "second time" in message, changed(
        "the error reading Node._saved_<name> once backward freed it", "the graph view shows it as unreadable, not freed"
    )


def test_raw_saved_tensor_still_gives_shape_after_an_in_place_change() -> None:
    x = torch.ones(2, 3, requires_grad=True)
    y = x * 1
    node = (y**2).grad_fn
    with torch.no_grad():
        y.add_(1)
    raw = getattr(node, "_raw_saved_self", None)
    data = getattr(raw, "data", None)
    assert isinstance(data, torch.Tensor) and list(data.shape) == [2, 3], changed(
        "Node._raw_saved_<name>.data", "a saved tensor modified in place is shown without its shape and name"
    )


def test_node_input_metadata_has_one_entry_per_output_of_the_forward_op() -> None:
    x = torch.ones(4, requires_grad=True)
    first: Any
    second: Any
    first, second = x.split(2)
    why = changed("Node._input_metadata and Tensor.output_nr", "the vector-Jacobian view cannot call nodes' backward")
    product: Any = (x * 2).grad_fn
    assert len(product._input_metadata) == 1, why
    assert first.grad_fn is second.grad_fn and len(first.grad_fn._input_metadata) == 2, why
    assert (first.output_nr, second.output_nr) == (0, 1), why


def test_calling_a_node_gives_its_input_grads_and_touches_no_grad() -> None:
    x = torch.tensor([1.0, 2.0], requires_grad=True)
    node: Any = (x * 3).grad_fn
    why = changed("calling a Node directly (node(*grads))", "the vector-Jacobian view cannot compute J")
    try:
        out = node(torch.ones(2))
    except Exception as error:
        pytest.fail(f"{why} ({type(error).__name__}: {error})")
    grads = out if isinstance(out, tuple) else (out,)
    assert grads and isinstance(grads[0], torch.Tensor) and torch.equal(grads[0], torch.full((2,), 3.0)), why
    assert x.grad is None, why


def test_accumulate_grad_nodes_name_their_leaf_in_variable() -> None:
    x = torch.ones(2, requires_grad=True)
    product: Any = (x * 2).grad_fn
    ((accumulate, _),) = product.next_functions[:1]
    assert getattr(accumulate, "variable", None) is x, changed(
        "AccumulateGrad.variable", "the backward log, graph view and vector-Jacobian view cannot find the leaves"
    )


def test_custom_function_nodes_are_backward_c_functions() -> None:
    class Double(torch.autograd.Function):
        @staticmethod
        def forward(ctx: Any, t: torch.Tensor) -> torch.Tensor:
            return t * 2

        @staticmethod
        def backward(ctx: Any, grad: torch.Tensor) -> torch.Tensor:
            return grad * 2

    node = Double.apply(torch.ones(2, requires_grad=True)).grad_fn
    node_type = getattr(torch.autograd.function, "BackwardCFunction", None)
    assert isinstance(node_type, type) and isinstance(node, node_type), changed(
        "torch.autograd.function.BackwardCFunction",
        "the vector-Jacobian view would run the user's own backward (a custom Function) to build J",
    )


def test_module_parameters_and_buffers_dicts_hold_what_named_parameters_and_named_buffers_list() -> None:
    model = torch.nn.Sequential(torch.nn.Linear(2, 3), torch.nn.BatchNorm1d(3), torch.nn.Sequential(torch.nn.Linear(3, 1)))
    model[2][0].bias = None
    why = changed("nn.Module._parameters and nn.Module._buffers",
                  "the inspector lists a module's parameters and buffers wrongly, or not at all")
    for private, public in (("_parameters", model.named_parameters()), ("_buffers", model.named_buffers())):
        found = []
        for prefix, submodule in model.named_modules():
            table = getattr(submodule, private, None)
            assert isinstance(table, dict), why
            found += [f"{prefix}.{label}" if prefix else label for label, item in table.items() if item is not None]
        assert found == [name for name, _ in public], why
    modules = ["", *(f"{prefix}.{label}" if prefix else label for prefix, submodule in model.named_modules()
                     for label in submodule._modules)]
    assert modules == [name for name, _ in model.named_modules()], changed(
        "nn.Module._modules", "the inspector lists no parameter or buffer of a module's submodules")


def test_set_grad_enabled_in_torch_C_switches_grad_mode() -> None:
    was = torch.is_grad_enabled()
    why = changed("torch._C._set_grad_enabled(bool)", "the probe cannot turn autograd off while it reads tensors")
    try:
        torch._C._set_grad_enabled(False)
        assert not torch.is_grad_enabled(), why
        torch._C._set_grad_enabled(True)
        assert torch.is_grad_enabled(), why
    finally:
        torch._C._set_grad_enabled(was)


def test_disable_torch_function_subclass_keeps_a_subclass_override_out() -> None:
    calls: list[str] = []

    class Noisy(torch.Tensor):
        @classmethod
        def __torch_function__(cls, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
            calls.append(getattr(func, "__name__", str(func)))
            return super().__torch_function__(func, types, args, kwargs or {})

    t = torch.ones(2).as_subclass(Noisy)
    disable = getattr(torch._C, "DisableTorchFunctionSubclass", None)
    why = changed("torch._C.DisableTorchFunctionSubclass",
                  "the probe runs user tensor subclasses' __torch_function__ while it reads them (it falls back silently)")
    assert disable is not None, why
    with disable():
        t.detach().sum()
    assert calls == [], why
    t.detach()
    assert calls, "the subclass in this test never overrides anything: the check above proves nothing"


def test_backward_hooks_is_the_ordered_dict_a_tensors_hooks_run_from() -> None:
    why = changed("Tensor._backward_hooks", "the backward log cannot say what a tensor's hooks did to its grad "
                  "(grad_watch.HookWatch puts an observer before and after them in that dict)")
    for tensor in (torch.ones(2, requires_grad=True), torch.ones(2, requires_grad=True) * 1):
        if not tensor.is_leaf:
            tensor.retain_grad()
        assert getattr(tensor, "_backward_hooks", "missing") is None, why
        ran: list[str] = []
        note = ran.append
        tensor.register_hook(lambda g, note=note: note("user") or g * 2)
        hooks = tensor._backward_hooks
        assert isinstance(hooks, dict) and len(hooks) == 1, why
        users = list(hooks.items())
        hooks.clear()
        hooks["first"] = lambda g, note=note: note(f"first {g.tolist()}")
        hooks.update(users)
        hooks["last"] = lambda g, note=note: note(f"last {g.tolist()}")
        (tensor * 3).sum().backward()
        assert ran == ["first [3.0, 3.0]", "user", "last [6.0, 6.0]"], why
        assert tensor.grad.tolist() == [6.0, 6.0], why


def test_foreach_norm_gives_each_tensors_2_norm() -> None:
    why = changed("torch._foreach_norm", "grad norms cost a call per tensor (grad_watch.norms_of falls back to "
                  "torch.linalg.vector_norm, quietly)")
    grads = [torch.full((3,), 2.0), torch.ones(2, 2), torch.zeros(1)]
    norms = getattr(torch, "_foreach_norm", None)
    assert norms is not None, why
    assert torch.stack(norms(grads)).tolist() == pytest.approx([12 ** 0.5, 2.0, 0.0]), why


# ---------------------------------------------------------------- IPython


def test_user_ns_hidden_and_output_cache_names_keep_ipythons_names_out_of_the_probe(tmp_path: Path) -> None:
    out = run_python(
        """
        import json
        from traitlets.config import Config
        from IPython.core.interactiveshell import InteractiveShell
        from gradrepl.inkernel import namespace

        config = Config()
        config.HistoryManager.hist_file = ":memory:"
        shell = InteractiveShell.instance(config=config)
        for cell in ("x = 1\\nx", "x", "x + 1"):
            shell.run_cell(cell, store_history=True)
        print(json.dumps({"names": [name for name, _ in namespace._user_names(shell)],
                          "hidden": sorted(name for name in ("In", "Out", "get_ipython", "exit", "quit")
                                           if name in shell.user_ns_hidden)}))
        """,
        tmp_path,
    )
    found = json.loads(out.splitlines()[-1])
    why = changed("InteractiveShell.user_ns_hidden (and the output cache's names _, _1, _i1, _oh, ...)",
                  "IPython's own names show up in the inspector as the user's")
    assert found["hidden"] == ["In", "Out", "exit", "get_ipython", "quit"], why
    assert found["names"] == ["x"], why


def test_compile_cache_names_the_code_that_tracebacks_point_into(tmp_path: Path) -> None:
    out = run_python(
        """
        import json, traceback
        from traitlets.config import Config
        from IPython.core.interactiveshell import InteractiveShell
        from gradrepl.inkernel import errors

        config = Config()
        config.HistoryManager.hist_file = ":memory:"
        shell = InteractiveShell.instance(config=config)
        origins = errors.CellOrigins()
        origins.wrap_compiler(shell.compile)
        origins.current = {"file": "lesson.py", "line": 10}
        result = shell.run_cell("y = 2\\n1 / 0", store_history=True)
        innermost = traceback.extract_tb(result.error_in_exec.__traceback__)[-1]
        print(json.dumps(origins.script_line(innermost.filename, innermost.lineno)))
        """,
        tmp_path,
    )
    assert json.loads(out.splitlines()[-1]) == ["lesson.py", 11], changed(
        "CachingCompiler.cache(transformed_code, number, raw_code) -> the code's file name",
        "tracebacks no longer point into the user's script (`File \"lesson.py\", line 11`)",
    )



def test_structured_traceback_formats_the_traceback_it_is_given(tmp_path: Path) -> None:
    out = run_python(
        """
        from traitlets.config import Config
        from IPython.core.interactiveshell import InteractiveShell
        from gradrepl.inkernel import errors

        config = Config()
        config.HistoryManager.hist_file = ":memory:"
        shell = InteractiveShell.instance(config=config)
        shell.run_cell("def helper():\\n    1 / 0\\ndef outer():\\n    helper()", store_history=True)
        errors.hide_frames_from_tracebacks(shell, {shell.user_ns["outer"].__code__})
        result = shell.run_cell("outer()", store_history=True)
        text = "\\n".join(shell.InteractiveTB.structured_traceback(
            type(result.error_in_exec), result.error_in_exec, result.error_in_exec.__traceback__))
        import re
        text = re.sub("\\x1b\\\\[[0-9;]*m", "", text)
        print(", in outer" in text, ", in helper" in text)
        """,
        tmp_path,
    )
    assert out.splitlines()[-1] == "False True", changed(
        "InteractiveShell.InteractiveTB.structured_traceback(etype, evalue, etb, ...) formats the traceback given",
        "the backward tracer's frames show in tracebacks (or IPython's `[... skipping hidden 2 frame]` line)",
    )


@pytest.mark.faults
def test_syntax_tb_formats_a_cells_syntax_error_before_ipykernel_reads_its_message(tmp_path: Path) -> None:
    """IPython formats a cell's syntax error with shell.SyntaxTB.structured_traceback, then
    hands the same exception to ipykernel's _showtraceback, which sends str() of it."""
    out = run_python(
        """
        import json, re
        from traitlets.config import Config
        from IPython.core.interactiveshell import InteractiveShell
        from ipykernel.zmqshell import ZMQInteractiveShell
        from gradrepl.inkernel import errors

        config = Config()
        config.HistoryManager.hist_file = ":memory:"
        shell = InteractiveShell.instance(config=config)
        origins = errors.CellOrigins()
        origins.wrap_compiler(shell.compile)
        errors.name_the_script_in_syntax_errors(shell, origins)
        sent = []

        class Session:
            def send(self, socket, kind, content, parent, ident=None):
                sent.append(content)

        class DisplayHook:  # what ZMQInteractiveShell._showtraceback reads of its displayhook
            msg = topic = pub_socket = None
            parent_header = {}
            session = Session()

        class Shell:
            displayhook = DisplayHook()

        shell._showtraceback = lambda etype, evalue, stb: ZMQInteractiveShell._showtraceback(Shell(), etype, evalue, stb)
        origins.current = {"file": "lesson.py", "line": 10}
        shell.run_cell("x = 1\\nif x\\n    pass", store_history=True)
        print(json.dumps([{"evalue": content["evalue"],
                           "traceback": re.sub("\\x1b\\\\[[0-9;]*m", "", "\\n".join(content["traceback"]))}
                          for content in sent]))
        """,
        tmp_path,
    )
    sent = json.loads(out.splitlines()[-1])
    assert len(sent) == 1 and sent[0]["evalue"] == "expected ':' (lesson.py, line 11)", changed(
        "InteractiveShell.SyntaxTB.structured_traceback(etype, evalue, elist), called for every syntax error of a "
        "cell before ipykernel's ZMQInteractiveShell._showtraceback sends str(evalue)",
        "a syntax error names IPython's temporary file of the cell (`(2197699998.py, line 2)`), not the script's "
        f"file and line (errors.py name_the_script_in_syntax_errors); sent: {sent}",
    )
    assert "Cell In[1], line 2" in sent[0]["traceback"], changed(
        "InteractiveShell.SyntaxTB.structured_traceback formatting the error at once, before it is renamed",
        f"a syntax error's traceback no longer reads as Jupyter's (`Cell In[1], line 2`); sent: {sent}",
    )


# ---------------------------------------------------------------- ipykernel


def test_iopub_thread_has_the_pipe_methods_gradrepl_replaces() -> None:
    import inspect

    for name, count in launch._PIPE_METHODS.items():
        method = getattr(iostream.IOPubThread, name, None)
        why = changed(f"ipykernel IOPubThread.{name}", "the kernel refuses to start (it will not open the TCP pipe)")
        assert callable(method), why
        assert len(inspect.signature(method).parameters) == count, why


def test_outstream_buffers_hold_what_is_written_until_it_is_flushed() -> None:
    from jupyter_client.session import Session

    from gradrepl.inkernel.probe import holds_output

    context = zmq.Context()
    socket = context.socket(zmq.PUB)
    socket.bind("inproc://gradrepl-outstream-test")
    pub = iostream.IOPubThread(socket)  # not started: what it is asked to do, it does at once
    try:
        stream = iostream.OutStream(Session(), pub, "stdout", watchfd=False)
        why = changed("ipykernel OutStream._buffers", "a cell's last print can arrive after its report, or every cell waits on a flush")
        assert not holds_output(stream), why
        stream.write("printed")
        assert holds_output(stream), why
        stream.flush()
        assert not holds_output(stream), why
    finally:
        context.destroy(linger=0)  # the thread's event pipe too


@pytest.fixture
def pipe_methods_restored(monkeypatch: pytest.MonkeyPatch) -> None:
    """IOPubThread's methods as they were after the test, whatever _iopub_pipe_in replaced."""
    for name in launch._PIPE_METHODS:
        if name in vars(iostream.IOPubThread):
            monkeypatch.setattr(iostream.IOPubThread, name, vars(iostream.IOPubThread)[name])


class Refused(Exception):
    """launch._fail, made to raise here instead of ending this process."""


@pytest.fixture
def refusal(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(message: str, log: int | None = None) -> NoReturn:
        raise Refused(message)

    monkeypatch.setattr(launch, "_fail", refuse)


@pytest.fixture
def runtime_dir(tmp_path: Path) -> Path:
    path = tmp_path / f"{RUNTIME_DIR_PREFIX}test"
    path.mkdir(mode=0o700)
    return path


@pytest.mark.skipif(not hasattr(os, "fork"), reason="forks a child")
def test_the_patched_pipe_carries_a_forked_childs_output_over_a_unix_socket(
    pipe_methods_restored: None, refusal: None, runtime_dir: Path
) -> None:
    """ipykernel's side of the pipe (IOPubThread.__init__ calling _setup_pipe_in, a child's
    send going through _setup_pipe_out with _pipe_uuid, _handle_pipe_msg in the parent)
    still fits the replacements."""
    in_place = launch._iopub_pipe_in(str(runtime_dir))
    assert in_place is not None
    context = zmq.Context()
    pub = context.socket(zmq.PUB)
    pub.bind("inproc://iopub-under-test")
    sub = context.socket(zmq.SUB)
    sub.connect("inproc://iopub-under-test")
    sub.setsockopt(zmq.SUBSCRIBE, b"")
    thread = iostream.IOPubThread(pub, pipe=True)
    thread.start()
    why = changed("ipykernel IOPubThread's forked-output pipe (_setup_pipe_in, _setup_pipe_out, _pipe_uuid, "
                  "_handle_pipe_msg, _pipe_in)", "print() in a multiprocessing child no longer reaches the cell")
    try:
        in_place()  # returns: the pipe was set up by the patch
        assert stat.S_ISSOCK((runtime_dir / "k-pipe").stat().st_mode), why
        assert getattr(thread, "_pipe_port", None) is None, "ipykernel's TCP pipe was bound: " + why
        thread.send_multipart([b"from the kernel"])  # the subscription is live once this arrives
        assert sub.poll(60_000) and sub.recv_multipart() == [b"from the kernel"]
        child = os.fork()
        if child == 0:
            code = 1
            try:
                thread.send_multipart([b"from a forked child"])
                code = 0
            finally:
                os._exit(code)
        _, status = os.waitpid(child, 0)
        assert os.waitstatus_to_exitcode(status) == 0, why
        assert sub.poll(60_000), why
        assert sub.recv_multipart() == [b"from a forked child"], why
    finally:
        thread.stop()
        thread.close()
        context.destroy(linger=0)


@pytest.mark.kernel
def test_ipykernel_registers_its_close_at_exit(tmp_path: Path) -> None:
    """launch.main unregisters it (it could hang the kernel's exit); if ipykernel stopped
    registering `app.close`, that unregister would quietly do nothing."""
    runtime = tmp_path / f"{RUNTIME_DIR_PREFIX}atexit"
    runtime.mkdir(mode=0o700)
    connection = runtime / "kernel.json"
    connection.write_text(json.dumps({
        "transport": "ipc", "ip": str(runtime / "k"), "key": "0" * 64, "signature_scheme": "hmac-sha256",
        "shell_port": 1, "iopub_port": 2, "stdin_port": 3, "control_port": 4, "hb_port": 5,
    }))
    answer = tmp_path / "registered.json"
    run_python(
        f"""
        import atexit, json, os
        registered = []
        register = atexit.register
        atexit.register = lambda f, *args, **kwargs: (registered.append(f), register(f, *args, **kwargs))[1]
        from ipykernel.kernelapp import IPKernelApp
        app = IPKernelApp.instance()
        app.initialize(["-f", {str(connection)!r}, "--HistoryManager.hist_file=:memory:"])
        with open({str(answer)!r}, "w") as out:
            json.dump(any(f == app.close for f in registered), out)
        os._exit(0)
        """,
        tmp_path,
    )
    assert json.loads(answer.read_text()) is True, changed(
        "IPKernelApp registering atexit.register(app.close)",
        "launch.main's atexit.unregister(app.close) does nothing, and a kernel's exit can hang again",
    )


@pytest.mark.faults
def test_ipykernel_runs_a_cell_through_shell_run_cell_whose_tee_needs_the_streams_write(tmp_path: Path) -> None:
    """ipykernel's do_execute calls shell.run_cell for a cell without top-level await, and
    IPython's run_cell (its _tee) wraps sys.stdout.write and sys.stderr.write: a stream
    without write() fails every later cell before it runs, one with write() and flush() is
    enough. errors.keep_the_kernels_streams wraps shell.run_cell and checks just those."""
    out = run_python(
        """
        import asyncio, json, sys
        from types import SimpleNamespace
        from traitlets.config import Config
        from IPython.core.interactiveshell import InteractiveShell
        from ipykernel.ipkernel import IPythonKernel
        from gradrepl.inkernel import errors

        config = Config()
        config.HistoryManager.hist_file = ":memory:"
        shell = InteractiveShell.instance(config=config)
        kernel = SimpleNamespace(shell=shell, _forward_input=lambda allow_stdin: None, _restore_input=lambda: None)

        def execute(code):
            try:
                return asyncio.run(IPythonKernel.do_execute(kernel, code, False))["status"]
            except Exception as err:  # ipykernel then logs it and sends no reply
                return f"{type(err).__name__}: {err}"

        class Minimal:
            def __init__(self):
                self.written = []
            def write(self, text):
                self.written.append(text)
                return len(text)
            def flush(self):
                pass

        found = {}
        for name in ("stdout", "stderr"):
            found[name] = [execute(f"import sys\\nsys.{name} = None"), execute("after = 1")]
            setattr(sys, name, getattr(sys, f"__{name}__"))
        minimal = Minimal()
        sys.stdout = minimal
        found["minimal"] = [execute("print('to the minimal stream')"), "".join(minimal.written)]
        sys.stdout = sys.__stdout__
        calls = []
        errors.keep_the_kernels_streams(shell)
        wrapped = shell.run_cell
        shell.run_cell = lambda *args, **kwargs: (calls.append(args[0]), wrapped(*args, **kwargs))[1]
        found["kept"] = [execute("import sys\\nsys.stdout = None"), execute("y = 2\\nprint('back')")]
        found["calls"] = calls
        print(json.dumps(found), file=sys.__stdout__)  # sys.stdout may be None still
        """,
        tmp_path,
    )
    found = json.loads(out.splitlines()[-1])
    assert found["calls"] == ["import sys\nsys.stdout = None", "y = 2\nprint('back')"], changed(
        "ipykernel IPythonKernel.do_execute calling shell.run_cell(code, ...) for a cell without top-level await",
        "errors.keep_the_kernels_streams is never called: after `sys.stdout = None` every later cell gets no reply "
        f"(found: {found})",
    )
    for name in ("stdout", "stderr"):
        assert found[name] == ["ok", "AttributeError: 'NoneType' object has no attribute 'write'"], changed(
            f"IPython InteractiveShell.run_cell (_tee) reading and replacing sys.{name}.write",
            "errors.keep_the_kernels_streams puts back a stream IPython no longer fails on, or misses what it "
            f"fails on now (its user message says the kernel could run no further cell); found: {found}",
        )
    assert found["minimal"] == ["ok", "to the minimal stream\n"], changed(
        "IPython InteractiveShell.run_cell needing only write() of sys.stdout",
        "a stream with write() and flush() passes errors.keep_the_kernels_streams's check but fails the next "
        f"cell, with no reply; found: {found}",
    )
    assert found["kept"] == ["ok", "ok"], changed(
        "ipykernel do_execute / IPython run_cell around errors.keep_the_kernels_streams",
        f"the cell after `sys.stdout = None` fails with no reply; found: {found}",
    )


@pytest.mark.faults
def test_ipykernel_logs_a_failed_request_as_exception_in_message_handler(tmp_path: Path) -> None:
    """When a shell request's handler raises (IPython failing to run a cell: no reply is
    sent), ipykernel's dispatch_shell logs this line with the traceback under it, in the
    kernel's log; the session takes the reason of a cell without a reply from it."""
    out = run_python(
        """
        import asyncio, io, json, logging
        import zmq
        from jupyter_client.session import Session
        from ipykernel.kernelbase import Kernel

        class Quiet(Kernel):  # the status messages need IOPub, which is not the point here
            def _publish_status(self, *args, **kwargs):
                pass
            def _publish_status_and_flush(self, *args, **kwargs):
                pass

        def failing(stream, idents, msg):
            raise AttributeError("'Slotted' object attribute 'write' is read-only")

        log = io.StringIO()
        logger = logging.getLogger("kernel-under-test")
        logger.addHandler(logging.StreamHandler(log))
        logger.propagate = False
        session = Session(key=b"")
        kernel = Quiet(session=session, log=logger)
        kernel.shell_handlers["execute_request"] = failing
        request = session.serialize(session.msg("execute_request", {"code": "1 + 1"}))
        asyncio.run(kernel.dispatch_shell([zmq.Frame(part) for part in request]))
        print(json.dumps(log.getvalue()))
        """,
        tmp_path,
    )
    from gradrepl.client.session import _HANDLER_FAILED

    logged = json.loads(out.splitlines()[-1])
    _, found, failure = logged.rpartition(_HANDLER_FAILED)
    lines = [line.strip() for line in failure.splitlines() if line.strip()]
    assert found and lines[-1:] == ["AttributeError: 'Slotted' object attribute 'write' is read-only"], changed(
        f"ipykernel Kernel.dispatch_shell logging {_HANDLER_FAILED!r} with the traceback when a handler raises",
        "a cell ipykernel failed to run says only `the kernel sent no reply`, without why "
        f"(session.py _no_reply_reason); logged: {logged!r}",
    )


# ---------------------------------------------------------------- CPython


def test_atexit_run_exitfuncs_runs_the_callbacks_once(tmp_path: Path) -> None:
    out = run_python(
        """
        import atexit
        atexit.register(print, "callback")
        atexit._run_exitfuncs()
        print("after")
        """,
        tmp_path,
    )
    assert out == "callback\nafter\n", changed(
        "atexit._run_exitfuncs()", "the kernel's exit skips the user's atexit callbacks (or runs them twice)"
    )


# ---------------------------------------------------------------- Textual


class SignalApp(App[None]):
    def __init__(self) -> None:
        super().__init__()
        self.published: list[Screen] = []

    def compose(self) -> ComposeResult:
        yield Footer()

    def on_mount(self) -> None:
        self.screen.bindings_updated_signal.subscribe(self, self.first_bindings)

    def first_bindings(self, screen: Screen) -> None:
        self.published.append(screen)
        screen.bindings_updated_signal.unsubscribe(self)


async def test_screen_bindings_updated_signal_is_published_after_mount() -> None:
    app = SignalApp()
    async with app.run_test() as pilot:
        await pilot.pause()
        assert app.published == [app.screen], changed(
            "Screen.bindings_updated_signal (subscribe / unsubscribe, published with the screen)",
            "the app's panes (transcript, inspector, backward log) never mount",
        )


class KeyedArea(TextArea):
    BINDINGS: ClassVar[list[Binding | tuple[str, str] | tuple[str, str, str]]] = [Binding("ctrl+r", "run", "Run"), Binding("ctrl+j,alt+enter", "newline", "Newline")]

    def __init__(self) -> None:
        super().__init__()
        self.keys_seen: list[str] = []

    async def _on_key(self, event: events.Key) -> None:
        self.keys_seen.append(event.key)
        await super()._on_key(event)


def test_widget_bindings_map_lists_a_widgets_own_bindings_by_key() -> None:
    bindings = getattr(KeyedArea(), "_bindings", None)
    key_to_bindings = getattr(bindings, "key_to_bindings", None)
    why = changed("Widget._bindings.key_to_bindings", "the code input's Ctrl+R, Ctrl+J and history keys do nothing")
    assert isinstance(key_to_bindings, dict), why
    assert [b.action for b in key_to_bindings.get("ctrl+r", [])] == ["run"], why
    assert [b.action for b in key_to_bindings.get("alt+enter", [])] == ["newline"], why


class AreaApp(App[None]):
    def compose(self) -> ComposeResult:
        yield KeyedArea()


async def test_text_area_on_key_is_the_key_handler_a_subclass_overrides() -> None:
    app = AreaApp()
    async with app.run_test() as pilot:
        area = app.query_one(KeyedArea)
        area.focus()
        await pilot.press("a", "enter")
        why = changed("TextArea._on_key(event) (async, called for each key)",
                      "the code input's override never runs: Enter no longer runs a cell, Tab no longer completes")
        assert area.keys_seen == ["a", "enter"], why
        assert area.text == "a\n", why


async def test_app_notifications_lists_the_notices_shown() -> None:
    app = AreaApp()
    async with app.run_test() as pilot:
        app.notify("changed on disk")
        await pilot.pause()
        assert [n.message for n in getattr(app, "_notifications", ())] == ["changed on disk"], changed(
            "App._notifications (tests only)", "tests/test_app.py cannot see the notices the app shows"
        )


class UpperFilter(LineFilter):
    def apply(self, segments: list[Segment], background: Color) -> list[Segment]:
        return [Segment(segment.text.upper(), segment.style, segment.control) for segment in segments]


class FilteredApp(App[None]):
    def compose(self) -> ComposeResult:
        yield Static("drawn through the filter")

    def get_line_filters(self) -> Sequence[LineFilter]:
        return [*super().get_line_filters(), UpperFilter()]


async def test_app_line_filters_are_applied_to_every_line_drawn() -> None:
    app = FilteredApp()
    async with app.run_test(size=(40, 3)) as pilot:
        await pilot.pause()
        why = changed("textual.filter.LineFilter / App.get_line_filters()",
                      "text below 4.5:1 on its background is no longer made readable (ui/readable_text.py)")
        drawn = "".join(strip.text for strip in app.screen._compositor.render_strips())
        assert "DRAWN THROUGH THE FILTER" in drawn, why


def test_xterm_parser_turns_terminal_input_into_key_events() -> None:
    from textual._xterm_parser import XTermParser

    parser = XTermParser()
    keys = [event.key for event in (*parser.feed("a\r\x1b[A"), *parser.feed("")) if isinstance(event, events.Key)]
    assert keys == ["a", "enter", "up"], changed(
        "textual._xterm_parser.XTermParser (feed, and feed('') at the end)",
        "keys typed while the app starts are lost or misread (ui/typeahead.py)",
    )


def test_linux_driver_reads_the_terminal_in_run_input_thread() -> None:
    from textual.drivers.linux_driver import LinuxDriver

    assert callable(getattr(LinuxDriver, "run_input_thread", None)), changed(
        "LinuxDriver.run_input_thread", "keys typed while the app starts never reach the input (ui/typeahead.py)"
    )


# ---------------------------------------------------------------- nbclient (scripts/record-jupyter)


def test_notebook_client_can_clean_up_a_kernel_it_did_not_start() -> None:
    from nbclient import NotebookClient
    from nbconvert.preprocessors import ExecutePreprocessor

    assert issubclass(ExecutePreprocessor, NotebookClient) and callable(getattr(NotebookClient, "_cleanup_kernel", None)), \
        changed("nbclient NotebookClient._cleanup_kernel", "scripts/record-jupyter cannot stop the kernel it recorded with")


# ---------------------------------------------------------------- the IOPub pipe fails closed


@pytest.fixture
def binds(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every address a zmq socket of this process binds while the test runs."""
    seen: list[str] = []
    bind = zmq.Socket.bind

    def noted(self: zmq.Socket, address: str) -> Any:
        seen.append(address)
        return bind(self, address)

    monkeypatch.setattr(zmq.Socket, "bind", noted)
    return seen


class WithoutPipeIn:
    """An IOPubThread of an ipykernel that sets its pipe up some other way."""

    def _setup_pipe_out(self) -> None: ...

    def _handle_pipe_msg(self, msg: list[bytes]) -> None: ...


class PipeInOfAnotherShape(WithoutPipeIn):
    def _setup_pipe_in(self, address: str) -> None: ...


def test_an_ipykernel_without_the_pipe_methods_is_refused(
    monkeypatch: pytest.MonkeyPatch, refusal: None, runtime_dir: Path
) -> None:
    monkeypatch.setattr(iostream, "IOPubThread", WithoutPipeIn)
    with pytest.raises(Refused) as refused:
        launch._iopub_pipe_in(str(runtime_dir))
    assert str(refused.value) == (f"this ipykernel ({ipykernel.__version__}) has no unix-socket pipe for forked "
                                  f"output (IOPubThread._setup_pipe_in is missing); {NO_TCP}")
    assert not hasattr(WithoutPipeIn, "_setup_pipe_in")


def test_a_pipe_method_of_another_shape_is_refused(
    monkeypatch: pytest.MonkeyPatch, refusal: None, runtime_dir: Path
) -> None:
    monkeypatch.setattr(iostream, "IOPubThread", PipeInOfAnotherShape)
    with pytest.raises(Refused) as refused:
        launch._iopub_pipe_in(str(runtime_dir))
    assert str(refused.value) == (f"this ipykernel ({ipykernel.__version__}) has no unix-socket pipe for forked "
                                  f"output (IOPubThread._setup_pipe_in takes 2 parameters, not 1); {NO_TCP}")


def test_a_unix_socket_that_cannot_be_bound_is_refused(
    pipe_methods_restored: None, refusal: None, binds: list[str], tmp_path: Path
) -> None:
    runtime = tmp_path / f"{RUNTIME_DIR_PREFIX}{'x' * 120}"  # past the 107 bytes of a unix socket's path
    runtime.mkdir(mode=0o700)
    in_place = launch._iopub_pipe_in(str(runtime))
    assert in_place is not None
    context = zmq.Context()
    try:
        with pytest.raises(Refused) as refused:
            iostream.IOPubThread(context.socket(zmq.PUB), pipe=True)
    finally:
        context.destroy(linger=0)
    message = str(refused.value)
    assert message.startswith(f"cannot listen for forked output on {runtime}/k-pipe (") and message.endswith(f"); {NO_TCP}")
    assert binds == [f"ipc://{runtime}/k-pipe"]
    with pytest.raises(Refused):  # nor would the kernel go on without its pipe
        in_place()


def test_a_pipe_set_up_other_than_through_the_patch_is_refused(
    pipe_methods_restored: None, refusal: None, runtime_dir: Path
) -> None:
    in_place = launch._iopub_pipe_in(str(runtime_dir))
    assert in_place is not None
    with pytest.raises(Refused) as refused:
        in_place()  # no IOPubThread was made with pipe=True: the patched _setup_pipe_in never ran
    assert str(refused.value) == (f"this ipykernel ({ipykernel.__version__}) did not set up its pipe for forked "
                                  "output through IOPubThread._setup_pipe_in (it may be a TCP port); refusing to start")


# Preludes for a real kernel (run as its sitecustomize): each makes the patch impossible in
# one way and notes every address the kernel binds, so the test sees that no TCP port was.
NOTE_BINDS = """
import os, socket, zmq
os.environ.pop("PYTEST_CURRENT_TEST", None)  # ipykernel behaves differently under pytest
def note(address):
    with open({log!r}, "a") as log:
        log.write(str(address) + "\\n")
zmq_bind = zmq.Socket.bind
def bind(self, address):
    note(address)
    return zmq_bind(self, address)
zmq.Socket.bind = bind
socket_bind = socket.socket.bind
def inet_bind(self, address):
    if self.family in (socket.AF_INET, socket.AF_INET6):
        note(f"inet {{address}}")
    return socket_bind(self, address)
socket.socket.bind = inet_bind
from ipykernel import iostream
IOPubThread = iostream.IOPubThread
ipykernel_init = IOPubThread.__init__
ipykernel_pipe_in = IOPubThread._setup_pipe_in  # binds tcp://127.0.0.1
"""

PRELUDES = {
    # A future ipykernel whose pipe is set up by a method of another name: gradrepl's patch has nothing to replace.
    "pipe_in_renamed": """
del IOPubThread._setup_pipe_in
def init(self, socket, pipe=False, session=False):
    ipykernel_init(self, socket, pipe=False, session=session)
    if pipe:
        self._pipe_flag = True
        ipykernel_pipe_in(self)
IOPubThread.__init__ = init
""",
    # The unix socket cannot be bound.
    "bind_fails": """
import errno
def failing_bind(self, address):
    note(address)
    if str(address).endswith("k-pipe"):
        raise zmq.ZMQError(errno.EADDRINUSE)
    return zmq_bind(self, address)
zmq.Socket.bind = failing_bind
""",
    # The method is still there, but no longer what sets the pipe up.
    "pipe_in_unused": """
IOPubThread._open_pipe_in = ipykernel_pipe_in
def init(self, socket, pipe=False, session=False):
    ipykernel_init(self, socket, pipe=False, session=session)
    if pipe:
        self._pipe_flag = True
        self._open_pipe_in()
IOPubThread.__init__ = init
""",
}

REFUSALS = {
    "pipe_in_renamed": (f"this ipykernel ({ipykernel.__version__}) has no unix-socket pipe for forked output "
                        f"(IOPubThread._setup_pipe_in is missing); {NO_TCP}"),
    "bind_fails": f"cannot listen for forked output on RUNTIME/k-pipe (Address already in use); {NO_TCP}",
    "pipe_in_unused": (f"this ipykernel ({ipykernel.__version__}) did not set up its pipe for forked output "
                       "through IOPubThread._setup_pipe_in (it may be a TCP port); refusing to start"),
}


@pytest.mark.kernel
@pytest.mark.parametrize("prelude", sorted(PRELUDES))
async def test_the_kernel_refuses_to_start_rather_than_open_a_tcp_port(tmp_path: Path, prelude: str) -> None:
    from gradrepl.client.session import KernelError, KernelSession

    site = tmp_path / "site"
    site.mkdir()
    log = tmp_path / "binds.log"
    (site / "sitecustomize.py").write_text(NOTE_BINDS.format(log=str(log)) + PRELUDES[prelude])
    session = KernelSession(cwd=tmp_path, env={"PYTHONPATH": str(site)})
    try:
        with pytest.raises(KernelError) as refused:
            await session.start()
    finally:
        await session.shutdown()  # a kernel that did start
    binds = log.read_text().splitlines() if log.exists() else []
    # The kernel's private directory, as the last address bound under it names it.
    runtime = next((os.path.dirname(a.removeprefix("ipc://")) for a in reversed(binds) if a.startswith("ipc://")), "")
    refusal = REFUSALS[prelude].replace("RUNTIME", runtime)
    assert str(refused.value) == f"gradrepl: the kernel exited while starting ({refusal})"
    tcp = [address for address in binds if address.startswith(("tcp:", "inet"))]
    if prelude == "pipe_in_unused":
        assert tcp, "this ipykernel stand-in was to bind its TCP pipe before the kernel refused"
    else:
        assert tcp == [], f"the kernel bound {tcp}"
    if prelude == "bind_fails":
        assert os.path.basename(runtime).startswith(RUNTIME_DIR_PREFIX) and binds[-1] == f"ipc://{runtime}/k-pipe"
