"""Command line: `gradrepl [SCRIPT]` opens the app, `gradrepl replay SCRIPT` runs headless,
`gradrepl graph SCRIPT [NAME ...]` prints autograd graphs, `gradrepl check PATH ...` checks
lessons' outputs against the expected ones.

Start-up is kept light: the kernel process is launched as soon as the script has been
read, before jupyter_client (or anything else heavy) is imported here.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gradrepl import __version__
from gradrepl.client import kernel_choice, sandbox_choice

if TYPE_CHECKING:
    from gradrepl.ui.typeahead import Terminal

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
EXIT_INTERRUPTED = 130
EXIT_OUTPUT_CLOSED = 141  # 128 + SIGPIPE, as a command killed by a closed pipe ends


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be more than 0 seconds: {text!r}")
    return value


def _size(text: str) -> int:
    from gradrepl.protocol import size_from_text

    try:
        return size_from_text(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


def _memory_limit(text: str) -> int:
    """A size the kernel can set: not above the hard limit it inherits from this process."""
    from gradrepl.client.session import above_hard_limit

    value = _size(text)
    problem = above_hard_limit(value)
    if problem:
        raise argparse.ArgumentTypeError(problem)
    return value


def replay_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="gradrepl replay",
        description="Run a script's cells (# %% percent format, sphinx-gallery or .ipynb) "
        "in a fresh kernel and print a notebook-like transcript.",
    )
    parser.add_argument("script", help="the script or notebook to run")
    parser.add_argument("--json", action="store_true", help="print one JSON object per cell per line")
    parser.add_argument("--keep-going", action="store_true", help="run the remaining cells after a failing one")
    parser.add_argument("--cell-timeout", type=_seconds, metavar="SECONDS", help="interrupt a cell that runs longer")
    parser.add_argument("--to-notebook", type=Path, metavar="OUT.ipynb",
                        help="also write the run as a notebook with its outputs, as if it had run in Jupyter "
                        "(not over a file gradrepl replay did not write, unless --force)")
    parser.add_argument("--force", action="store_true", help="let --to-notebook replace a file it did not write")
    _backward_log_option(parser)
    _node_grads_option(parser, "given, the text transcript prints them under each call; --json always has them")
    _nan_check_option(parser)
    _health_options(parser)
    _memory_limit_option(parser)
    sandbox_choice.add_options(parser)
    kernel_choice.add_options(parser)
    return parser


def graph_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="gradrepl graph",
        description="Run a script's cells in a fresh kernel, then print the autograd graph of tensors "
        "as text trees: nodes in the order a depth-first walk meets them, leaves by the script's names, "
        "saved tensors with their shapes, and a mark on those modified in place since they were saved.",
    )
    parser.add_argument("script", help="the script or notebook to run")
    parser.add_argument("names", nargs="*", default=[], metavar="NAME",
                        help="tensors as the inspector names them (y, model.fc.weight, params[0]); "
                        "default: every named tensor that has a grad_fn")
    parser.add_argument("--cell", type=_cell_number, metavar="N", help="stop after code cell N (1-based) instead of the last")
    formats = parser.add_mutually_exclusive_group()
    formats.add_argument("--json", action="store_true", help="print each graph as one JSON object per line")
    formats.add_argument("--dot", action="store_true",
                         help="print each graph as Graphviz DOT (draw it with: dot -Tsvg -o graph.svg)")
    _node_grads_option(parser, "given, each node of the tree shows what the last backward call through it "
                               "received and passed on")
    _nan_check_option(parser)
    _memory_limit_option(parser)
    sandbox_choice.add_options(parser)
    kernel_choice.add_options(parser)
    return parser


def check_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="gradrepl check",
        description="Run lessons (notebooks, # %% or sphinx-gallery scripts; folders are searched) each in a fresh "
        "kernel and compare every code cell's output with what it is expected to print: a notebook's stored "
        "outputs, or for a script NAME.expected.jsonl beside it (or its paired NAME.ipynb). Tensor reprs are "
        "compared as numbers. Exit 0: all match, 1: a cell differs or fails, 2: bad input.",
    )
    parser.add_argument("paths", nargs="+", metavar="PATH", help="lesson files or folders of them")
    parser.add_argument("--update", action="store_true",
                        help="write the outputs of this run as the expected ones (the notebook's outputs, "
                        "or NAME.expected.jsonl) instead of comparing")
    parser.add_argument("--autograd", action="store_true",
                        help="with --update: also record each cell's autograd expectations (the tensors it changed: "
                        "grad_fn, requires_grad, grad values; its backward calls: fresh or accumulated grads), "
                        "checked from then on beside the outputs")
    parser.add_argument("--rtol", type=_tolerance, default=1.3e-6, metavar="R",
                        help="relative tolerance for tensor values (default 1.3e-06, float32's in torch.testing)")
    parser.add_argument("--atol", type=_tolerance, default=1e-5, metavar="A",
                        help="absolute tolerance for tensor values (default 1e-05)")
    parser.add_argument("--float-tolerance", action="store_true",
                        help="compare the floats in other text (print(loss.item())) with the same tolerances")
    parser.add_argument("--lax", action="store_true",
                        help="compare only the cells marked NBVAL_CHECK_OUTPUT (the others must only run), as nbval --nbval-lax")
    parser.add_argument("--sanitize-with", type=Path, action="append", default=[], metavar="FILE",
                        help="nbval-style rules ([section] regex: ... replace: ...) applied to both outputs before comparing")
    parser.add_argument("--ignore-stderr", action="store_true", help="do not compare what cells write to stderr (warnings)")
    parser.add_argument("--json", action="store_true", help="print one JSON object per cell: file, cell, line, verdict, summary, diff")
    parser.add_argument("--junit-xml", type=Path, metavar="PATH", help="also write the results as JUnit XML")
    parser.add_argument("-j", "--jobs", type=_jobs, default=1, metavar="N", help="check N files at once, each in its own kernel")
    parser.add_argument("--seed", type=int, metavar="N", help="seed random, numpy and torch with N before each file's first cell")
    parser.add_argument("--cell-timeout", type=_seconds, metavar="SECONDS", help="interrupt a cell that runs longer (it fails)")
    _memory_limit_option(parser)
    sandbox_choice.add_options(parser)
    kernel_choice.add_options(parser, "the lessons run one after another in that kernel, not each in a fresh one")
    return parser


def _tolerance(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not 0 <= value < float("inf"):
        raise argparse.ArgumentTypeError(f"a tolerance of 0 or more: {text!r}")
    return value


def _counting(what: str, too_small: str) -> Callable[[str], int]:
    """An argparse type for a whole number of at least 1; `what` and `too_small` name the mistakes."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not {what}: {text!r}") from None
        if value < 1:
            raise argparse.ArgumentTypeError(f"{too_small}: {text!r}")
        return value

    return parse


