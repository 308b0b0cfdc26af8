"""A cell's report costs what changed, not what exists: a small tensor described in the last
report, whose metadata and values (and its grad's) are all as they were, keeps that
description: the very dict sent, with the names and grad history it was sent with
(snapshot.py puts in new ones when those changed).

What "as they were" means cannot rest on `_version` alone: a write through `.data` or a numpy
view of the tensor does not count in it. So the values are compared, as bytes, every report:
all the cached tensors of one dtype are copied into one flat buffer by a single torch call, and
that buffer is compared with the last report's in another (then, only if they differ, which
tensors did). The metadata (requires_grad, grad_fn, version, shape, the grad's dtype and
shape ...) is read from the tensor each time and compared as a tuple.
"""

from __future__ import annotations

from itertools import accumulate
from typing import Any

from gradrepl.inkernel.values import MEMO_LIMIT

_Key = tuple[Any, ...]
Naming = tuple[str, tuple[str, ...], Any]  # a tensor's name in the report, its other names, where the name came from


class Kept:
    """A tensor's description as the last report sent it, and what it was made from."""

    __slots__ = ("info", "key", "naming", "stamp")

    def __init__(self, key: _Key, info: dict[str, Any], naming: Naming, stamp: int) -> None:
        self.key = key  # the tensor's metadata then
        self.info = info  # never changed once sent
        self.naming = naming
        self.stamp = stamp  # its grad history's (HealthBook.stamp)


class _Values:
    """The last report's values of one dtype: one flat buffer, and which tensor has which part."""

    __slots__ = ("bytes", "ends", "order")

    def __init__(self, flat: Any, order: list[int], ends: list[int]) -> None:
        self.bytes = flat  # 1-D, integers of the values' element size (int64 pairs for complex128)
        self.order = order  # the serials of the parts, in buffer order (a tensor, then its grad)
        self.ends = ends  # where each part ends, in the buffer's elements


class _Layout:
    """Which of a report's tensors are cached, their parts (a tensor's values, its grad's)
    grouped by dtype: made again only when the tensors or their metadata differ from the last
    report's."""

    __slots__ = ("cached", "groups", "keys", "numbers")

    def __init__(self, torch: Any, tensors: list[Any], numbers: list[int], keys: list[_Key | None],
                 described: dict[int, Kept]) -> None:
        self.numbers = numbers
        self.keys = keys
        self.cached: dict[int, _Key] = {}  # serial -> metadata key, of the cached tensors
        self.groups: dict[Any, tuple[list[int], list[int]]] = {}  # dtype -> (serials, picks)
        for index, (t, number, key) in enumerate(zip(tensors, numbers, keys, strict=True)):
            if key is None:
                continue
            before = described.get(number)
            if (before is None or before.key != key) and not _cacheable(torch, t, key):
                continue
            self.cached[number] = key
            self._add(key[1], number, index)
            if key[-1] is not None:
                self._add(key[-1][0], -number, ~index)  # a grad's part: its tensor's serial, negated

    def _add(self, dtype: Any, part: int, pick: int) -> None:
        group = self.groups.get(dtype)
        if group is None:
            group = self.groups[dtype] = ([], [])
        group[0].append(part)
        group[1].append(pick)  # tensors[pick], or tensors[~pick].grad


