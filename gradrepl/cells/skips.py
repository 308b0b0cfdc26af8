"""Cells saved so that running the script again does not run them: jupytext-compatible
metadata on the marker line, `# %% tags=["skip-execution"] gradrepl_skipped="interrupted"`
(the tag myst-nb and nbval skip; the reason is gradrepl's own key)."""

from __future__ import annotations

import json

from gradrepl.cells.model import Cell, edited

SKIP_TAG = "skip-execution"
REASON_KEY = "gradrepl_skipped"


def skip_reason(cell: Cell) -> str | None:
    """Why `cell` is not to be run ("interrupted", "before restart", ...), or None to run it."""
    metadata = dict(cell.metadata)
    if SKIP_TAG not in tags_of(metadata.get("tags")):
        return None
    return metadata.get(REASON_KEY) or "skip-execution"


def marked_skipped(cell: Cell, reason: str) -> Cell:
    """`cell` with the skip tag and `reason` added; other metadata kept."""
    metadata = dict(cell.metadata)
    tags = tags_of(metadata.get("tags"))
    if SKIP_TAG not in tags:
        tags.append(SKIP_TAG)
    metadata["tags"] = json.dumps(tags, ensure_ascii=False)
    metadata[REASON_KEY] = reason
    if tuple(metadata.items()) == tuple(cell.metadata):
        return cell
    return edited(cell, metadata=tuple(metadata.items()))


def tags_of(value: str | None) -> list[str]:
    """The tags in a cell's `tags` metadata (its JSON text); [] when it has none or they are unreadable."""
    if value is None:
        return []
    try:
        tags = json.loads(value)
    except ValueError:
        return []
    return [t for t in tags if isinstance(t, str)] if isinstance(tags, list) else []
