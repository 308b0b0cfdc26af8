"""The root of a backward call as the calling line wrote it: `loss` in `loss.backward()`,
`(a * b).sum()` in `(a * b).sum().backward()`, `y` in `torch.autograd.grad(y, x)`.

The caller is the first frame outside torch's own files (Tensor.backward calls
torch.autograd.backward, which the tracer wraps). Its current instruction is the call; on
Python 3.11 and later its source positions give the call's exact text, which `ast` takes
apart; before 3.11 the frame's line is parsed and used when it holds one such call. What a
call site gives is kept by (code, instruction), so a loop pays for the parse once. A call
made by library code on the user's behalf (`torch.autograd.functional.jacobian`) has no
such call on its line and gets None. Never imports torch.
"""

from __future__ import annotations

import ast
import itertools
import linecache
import os
import re
import sys
from types import CodeType, FrameType
from typing import Any

MAX_EXPRESSION = 200  # characters kept of the root's text
_CACHE_LIMIT = 4096
_CALL_NAMES = ("backward", "grad")


class CallSites:
    """Finds the calling line's root expression; one per tracer, given torch at install."""

    def __init__(self, torch: Any) -> None:
        self._torch_dir = _torch_dir(torch)
        method = getattr(getattr(torch, "Tensor", None), "backward", None)
        self._method_code: CodeType | None = getattr(method, "__code__", None)
        self._seen: dict[tuple[int, int, bool], tuple[CodeType, str | None]] = {}

    def serves(self, torch: Any) -> bool:
        """Made for this torch (installing the tracer again keeps what the call sites gave)."""
        return self._torch_dir == _torch_dir(torch)

    def root_expression(self, frame: FrameType | None) -> str | None:
        """The root's text at the call that led to `frame` (the caller of the traced function)."""
        through_method = False
        while frame is not None and frame.f_code.co_filename.startswith(self._torch_dir):
            through_method = through_method or frame.f_code is self._method_code
            frame = frame.f_back
        if frame is None:
            return None
        code = frame.f_code
        key = (id(code), frame.f_lasti, through_method)  # a code object's own hash reads all of it
        seen = self._seen.get(key)
        if seen is not None and seen[0] is code:
            return seen[1]
        try:
            found = _expression_at(frame, through_method)
        except Exception:
            found = None
        if len(self._seen) >= _CACHE_LIMIT:
            self._seen.clear()
        self._seen[key] = (code, found)
        return found


def _torch_dir(torch: Any) -> str:
    return os.path.dirname(getattr(torch, "__file__", None) or "/nonexistent-torch") + os.sep


def _expression_at(frame: FrameType, through_method: bool) -> str | None:
    code = frame.f_code
    lines = linecache.getlines(code.co_filename, frame.f_globals)
    positions = _positions(code, frame.f_lasti)
    if positions is not None:
        segment = _segment(lines, *positions)
        found = None if segment is None else _root_of(segment, through_method, exact=True)
        # A call split over lines may be positioned at its last part alone (`.backward()`):
        # the call ending there, in the whole source, is the one.
        return found if found is not None else _root_ending_at(lines, positions[1], positions[3], through_method)
    if 0 < frame.f_lineno <= len(lines):
        return _root_of(lines[frame.f_lineno - 1].strip(), through_method, exact=False)
    return None


def _positions(code: CodeType, lasti: int) -> tuple[int, int, int, int] | None:
    """(line, end line, column, end column) of the instruction at `lasti` (3.11+), else None."""
    if sys.version_info < (3, 11) or lasti < 0:
        return None
    found = next(itertools.islice(code.co_positions(), lasti // 2, None), None)
    if found is None or None in found:
        return None
    line, end_line, column, end_column = found
    assert line is not None and end_line is not None and column is not None and end_column is not None
    return line, end_line, column, end_column


def _segment(lines: list[str], line: int, end_line: int, column: int, end_column: int) -> str | None:
    """The source between two positions; columns count UTF-8 bytes, as code positions do."""
    if not 0 < line <= end_line <= len(lines):
        return None
    chosen = [text.encode("utf-8") for text in lines[line - 1:end_line]]
    chosen[-1] = chosen[-1][:end_column]
    chosen[0] = chosen[0][column:]
    return b"".join(chosen).decode("utf-8", errors="replace")


def _root_ending_at(lines: list[str], end_line: int, end_column: int, through_method: bool) -> str | None:
    source = "".join(lines)
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return None
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and (node.end_lineno, node.end_col_offset) == (end_line, end_column):
            return _root_text(source, node, through_method)
    return None


def _root_of(source: str, through_method: bool, exact: bool) -> str | None:
    """The root in a call to backward/grad: the receiver of `X.backward(...)` when the call came
    through Tensor.backward, else the first argument. `exact`: `source` is the call itself;
    otherwise it is a line, and the line's only such call is used."""
    if exact:
        source = f"({source})"  # a call split over lines outside brackets parses in them
    try:
        tree = ast.parse(source, mode="eval" if exact else "exec")
    except SyntaxError:
        return None
    if exact:
        calls = [tree.body] if isinstance(tree, ast.Expression) and isinstance(tree.body, ast.Call) else []
    else:
        calls = [node for node in ast.walk(tree) if isinstance(node, ast.Call) and _called_name(node) in _CALL_NAMES]
    if len(calls) != 1 or _called_name(calls[0]) not in _CALL_NAMES:
        return None
    return _root_text(source, calls[0], through_method)


def _root_text(source: str, call: ast.Call, through_method: bool) -> str | None:
    """The root of a call to backward/grad in `source`, as its text there."""
    if _called_name(call) not in _CALL_NAMES:
        return None
    if through_method:
        if not isinstance(call.func, ast.Attribute) or call.func.attr != "backward":
            return None
        root: ast.AST | None = call.func.value
    else:
        root = call.args[0] if call.args else next(
            (k.value for k in call.keywords if k.arg in ("tensors", "outputs")), None)
    if root is None or isinstance(root, ast.Starred):
        return None
    text = ast.get_source_segment(source, root)
    if not text:
        return None
    text = re.sub(r"\s+\.", ".", " ".join(text.split()))  # a chain split over lines joined as one
    if through_method and not isinstance(root, (ast.Name, ast.Attribute, ast.Call, ast.Subscript, ast.Constant)):
        text = f"({text})"  # `(a * b).backward()`: the brackets belong to the call, not to the node
    return text if len(text) <= MAX_EXPRESSION else text[:MAX_EXPRESSION - 1] + "…"


def _called_name(call: ast.Call) -> str | None:
    func = call.func
    if isinstance(func, ast.Attribute):
        return func.attr
    if isinstance(func, ast.Name):
        return func.id
    return None