class DescribedCache:
    def __init__(self) -> None:
        self._described: dict[int, Kept] = {}  # serial -> the last report's description
        self._values: dict[Any, _Values] = {}  # dtype -> the last report's values
        self._layout: _Layout | None = None  # the last report's
        self._next: dict[int, Kept] = {}  # what the report being made will leave, once it ends
        self._next_values: dict[Any, _Values] = {}
        self._next_layout: _Layout | None = None
        self.last: Any = None  # snapshot.py's: what the last report that ended sent, and how its names grouped

    def unchanged(self, torch: Any, tensors: list[Any], numbers: list[int]) -> dict[int, Kept]:
        """For the tensors (with their serials) whose metadata and values are as in the last
        report: serial -> its description then. Every cacheable tensor's values are taken for
        the next report."""
        self._next = {}
        keys = [_metadata_key(t) for t in tensors]
        layout = self._layout
        if layout is None or layout.numbers != numbers or layout.keys != keys:
            layout = _Layout(torch, tensors, numbers, keys, self._described)
        changed: set[int] = set()
        values: dict[Any, _Values] = {}
        for dtype, (order, picks) in layout.groups.items():
            found = [tensors[pick] if pick >= 0 else tensors[~pick].grad for pick in picks]
            # Compared as integers of the element's size: bitwise (-0.0 is not 0.0, a nan equals
            # itself), and torch.equal is some hundred times slower on bytes than on int64.
            flat = torch._utils._flatten_dense_tensors(found)
            if len(found) == 1:  # then it is the tensor itself, viewed flat: kept as it is now, not as it will be
                flat = flat.clone()
            size = flat.element_size()
            as_int = flat.view({1: torch.uint8, 2: torch.int16, 4: torch.int32}.get(size, torch.int64))
            scale = size // as_int.element_size()
            ends = list(accumulate([p.numel() * scale for p in found]))
            values[dtype] = _Values(as_int, order, ends)
            changed |= _changed(torch, self._values.get(dtype), values[dtype])
        self._next_values, self._next_layout = values, layout
        described = self._described
        if layout is self._layout and not changed:
            return dict(described)  # what the last report kept: each was kept with the key it has now
        return {
            number: before for number, key in layout.cached.items()
            if (before := described.get(number)) is not None and before.key == key
            and number not in changed and -number not in changed
        }

    def keep(self, number: int, info: dict[str, Any], naming: Naming, stamp: int) -> None:
        """`info`, as this report sends it, for the next report."""
        layout = self._next_layout
        key = layout.cached.get(number) if layout is not None else None
        if key is not None and info.get("note") is None:
            self._next[number] = Kept(key, info, naming, stamp)

    def keep_again(self, number: int, kept: Kept) -> None:
        """What `unchanged` gave for `number`, sent again as it was."""
        self._next[number] = kept

    def keep_all(self, reused: dict[int, Kept]) -> None:
        self._next.update(reused)

    def end_report(self, sent: Any = None) -> None:
        """The report is made: what it kept is what the next one compares with. (A report cut
        short, by an interrupt, leaves the last one's.)"""
        self._described, self._values, self._layout, self.last = self._next, self._next_values, self._next_layout, sent
        self._next, self._next_values, self._next_layout = {}, {}, None

    def forget(self) -> None:
        """Describe everything afresh next time (the cache's own reading failed)."""
        self._described, self._values, self._layout, self.last = {}, {}, None, None
        self._next, self._next_values, self._next_layout = {}, {}, None


def _metadata_key(t: Any) -> _Key | None:
    """What the description says of `t` besides its values (and its grad's), as a tuple; None for
    a tensor whose metadata cannot be read so (a strided nested tensor's shape, an inference
    tensor's version: it is not cached). Where the values live is not in it: they are compared
    themselves. Its grad_fn stands as what names it, not as the node: a key kept between
    reports must not hold a deleted tensor's graph (and what it saved) alive."""
    try:
        grad_fn, retains = t.grad_fn, t.retains_grad
        grad = t.grad if grad_fn is None or retains else None  # a non-leaf's .grad warns
        grad_key = None if grad is None else (grad.dtype, grad.shape, grad.is_cpu, grad.layout)
        return (type(t), t.dtype, t.shape, t._version, t.requires_grad, retains, _node_kind(grad_fn), t.is_cpu, grad_key)
    except Exception:
        return None


def _node_kind(node: Any) -> Any:
    """What walker.node_name reads of a node (None for a leaf): its type, or a C++ node's name."""
    if node is None:
        return None
    kind = type(node)
    return node.name() if kind.__name__ == "CppFunction" else kind


def _cacheable(torch: Any, t: Any, key: _Key) -> bool:
    """Whether `t` (with `key`) is cached: on the CPU, strided, neither nested nor quantized, at
    most MEMO_LIMIT elements, its grad likewise. Not read again for a tensor cached with the same
    key: what is not in it cannot change for one tensor object (`.data =` takes only a tensor of
    the same kind)."""
    grad_key = key[-1]
    if grad_key is not None and not (grad_key[2] and grad_key[3] is torch.strided and _small(t.grad)):
        return False
    return key[7] and t.layout is torch.strided and _small(t)


def _small(t: Any) -> bool:
    return not t.is_nested and not t.is_quantized and t.numel() <= MEMO_LIMIT


def _changed(torch: Any, before: _Values | None, now: _Values) -> set[int]:
    """The parts (serials) whose bytes differ from the last report's, or that it did not have."""
    if before is None:
        return set(now.order)
    if before.order == now.order and before.ends == now.ends:
        if torch.equal(before.bytes, now.bytes):
            return set()
        differing = (before.bytes != now.bytes).nonzero().flatten()
        ends = torch.tensor(now.ends)
        return {now.order[i] for i in torch.searchsorted(ends, differing, right=True).unique().tolist()}
    place = {number: index for index, number in enumerate(before.order)}
    changed = set()
    for index, number in enumerate(now.order):
        old = place.get(number)
        start, end = now.ends[index - 1] if index else 0, now.ends[index]
        if old is None:
            changed.add(number)
            continue
        old_start, old_end = before.ends[old - 1] if old else 0, before.ends[old]
        if old_end - old_start != end - start or not torch.equal(before.bytes[old_start:old_end], now.bytes[start:end]):
            changed.add(number)
    return changed
