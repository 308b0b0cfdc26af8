"""Output text read as pieces a lesson's check can compare: the text between tensors, and each
`tensor(...)` repr parsed into its values, its layout (nesting, `...` cuts) and its suffix
(`dtype=...`, `requires_grad=True`, `grad_fn=<MulBackward0>`, `device=...`).

Two reprs agree when their layout and suffix are the same and each pair of values is within
tolerance. A printed value is rounded (torch prints 4 decimals), so it stands for the interval
its last digit allows: 0.1235 and 0.1236 may be the same float32 printed after a last-bit
change, and they agree; 0.5 and 0.75 do not. Python floats in the text (`0.6931471824645996`)
are compared the same way when asked (`floats=True`). Pure: no torch.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

_TENSOR_START = re.compile(r"(?<![\w.])tensor\(")
_FLOAT = re.compile(r"(?<![\w.])[-+]?(?:\d+\.\d*|\.\d+|\d+(?=[eE]))(?:[eE][-+]?\d+)?(?![\w.])")
_VALUE_TOKEN = re.compile(r"\[|\]|,|\.\.\.|[^\s\[\],]+")
_NUMBER = re.compile(r"[-+]?(?:\d+\.?\d*(?:[eE][-+]?\d+)?|\.\d+(?:[eE][-+]?\d+)?|nan|inf)(?:[-+](?:\d+\.?\d*(?:[eE][-+]?\d+)?|nan|inf)j)?")


@dataclass(frozen=True)
class Tolerance:
    """How far apart two printed numbers may be: |a - b| <= atol + rtol·|b| + the rounding of
    both printouts (half a unit of each one's last digit). The defaults are what
    `torch.testing.assert_close` uses for float32."""

    rtol: float = 1.3e-6
    atol: float = 1e-5
    floats: bool = False  # compare Python floats outside tensor reprs numerically too

    def close(self, expected: Number, actual: Number) -> bool:
        a, b = expected.value, actual.value
        if isinstance(a, complex) or isinstance(b, complex):
            return abs(complex(a) - complex(b)) <= self.atol + self.rtol * abs(complex(a)) + expected.unit + actual.unit
        if math.isnan(a) or math.isnan(b):
            return math.isnan(a) and math.isnan(b)
        if math.isinf(a) or math.isinf(b):
            return a == b
        if expected.exact and actual.exact:
            return a == b
        return abs(a - b) <= self.atol + self.rtol * abs(a) + (expected.unit + actual.unit) / 2


@dataclass(frozen=True)
class Number:
    text: str
    value: float | complex
    unit: float  # one unit of its last printed digit (0 for an integer)
    exact: bool  # an integer or a bool: compared exactly


@dataclass(frozen=True)
class TensorRepr:
    """`tensor(...)` as printed: the layout of its values (each number replaced by `#`), the
    numbers in order, and the rest of the repr with blanks removed."""

    text: str
    layout: str
    numbers: tuple[Number, ...]
    suffix: str


Piece = str | TensorRepr | Number


def number(text: str) -> Number | None:
    """A printed number (`0.5000`, `1.0000e-03`, `-inf`, `nan`, `3`, `True`, `1.+2.j`), or None."""
    if text in ("True", "False"):
        return Number(text, float(text == "True"), 0.0, True)
    if not _NUMBER.fullmatch(text):
        return None
    try:
        value: float | complex = complex(text) if text.endswith("j") else float(text)
    except ValueError:
        return None
    exact = not text.endswith("j") and re.fullmatch(r"[-+]?\d+", text) is not None
    return Number(text, value, 0.0 if exact else _unit(text), exact)


def _unit(text: str) -> float:
    """One unit of the last digit printed: 0.1235 -> 1e-4, 1.0000e-03 -> 1e-7. Torch prints
    `2.` only when every value is a whole number: that is exact (0)."""
    if text.endswith("j"):
        return max(_unit(part) for part in re.split(r"(?<=[\d.])(?=[-+])", text[:-1]))
    mantissa, _, exponent = text.lower().partition("e")
    if "nan" in mantissa or "inf" in mantissa or mantissa.endswith("."):
        return 0.0
    digits = len(mantissa.split(".", 1)[1]) if "." in mantissa else 0
    try:
        power = int(exponent) if exponent else 0
    except ValueError:
        power = 0
    return 10.0 ** (power - digits)


def _closing(text: str, start: int) -> int | None:
    """The index of the parenthesis closing the one before `start`, quotes respected."""
    depth, quote = 1, ""
    for index in range(start, len(text)):
        char = text[index]
        if quote:
            if char == quote:
                quote = ""
        elif char in "'\"":
            quote = char
        elif char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
            if depth == 0:
                return index
    return None


def parse_tensor(text: str) -> TensorRepr | None:
    """The repr `tensor(...)` in `text` (the whole of it), or None when it is not one."""
    if not text.startswith("tensor(") or not text.endswith(")"):
        return None
    inner = text[len("tensor("):-1].strip()
    if inner.startswith("["):
        depth, end = 0, None
        for index, char in enumerate(inner):
            depth += (char == "[") - (char == "]")
            if depth == 0:
                end = index + 1
                break
        if end is None:
            return None
        values, rest = inner[:end], inner[end:]
    else:
        values, comma, rest = inner.partition(",")
        rest = comma + rest
    layout: list[str] = []
    numbers: list[Number] = []
    for token in _VALUE_TOKEN.findall(values):
        if token in ("[", "]", ",", "..."):
            layout.append(token)
            continue
        parsed = number(token)
        if parsed is None:
            return None
        layout.append("#")
        numbers.append(parsed)
    return TensorRepr(text, "".join(layout), tuple(numbers), "".join(rest.split()))


def pieces(text: str, floats: bool = False) -> list[Piece]:
    """`text` split into plain text and tensor reprs (and Python floats, with `floats`)."""
    found: list[Piece] = []
    at = 0
    for match in _TENSOR_START.finditer(text):
        if match.start() < at:
            continue
        end = _closing(text, match.end())
        if end is None:
            break
        parsed = parse_tensor(text[match.start():end + 1])
        if parsed is None:
            continue
        found += _text_pieces(text[at:match.start()], floats)
        found.append(parsed)
        at = end + 1
    found += _text_pieces(text[at:], floats)
    return found


def _text_pieces(text: str, floats: bool) -> list[Piece]:
    if not floats:
        return [text] if text else []
    found: list[Piece] = []
    at = 0
    for match in _FLOAT.finditer(text):
        parsed = number(match.group())
        if parsed is None:
            continue
        if match.start() > at:
            found.append(text[at:match.start()])
        found.append(parsed)
        at = match.end()
    if at < len(text):
        found.append(text[at:])
    return found


@dataclass(frozen=True)
class Mismatch:
    """Why a pair of tensor reprs (or floats) differs, for the diff's note."""

    expected: str
    actual: str
    reason: str


def _tensor_mismatch(expected: TensorRepr, actual: TensorRepr, tolerance: Tolerance) -> str | None:
    if expected.layout != actual.layout:
        return "the shape or the cut of the values differs"
    if expected.suffix != actual.suffix:
        return f"{expected.suffix.lstrip(',') or 'no dtype, grad or device'} expected, {actual.suffix.lstrip(',') or 'none'} printed"
    for index, (a, b) in enumerate(zip(expected.numbers, actual.numbers, strict=True)):
        if not tolerance.close(a, b):
            return f"value {index + 1} of {len(expected.numbers)}: {a.text} expected, {b.text} printed ({_beyond(a, b, tolerance)})"
    return None


def _beyond(a: Number, b: Number, tolerance: Tolerance) -> str:
    if a.exact and b.exact:
        return "integers compare exactly"
    if isinstance(a.value, complex) or isinstance(b.value, complex) or not (math.isfinite(a.value) and math.isfinite(b.value)):
        return "not the same number"
    allowed = tolerance.atol + tolerance.rtol * abs(a.value) + (a.unit + b.unit) / 2
    return f"off by {abs(a.value - b.value):.3g}; allowed: {allowed:.3g}"


def reconcile(expected: str, actual: str, tolerance: Tolerance) -> tuple[str, list[Mismatch]]:
    """`actual` with every tensor repr (and float) that agrees with its counterpart in
    `expected` replaced by that counterpart's text, and the pairs that do not agree. When
    the two do not have the same pieces in the same order, `actual` comes back as it is."""
    want, got = pieces(expected, tolerance.floats), pieces(actual, tolerance.floats)
    if len(want) != len(got) or any(type(a) is not type(b) for a, b in zip(want, got, strict=True)):
        return actual, []
    out: list[str] = []
    mismatches: list[Mismatch] = []
    for a, b in zip(want, got, strict=True):
        if isinstance(a, str) and isinstance(b, str):
            out.append(b)
        elif isinstance(a, TensorRepr) and isinstance(b, TensorRepr):
            reason = _tensor_mismatch(a, b, tolerance)
            out.append(a.text if reason is None else b.text)
            if reason is not None:
                mismatches.append(Mismatch(a.text, b.text, reason))
        elif isinstance(a, Number) and isinstance(b, Number):
            agree = tolerance.close(a, b)
            out.append(a.text if agree else b.text)
            if not agree:
                mismatches.append(Mismatch(a.text, b.text, _beyond(a, b, tolerance)))
    return "".join(out), mismatches