_jobs = _counting("a number of jobs", "at least 1 job")
_cell_number = _counting("a cell number", "cells are numbered from 1")


def app_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="gradrepl",
        description="A terminal REPL for watching PyTorch autograd.",
        epilog="Headless: gradrepl replay SCRIPT [--json] [--keep-going] (see gradrepl replay --help); "
        "gradrepl graph SCRIPT [NAME ...] [--cell N] prints autograd graphs (see gradrepl graph --help); "
        "gradrepl check PATH ... compares lessons' outputs with the expected ones (see gradrepl check --help).",
    )
    parser.add_argument("script", nargs="?", help="a script to resume: its cells run, then the session goes on")
    parser.add_argument("--cell-timeout", type=_seconds, metavar="SECONDS", help="interrupt a cell that runs longer")
    _backward_log_option(parser)
    _node_grads_option(parser, "the stepper (Enter on a backward log entry, then s) walks through them")
    _nan_check_option(parser)
    _health_options(parser)
    _memory_limit_option(parser)
    sandbox_choice.add_options(parser)
    kernel_choice.add_options(parser)
    parser.add_argument("--version", action="version", version=f"gradrepl {__version__}")
    return parser


def _backward_log_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--no-backward-log", action="store_true",
        help="do not trace backward calls (each traced call costs a little; tensors are still reported)",
    )


