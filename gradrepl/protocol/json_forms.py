"""The plain-JSON building blocks every record of the protocol is made of."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

Json = dict[str, Any]


def as_tuple(items: Sequence[Any] | None) -> tuple[Any, ...]:
    return tuple(items) if items else ()


def optional(cls: Any, data: Any) -> Any:
    return None if data is None else cls.from_json(data)


def nested_tuple(value: Any) -> Any:
    """Lists (nested) as tuples, so a record holding a preview or a matrix stays hashable. The
    nesting is rectangular: a list holds lists or it holds none, but for "…" cut marks between
    (a 300-parameter model's report reads in a third of the time for it)."""
    if not isinstance(value, (list, tuple)):
        return value
    if value and (isinstance(value[0], (list, tuple)) or isinstance(value[-1], (list, tuple))):
        return tuple([nested_tuple(v) for v in value])
    return tuple(value)


def nested_list(value: Any) -> Any:
    if isinstance(value, (list, tuple)):
        return [nested_list(v) for v in value]
    return value
