"""A cell's report costs what changed, not what exists: a small tensor described in the last
report, whose metadata and values (and its grad's) are all as they were, keeps that
description.

What "as they were" means cannot rest on `_version` alone: a write through `.data` or a numpy
view of the tensor does not count in it. So the values are compared, as bytes, every report:
all the cached tensors of one dtype are copied into one flat buffer by a single torch call, and
that buffer is compared with the last report's in another (then, only if they differ, which
tensors did). The metadata (requires_grad, grad_fn, version, shape, the grad's dtype and
shape ...) is read from the tensor each time and compared as a tuple.
"""

from __future__ import annotations

from typing import Any

from gradrepl.inkernel.values import MEMO_LIMIT

_Key = tuple[Any, ...]


class _Kept:
    """The last report's values of one dtype: one flat buffer, and which tensor has which part."""

    __slots__ = ("bytes", "order", "spans")

    def __init__(self, flat: Any, order: list[int], spans: list[tuple[int, int]]) -> None:
        self.bytes = flat  # 1-D, integers of the values' element size (int64 pairs for complex128)
        self.order = order  # the serials of the parts, in buffer order (a tensor, then its grad)
        self.spans = spans  # (start, end) of each part, in the buffer's elements


class DescribedCache:
    def __init__(self) -> None:
        self._described: dict[int, tuple[_Key, dict[str, Any]]] = {}  # serial -> (metadata key, description)
        self._kept: dict[Any, _Kept] = {}  # dtype -> the last report's values
        self._next: dict[int, tuple[_Key, dict[str, Any]]] = {}
        self._keys: dict[int, _Key] = {}  # this report's metadata keys, by serial

    def unchanged(self, torch: Any, tensors: list[Any], serial: Any) -> dict[int, dict[str, Any]]:
        """For the tensors whose metadata and values are as in the last report: id -> a copy of
        its description then. Every cacheable tensor's values are taken for the next report."""
        self._next = {}
        parts: dict[Any, list[tuple[int, Any]]] = {}  # dtype -> (serial, tensor or grad) in order
        keys: dict[int, _Key] = {}
        numbers = [serial(t) for t in tensors]
        for t, number in zip(tensors, numbers, strict=True):
            key = _metadata_key(torch, t)
            if key is None:
                continue
            keys[number] = key
            parts.setdefault(t.dtype, []).append((number, t))
            if key[-1] is not None:
                parts.setdefault(key[-1][1], []).append((-number, t.grad))  # a grad's part: its tensor's serial, negated
        changed_parts: set[int] = set()
        kept: dict[Any, _Kept] = {}
        for dtype, found in parts.items():
            # Compared as integers of the element's size: bitwise (-0.0 is not 0.0, a nan equals
            # itself), and torch.equal is some hundred times slower on bytes than on int64.
            flat = torch._utils._flatten_dense_tensors([p for _, p in found])
            if len(found) == 1:  # then it is the tensor itself, viewed flat: kept as it is now, not as it will be
                flat = flat.clone()
            size = flat.element_size()
            as_int = flat.view({1: torch.uint8, 2: torch.int16, 4: torch.int32}.get(size, torch.int64))
            scale = size // as_int.element_size()
            spans, start = [], 0
            for _, p in found:
                end = start + p.numel() * scale
                spans.append((start, end))
                start = end
            kept[dtype] = _Kept(as_int, [number for number, _ in found], spans)
            changed_parts |= _changed(torch, self._kept.get(dtype), kept[dtype])
        self._kept = kept
        reused: dict[int, dict[str, Any]] = {}
        for t, number in zip(tensors, numbers, strict=True):
            key = keys.get(number)
            before = self._described.get(number)
            if key is None or before is None or before[0] != key or number in changed_parts or -number in changed_parts:
                continue
            reused[id(t)] = dict(before[1])
            self._next[number] = before
        self._keys = keys
        return reused

    def keep(self, number: int, info: dict[str, Any]) -> None:
        """`info`, as described now (before names are put in), for the next report."""
        key = self._keys.get(number)
        if key is not None and info.get("note") is None:
            self._next[number] = (key, dict(info))

    def end_report(self) -> None:
        self._described, self._next, self._keys = self._next, {}, {}

    def forget(self) -> None:
        """Describe everything afresh next time (the cache's own reading failed)."""
        self._described, self._next, self._keys, self._kept = {}, {}, {}, {}


def _metadata_key(torch: Any, t: Any) -> _Key | None:
    """What the description says of `t` besides its values (and its grad's), as a tuple; None for
    a tensor not cached (not on the CPU, not strided, quantized, larger than MEMO_LIMIT, a grad
    likewise). Where the values live is not in it: they are compared themselves."""
    if not _cacheable(torch, t):
        return None
    grad_key = None
    if t.is_leaf or t.retains_grad:
        grad = t.grad
        if grad is not None:
            if not _cacheable(torch, grad):
                return None
            grad_key = (grad.dtype, grad.shape)
    return (type(t), t.dtype, t.shape, t._version, t.requires_grad, t.is_leaf, t.retains_grad, t.grad_fn, grad_key)


def _cacheable(torch: Any, t: Any) -> bool:
    return t.layout is torch.strided and not t.is_nested and not t.is_quantized and t.device.type == "cpu" and t.numel() <= MEMO_LIMIT


def _changed(torch: Any, before: _Kept | None, now: _Kept) -> set[int]:
    """The parts (serials) whose bytes differ from the last report's, or that it did not have."""
    if before is None:
        return set(now.order)
    if before.order == now.order and before.spans == now.spans:
        if torch.equal(before.bytes, now.bytes):
            return set()
        differing = (before.bytes != now.bytes).nonzero().flatten()
        ends = torch.tensor([end for _, end in now.spans])
        return {now.order[i] for i in torch.searchsorted(ends, differing, right=True).unique().tolist()}
    place = {number: index for index, number in enumerate(before.order)}
    changed = set()
    for index, number in enumerate(now.order):
        old = place.get(number)
        start, end = now.spans[index]
        if old is None:
            changed.add(number)
            continue
        old_start, old_end = before.spans[old]
        if old_end - old_start != end - start or not torch.equal(before.bytes[old_start:old_end], now.bytes[start:end]):
            changed.add(number)
    return changed