def _node_grads_option(parser: argparse.ArgumentParser, shown: str) -> None:
    parser.add_argument(
        "--node-grads", nargs="?", const="on", default=None, choices=("auto", "on", "off"), metavar="MODE",
        help="record what every node of a backward call received and passed on; MODE auto (the default): graphs "
        f"of up to 2,000 nodes, on (the default when MODE is left out): up to 5,000, off: none; {shown}",
    )


def _nan_check_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--nan-check", action="store_true",
        help="check every torch op's result and every backward node's gradients for nan and inf, and say "
        "where the first was born: the op whose inputs were finite (costs a pass over each result)",
    )


def _health_options(parser: argparse.ArgumentParser) -> None:
    from gradrepl.protocol import EXPLODING_RATIO, VANISHING_RATIO

    parser.add_argument("--vanishing", type=_ratio, metavar="RATIO",
                        help=f"alert when most of a module's parameters have ‖grad‖/‖param‖ below RATIO "
                        f"(default {VANISHING_RATIO:g})")
    parser.add_argument("--exploding", type=_ratio, metavar="RATIO",
                        help=f"alert when a parameter's ‖grad‖/‖param‖ is above RATIO or not finite "
                        f"(default {EXPLODING_RATIO:g})")


def _ratio(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"a ratio above 0: {text!r}")
    return value


_OPTIONAL_VALUES = {"--node-grads": (("auto", "on", "off"), "on"), "--sandbox": (("strict", "best-effort"), "strict")}


def _node_grads_value(argv: list[str]) -> list[str]:
    """`--node-grads` without a mode means on, `--sandbox` without one strict: said outright, so
    the script after it is not taken for one."""
    out = []
    for index, arg in enumerate(argv):
        out.append(arg)
        known = _OPTIONAL_VALUES.get(arg)
        if known is not None and (index + 1 == len(argv) or argv[index + 1] not in known[0]):
            out.append(known[1])
    return out


def _memory_limit_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--memory-limit", type=_memory_limit, metavar="SIZE",
        help="cap the kernel's address space (512M, 4G, ...): a cell that needs more fails "
        "with MemoryError or RuntimeError, and the kernel lives on",
    )


def _kernel_for(args: argparse.Namespace) -> Any:
    """The kernel a command attaches to (kernel_choice.chosen), None for one it starts, or
    False once what is wrong with the options (theirs or --sandbox's) is on stderr."""
    return False if not sandbox_choice.chosen(args) else kernel_choice.chosen(args)


def _kernel_env(args: argparse.Namespace, folders: list[Path] | None = None) -> dict[str, str]:
    """The kernel's settings, as its environment carries them; `folders`: where --sandbox lets it write
    (the lessons' or script's folders; the working directory without them)."""
    from gradrepl.protocol import BACKWARD_LOG_ENV, MEMORY_LIMIT_ENV, NAN_CHECK_ENV, NODE_GRADS_ENV

    env = {BACKWARD_LOG_ENV: "0"} if getattr(args, "no_backward_log", False) else {}
    if getattr(args, "node_grads", None) is not None:
        env[NODE_GRADS_ENV] = args.node_grads
    if getattr(args, "nan_check", False):
        env[NAN_CHECK_ENV] = "1"
    if args.memory_limit is not None:
        env[MEMORY_LIMIT_ENV] = str(args.memory_limit)
    return {**env, **sandbox_choice.kernel_env(args, [Path.cwd()] if folders is None else folders)}


