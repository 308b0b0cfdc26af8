"""A cell's error as frames of the user's file: which file and line each compiled cell came
from (`CellOrigins`, fed by IPython's compiler), and a traceback's frames mapped through it.
gradrepl's own frames (the backward tracer's wrappers) are taken out of a traceback before
IPython formats it (`hide_frames_from_tracebacks`), so a cell's error reads as in Jupyter;
a syntax error's message names the script's line (`name_the_script_in_syntax_errors`); and a
cell that takes the kernel's sys.stdout away gets it back (`keep_the_kernels_streams`)."""

from __future__ import annotations

import contextlib
import re
import sys
import traceback
from collections.abc import Collection
from types import CodeType, TracebackType
from typing import Any

_ON_LINE = re.compile(r"\bon line (\d+)\b")


class CellOrigins:
    """Remembers which file and line each compiled cell came from, by its code name."""

    def __init__(self) -> None:
        self.current: dict[str, Any] | None = None
        self.by_code_name: dict[str, dict[str, Any]] = {}
        self.cell_names: set[str] = set()  # the code names of every cell compiled (their frames are the user's)
        self.renamed: tuple[SyntaxError, str, int] | None = None  # the last error name_the_script changed

    def wrap_compiler(self, compiler: Any) -> None:
        original = compiler.cache

        def cache(transformed_code: str, number: int = 0, raw_code: str | None = None) -> str:
            name = original(transformed_code, number, raw_code)
            self.cell_names.add(name)
            if self.current is not None:
                self.by_code_name[name] = self.current
            else:  # the name comes from the code alone: the same code from a file earlier is not this cell
                self.by_code_name.pop(name, None)
            return name

        compiler.cache = cache

    def script_line(self, code_name: str | None, lineno: int | None) -> tuple[str | None, int | None]:
        origin = self.by_code_name.get(code_name or "")
        if origin is None or lineno is None:
            return None, None
        return origin.get("file"), int(origin.get("line", 1)) + lineno - 1

    def name_the_script(self, error: SyntaxError) -> None:
        """A syntax error in a cell from a file names that file and line, as Python's would
        (`invalid syntax (lesson.py, line 8)`), not IPython's temporary file of the cell."""
        file, line = self.script_line(error.filename, error.lineno)
        if file is None or line is None or error.lineno is None:
            return
        self.renamed = (error, str(error.filename), error.lineno)
        shift = line - error.lineno
        error.filename, error.lineno = file, line
        if isinstance(error.end_lineno, int):
            error.end_lineno += shift
        if isinstance(error.msg, str):  # "expected an indented block after 'if' statement on line 1"
            error.msg = _ON_LINE.sub(lambda found: f"on line {int(found[1]) + shift}", error.msg)

    def cell_line_of(self, error: SyntaxError) -> tuple[str | None, int | None]:
        """The code name and line a syntax error had before `name_the_script`."""
        if self.renamed is not None and self.renamed[0] is error:
            return self.renamed[1], self.renamed[2]
        return error.filename, error.lineno


def without_frames(tb: TracebackType | None, hidden: Collection[CodeType]) -> TracebackType | None:
    """The same traceback chain with no entry for a frame running one of the `hidden` codes."""
    kept = [entry for entry in _tracebacks(tb) if entry.tb_frame.f_code not in hidden]
    if len(kept) == len(_tracebacks(tb)):
        return tb
    rebuilt: TracebackType | None = None
    for entry in reversed(kept):
        rebuilt = TracebackType(rebuilt, entry.tb_frame, entry.tb_lasti, entry.tb_lineno)
    return rebuilt


def strip_frames(exc: BaseException, hidden: Collection[CodeType]) -> None:
    """`without_frames` on the traceback of `exc` and of every exception chained to it."""
    seen: set[int] = set()
    pending: list[BaseException | None] = [exc]
    while pending:
        current = pending.pop()
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        current.__traceback__ = without_frames(current.__traceback__, hidden)
        pending += [current.__cause__, current.__context__]
        pending += list(getattr(current, "exceptions", ()) or ())  # an ExceptionGroup's members


