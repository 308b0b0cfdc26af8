"""A cell's error as frames of the user's file: which file and line each compiled cell came
from (`CellOrigins`, fed by IPython's compiler), and a traceback's frames mapped through it.
gradrepl's own frames (the backward tracer's wrappers) are taken out of a traceback before
IPython formats it (`hide_frames_from_tracebacks`), so a cell's error reads as in Jupyter."""

from __future__ import annotations

import traceback
from collections.abc import Collection
from types import CodeType, TracebackType
from typing import Any


class CellOrigins:
    """Remembers which file and line each compiled cell came from, by its code name."""

    def __init__(self) -> None:
        self.current: dict[str, Any] | None = None
        self.by_code_name: dict[str, dict[str, Any]] = {}

    def wrap_compiler(self, compiler: Any) -> None:
        original = compiler.cache

        def cache(transformed_code: str, number: int = 0, raw_code: str | None = None) -> str:
            name = original(transformed_code, number, raw_code)
            if self.current is not None:
                self.by_code_name[name] = self.current
            return name

        compiler.cache = cache

    def script_line(self, code_name: str | None, lineno: int | None) -> tuple[str | None, int | None]:
        origin = self.by_code_name.get(code_name or "")
        if origin is None or lineno is None:
            return None, None
        return origin.get("file"), int(origin.get("line", 1)) + lineno - 1


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
        file, line = origins.script_line(exc.filename, exc.lineno)
        frames.append(
            {
                "filename": exc.filename,
                "lineno": exc.lineno,
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