def run_replay(argv: list[str]) -> int:
    args = replay_parser().parse_intermixed_args(_node_grads_value(argv))
    script = _read_or_say(args.script)
    if script is None:
        return EXIT_USAGE
    if args.to_notebook is not None:
        from gradrepl.headless.notebook_out import refusal

        problem = refusal(script.path, args.to_notebook, args.force)
        if problem is not None:
            print(problem, file=sys.stderr)
            return EXIT_USAGE
    if not script.code_cells and args.to_notebook is None:
        print(f"gradrepl: '{args.script}' has no code cells: nothing to run", file=sys.stderr)
        return EXIT_OK

    existing = _kernel_for(args)
    if existing is False:
        return EXIT_USAGE
    from gradrepl.client.kernel_errors import KernelError
    from gradrepl.client.process import launch_kernel

    cwd = script.path.parent if script.path else None
    env = _kernel_env(args, [cwd] if cwd else None)
    try:
        process = launch_kernel(cwd=cwd, extra_env=env) if existing is None else None  # loads while the client is imported
    except KernelError as err:
        print(err, file=sys.stderr)
        return EXIT_FAILED
    try:
        from gradrepl.client.session import KernelSession
        from gradrepl.headless.replay import replay, writer_for
    except BaseException:
        if process is not None:
            process.kill()
            process.cleanup()
        raise

    session = KernelSession(cwd=cwd, env=env, attach=existing)
    session.process = process
    from gradrepl.protocol import EXPLODING_RATIO, VANISHING_RATIO

    thresholds = (args.vanishing or VANISHING_RATIO, args.exploding or EXPLODING_RATIO)
    show = writer_for(args.json, script.path, node_grads=args.node_grads is not None and args.node_grads != "off",
                      thresholds=thresholds)
    ran: list[Any] = []

    def write(record: Any) -> None:
        ran.append(record)
        show(record)

    async def main() -> int:
        stop = _StopOnSigint(session)
        try:
            code = await replay(script, write, keep_going=args.keep_going, cell_timeout=args.cell_timeout,
                                session=session, stopped=stop.requested, thresholds=thresholds)
            if stop.requested():
                print("gradrepl: interrupted: the running cell was stopped, the rest not run", file=sys.stderr)
                return EXIT_INTERRUPTED
            return code
        except asyncio.CancelledError:
            if not stop.at_once:
                raise
            print("gradrepl: interrupted again: stopped at once, the running cell not reported", file=sys.stderr)
            return EXIT_INTERRUPTED
        finally:
            try:
                await session.shutdown(now=stop.at_once)
            except asyncio.CancelledError:  # a second Ctrl+C while it shut down: the kernel is killed
                pass
            stop.remove()

    try:
        code = _run_to_the_end(main)
        if args.to_notebook is not None and code != EXIT_OUTPUT_CLOSED:
            from gradrepl.headless.notebook_out import NotebookOutError, write_run

            try:
                write_run(args.to_notebook, script, ran)
            except NotebookOutError as err:
                print(err, file=sys.stderr)
                return EXIT_FAILED
        return code
    finally:
        # The process ends next (gradrepl replay is its last act): its teardown need not
        # search everything imported here for reference cycles (a tenth of a second).
        import gc

        gc.freeze()


class _StopOnSigint:
    """Ctrl+C during a replay: the first interrupts the running cell (which then ends with
    KeyboardInterrupt, as in Jupyter) and no further cell runs; a second one stops at once,
    killing the kernel. Later ones change nothing: the handler stays until the kernel is gone."""

    def __init__(self, session: Any) -> None:
        import signal

        self.session = session
        self.count = 0
        self.at_once = False
        self.loop = asyncio.get_running_loop()
        self.task = asyncio.current_task()
        self.loop.add_signal_handler(signal.SIGINT, self._on_sigint)

    def _on_sigint(self) -> None:
        self.count += 1
        if self.count == 1:
            self.loop.create_task(self.session.interrupt())
        elif self.task is not None and not self.at_once:
            self.at_once = True
            self.task.cancel()

    def requested(self) -> bool:
        return self.count > 0

    def remove(self) -> None:
        import signal

        self.loop.remove_signal_handler(signal.SIGINT)