def hide_frames_from_tracebacks(shell: Any, hidden: Collection[CodeType]) -> None:
    """IPython's tracebacks (the error a cell shows, %debug's frames) without the `hidden`
    codes' frames; marking them __tracebackhide__ instead leaves IPython's own line
    "[... skipping hidden 2 frame]" where Jupyter shows nothing."""
    formatter = shell.InteractiveTB
    original = formatter.structured_traceback

    def structured_traceback(etype: Any, evalue: Any, etb: Any = None, *args: Any, **kwargs: Any) -> Any:
        try:
            if isinstance(evalue, BaseException):
                strip_frames(evalue, hidden)
            etb = without_frames(etb, hidden)
        except Exception:
            pass
        return original(etype, evalue, etb, *args, **kwargs)

    formatter.structured_traceback = structured_traceback


def name_the_script_in_syntax_errors(shell: Any, origins: CellOrigins) -> None:
    """A cell's syntax error is shown as Jupyter shows it (`Cell In[2], line 4`), but its
    message, which ipykernel takes from str() once it is formatted, names the script's file
    and line. Every syntax error IPython shows goes through this formatter."""
    formatter = shell.SyntaxTB
    original = formatter.structured_traceback

    def structured_traceback(etype: Any, evalue: Any, *args: Any, **kwargs: Any) -> Any:
        shown = original(etype, evalue, *args, **kwargs)
        try:
            if isinstance(evalue, SyntaxError):
                origins.name_the_script(evalue)
        except Exception:
            pass
        return shown

    formatter.structured_traceback = structured_traceback


def keep_the_kernels_streams(shell: Any) -> None:
    """A cell that sets sys.stdout or sys.stderr to None (or to anything without write(), or
    whose flush() raises) would leave IPython unable to start any later cell: ipykernel then
    logs the error and sends no reply, for every cell. The kernel's own stream is put back
    after such a cell (and before the next one, for a change made between cells), or after
    IPython failed to run a cell with another stream in place, and the cell says so."""
    kernel_streams = {"stdout": sys.stdout, "stderr": sys.stderr}
    original = shell.run_cell

    def usable(value: Any) -> bool:
        kind = type(value)
        if not (callable(getattr(kind, "write", None)) and callable(getattr(kind, "flush", None))):
            return False
        try:
            value.flush()  # ipykernel flushes both streams after each cell: a raise there ends its reply
        except Exception:
            return False
        return True

    def put_back(failed: bool = False) -> None:
        taken = []
        for name, stream in kernel_streams.items():
            value = getattr(sys, name, None)
            if value is not stream and (failed or not usable(value)):
                kind = type(value)
                setattr(sys, name, stream)
                taken.append(f"sys.{name} was set to {'None' if value is None else f'an object of type {kind.__name__}'}")
        if taken:
            sys.stderr.write(f"gradrepl: {' and '.join(taken)}, with which the kernel can show no output and run "
                             "no further cell: it is the kernel's stream again (to silence output, set it to "
                             "open(os.devnull, 'w'))\n")

    def run_cell(*args: Any, **kwargs: Any) -> Any:
        with contextlib.suppress(Exception):
            put_back()
        try:
            result = original(*args, **kwargs)
        except Exception:  # IPython's own code failed (a cell's errors never get here)
            with contextlib.suppress(Exception):
                put_back(failed=True)
            raise
        with contextlib.suppress(Exception):
            put_back()
        return result

    shell.run_cell = run_cell


def error_frames(exc: BaseException, origins: CellOrigins) -> list[dict[str, Any]]:
    frames: list[dict[str, Any]] = []
    # gradrepl's own wrappers (the backward tracer) mark their frames as IPython does, with
    # __tracebackhide__: they are not the user's code, nor the library's.
    shown = [tb for tb in _tracebacks(exc.__traceback__) if not tb.tb_frame.f_locals.get("__tracebackhide__")]
    summaries = traceback.StackSummary.extract((tb.tb_frame, tb.tb_lineno) for tb in shown)
    for frame in summaries:
        file, line = origins.script_line(frame.filename, frame.lineno)
        frames.append(
            {
                "filename": frame.filename,
                "lineno": frame.lineno,
                "name": frame.name,
                "text": (frame.line or "").strip(),
                "script_file": file,
                "script_line": line,
            }
        )
    if isinstance(exc, SyntaxError):
        code_name, lineno = origins.cell_line_of(exc)
        file, line = origins.script_line(code_name, lineno)
        frames.append(
            {
                "filename": code_name,
                "lineno": lineno,
                "name": "<module>",
                "text": (exc.text or "").strip(),
                "script_file": file,
                "script_line": line,
            }
        )
    return frames


def _tracebacks(tb: TracebackType | None) -> list[TracebackType]:
    found = []
    while tb is not None:
        found.append(tb)
        tb = tb.tb_next
    return found