def run_graph(argv: list[str]) -> int:
    args = graph_parser().parse_intermixed_args(_node_grads_value(argv))  # names and options in any order
    script = _read_or_say(args.script)
    if script is None:
        return EXIT_USAGE
    count = len(script.code_cells)
    if not count and not args.names and args.cell is None:
        # As `python empty.py` and replay: an empty script is not an error; it has no graphs.
        print(f"gradrepl: '{args.script}' has no code cells: nothing to run", file=sys.stderr)
        return EXIT_OK
    if not count:
        print(f"gradrepl: '{args.script}' has no code cells: no tensor to show", file=sys.stderr)
        return EXIT_USAGE
    if args.cell is not None and args.cell > count:
        print(f"gradrepl: --cell {args.cell}: '{args.script}' has {count} code cell{'s' if count != 1 else ''}", file=sys.stderr)
        return EXIT_USAGE

    existing = _kernel_for(args)
    if existing is False:
        return EXIT_USAGE
    from gradrepl.client.session import KernelSession
    from gradrepl.headless.graph import GraphRequest, show_graphs

    folder = script.path.parent if script.path else None
    session = KernelSession(cwd=folder, env=_kernel_env(args, [folder] if folder else None), attach=existing)
    session.launch()
    request = GraphRequest(tuple(args.names), args.cell, args.json, args.dot,
                           node_grads=args.node_grads is not None and args.node_grads != "off")

    async def main() -> int:
        try:
            return await show_graphs(script, request, session)
        finally:
            await session.shutdown()

    return _run_to_the_end(main)


def run_check(argv: list[str]) -> int:
    parser = check_parser()
    args = parser.parse_args(_node_grads_value(argv))
    if args.autograd and not args.update:
        parser.error("--autograd goes with --update (the expectations it records are checked whenever they are there)")
    from gradrepl.check.compare import Comparison
    from gradrepl.check.normalise import Normaliser, SanitizeError, sanitize_rules
    from gradrepl.check.report import (
        github_annotations,
        in_github_actions,
        json_lines,
        summary_line,
        text_lines,
        write_junit,
        write_lines,
    )
    from gradrepl.check.runner import CheckOptions, check_all, lessons
    from gradrepl.check.tensor_text import Tolerance

    try:
        rules = sanitize_rules(args.sanitize_with)
    except SanitizeError as err:
        print(err, file=sys.stderr)
        return EXIT_USAGE
    files, problems = lessons(Path(p) for p in args.paths)
    for problem in problems:
        print(problem, file=sys.stderr)
    if problems:
        return EXIT_USAGE
    if not files:
        print(f"gradrepl: no notebooks or cell scripts in {', '.join(args.paths)}", file=sys.stderr)
        return EXIT_USAGE
    existing = _kernel_for(args)
    if existing is False:
        return EXIT_USAGE
    if kernel_choice.one_kernel(existing) and args.jobs > 1:
        print("gradrepl: -j runs lessons in kernels of their own: not with --existing or --kernel-id (one kernel)", file=sys.stderr)
        return EXIT_USAGE
    comparison = Comparison(Tolerance(args.rtol, args.atol, args.float_tolerance), Normaliser(rules), args.ignore_stderr)
    options = CheckOptions(comparison, args.lax, args.update, args.cell_timeout, args.seed,
                           _kernel_env(args, []), args.autograd,  # --sandbox: each lesson's folder is its own (check/runner.py)
                           existing)
    github = in_github_actions()

    def on_result(result: Any) -> None:
        write_lines(sys.stdout, json_lines(result) if args.json else text_lines(result))
        if github:
            write_lines(sys.stdout, github_annotations(result))

    async def main() -> list[Any]:
        return await check_all(files, options, args.jobs, on_result)

    try:
        results = asyncio.run(main())
        if not args.json:
            print(summary_line(results, args.update), flush=True)
    except KeyboardInterrupt:
        print("gradrepl: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:  # `gradrepl check ... | head`: the kernels were shut down on the way out
        return _output_closed()
    if args.junit_xml is not None:
        try:
            write_junit(args.junit_xml, results)
        except OSError as err:
            print(f"gradrepl: cannot write '{args.junit_xml}': {err.strerror or err}", file=sys.stderr)
            return EXIT_USAGE
    if any(r.problem is not None and not r.verdicts for r in results):
        return EXIT_USAGE
    return EXIT_FAILED if any(r.failed for r in results) else EXIT_OK


def _read_or_say(path: str) -> Any:
    """The script at `path`, or None once the reason it cannot be read is on stderr."""
    from gradrepl.cells import ScriptError, read_script

    try:
        return read_script(Path(path))
    except ScriptError as err:
        print(err, file=sys.stderr)
        return None


def _new_script(path: str) -> Any:
    """An empty percent script for `gradrepl new.py` when new.py does not exist yet (in a
    folder that does): the session saves to it. None otherwise."""
    from gradrepl.cells import Script
    from gradrepl.cells.reading import NOT_SCRIPTS

    location = Path(path)
    if location.suffix.lower() in (".ipynb", *NOT_SCRIPTS) or os.path.lexists(location) or not location.parent.is_dir():
        return None
    return Script(location, "percent", ())


def _run_to_the_end(main: Callable[[], Coroutine[Any, Any, int]]) -> int:
    """Run a headless command's session; a kernel that cannot start is one line."""
    from gradrepl.client.kernel_errors import KernelError, KernelUnreachable

    try:
        return asyncio.run(main())
    except KernelError as err:
        print(err, file=sys.stderr)
        return EXIT_USAGE if isinstance(err, KernelUnreachable) else EXIT_FAILED
    except KeyboardInterrupt:
        print("gradrepl: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:  # `gradrepl replay ... | head`: the session was shut down on the way out
        return _output_closed()


def _output_closed() -> int:
    """The reader of stdout went away: no further cell runs, and nothing more is written
    (not even what Python would flush at exit)."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)
    return EXIT_OUTPUT_CLOSED


# Cells of a script the app resumes: each is a few widgets of the transcript, and Textual lays
# out every one of them at each refresh (500 cells resume in about 30 s on a 2-core machine).
MAX_APP_CELLS = 1000


def run_app(argv: list[str]) -> int:
    args = app_parser().parse_args(_node_grads_value(argv))
    script = None
    if args.script is not None:
        script = _new_script(args.script) or _read_or_say(args.script)
        if script is None:
            return EXIT_USAGE
        cells = len(script.cells)
        if cells > MAX_APP_CELLS:
            print(f"gradrepl: '{args.script}' has {cells:,} cells: the app resumes scripts of up to "
                  f"{MAX_APP_CELLS:,} (each is a pane of the transcript); gradrepl replay runs any", file=sys.stderr)
            return EXIT_USAGE
    existing = _kernel_for(args)
    if existing is False:
        return EXIT_USAGE
    from gradrepl.client.kernel_errors import KernelError
    from gradrepl.client.process import launch_kernel
    from gradrepl.ui.typeahead import keep_typeahead

    terminal = keep_typeahead()
    cwd = script.path.parent if script is not None and script.path is not None else None
    env = _kernel_env(args, [cwd] if cwd else None)
    try:
        process = launch_kernel(cwd=cwd, extra_env=env) if existing is None else None  # loads while Textual starts
    except KernelError:
        process = None  # the app says why, as it tries again
    except BaseException:
        if terminal is not None:
            terminal.restore()
        raise
    try:
        from gradrepl.ui.app import GradReplApp
        from gradrepl.ui.state import config

        app = GradReplApp(script, process=process, cwd=cwd, cell_timeout=args.cell_timeout, kernel_env=env,
                          settings=config.Settings(config.default_path()), freeze_start_up=True,
                          thresholds=(args.vanishing, args.exploding), session_factory=_attached_to(existing),
                          sandbox_entries=None if existing is not None else sandbox_choice.toggle_env(args, [cwd or Path.cwd()]))
        if terminal is not None:
            from gradrepl.ui.typeahead import driver_with_typeahead

            app.driver_class = driver_with_typeahead(terminal.typeahead)
        _end_with_the_terminal(app, process, terminal)
        code = app.run()
    finally:
        if process is not None:
            if process.is_alive():
                process.kill()
            process.cleanup()
        if terminal is not None:
            terminal.restore()
    return code if isinstance(code, int) else EXIT_OK


def _attached_to(existing: Any) -> Any:
    """The app's sessions for --existing or --server: each attaches to that kernel, or starts one
    on that server (None: the app starts its own)."""
    if existing is None:
        return None
    from gradrepl.client.session import KernelSession

    def attached(*, cwd: Path | None, env: dict[str, str] | None) -> KernelSession:
        return KernelSession(cwd=cwd, env=env, attach=existing)

    return attached


_SIGTERM_GRACE = 2.0  # seconds the app gets to end by itself after SIGTERM
_LEAVE_SCREEN = "\x1b[?1000l\x1b[?1003l\x1b[?1006l\x1b[?2004l\x1b[?25h\x1b[?1049l"


def _end_now(code: int, terminal: Terminal | None) -> None:
    """Leave the alternate screen, give the terminal its settings back, and exit at once."""
    try:
        os.write(sys.__stdout__.fileno() if sys.__stdout__ else 1, _LEAVE_SCREEN.encode())
    except (OSError, ValueError):
        pass
    if terminal is not None:
        terminal.restore()
    os._exit(code)


def _end_with_the_terminal(app: Any, process: Any, terminal: Terminal | None = None) -> None:
    """A closed terminal (SIGHUP) or a plain `kill` (SIGTERM) ends the kernel too: it runs
    in a session of its own, so nothing else would stop it."""
    import signal
    import threading

    def stop(signum: int, frame: object) -> None:
        for kernel in {id(p): p for p in (process, app.runner.kernel_process) if p is not None}.values():
            if kernel.is_alive():
                kernel.kill()
            kernel.cleanup()
        on_a_server = getattr(getattr(app.runner.session, "client", None), "delete_now", None)
        if on_a_server is not None:  # a kernel gradrepl started on a server goes too
            on_a_server()
        if signum == signal.SIGHUP:
            # The terminal is gone: there is nothing to restore or draw, and Textual's
            # shutdown can block writing to it. Typed cells are already in the journal.
            os._exit(128 + signum)
        # The journal keeps the typed cells (only a quit is a clean end). An event loop busy
        # for long (drawing a huge script) would never run `exit`: end without it then.
        ending = threading.Timer(_SIGTERM_GRACE, _end_now, (128 + signum, terminal))
        ending.daemon = True
        ending.start()
        app.call_later(app.exit, 128 + signum)

    for signum in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, stop)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    from gradrepl.client.runtime_dirs import RuntimeDirError

    try:
        if argv and argv[0] == "replay":
            return run_replay(argv[1:])
        if argv and argv[0] == "graph":
            return run_graph(argv[1:])
        if argv and argv[0] == "check":
            return run_check(argv[1:])
        return run_app(argv)
    except RuntimeDirError as err:  # no temporary directory for the kernel's private files
        print(err, file=sys.stderr)
        return EXIT_USAGE


if __name__ == "__main__":
    sys.exit(main())
