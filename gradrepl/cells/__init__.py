r"""Reading and writing cell scripts losslessly.

A *cell script* is Python text split into cells. Readable formats:

* **percent** (as jupytext writes it): a cell starts at a marker line ``# %%``
  or ``#%%`` at column 0, optionally with a kind (``[markdown]``, ``[md]``,
  ``[raw]``), a title and ``key=value`` metadata whose values are JSON, e.g.
  ``# %% Training loop tags=["slow"]``. Markdown and raw cells are commented
  lines: ``# text`` reads as ``text`` and a bare ``#`` as an empty line.
* **plain**: Python text without markers is one code cell.
* **sphinx** (sphinx-gallery examples, read only): the module docstring is a
  markdown cell; a line of 20 or more ``#`` starts a block whose comment lines
  form a markdown cell, followed by a code cell.
* **nbconvert** (a notebook exported as Python, read only): ``# In[3]:`` or
  ``# In[ ]:`` starts a code cell in a file without ``# %%`` markers; the comment
  paragraphs nbconvert writes for markdown cells are markdown cells.
* **ipynb** (read only), through nbformat; a cell or output of the wrong shape is a
  ScriptError naming the cell.

Files named as documents or data (``.md``, ``.rst``, ``.txt``, ``.json``, ...:
``reading.NOT_SCRIPTS``) are not read; a UTF-16 or UTF-32 file is named as such.

Percent text round-trips byte for byte: each parsed cell keeps the exact text
of its block (marker line and trailing blank lines included) in ``Cell.raw``,
and ``render_percent`` writes that text back whenever it still reads as the
cell's kind, source, title and metadata. Cells without a usable ``raw`` (new
cells, or cells changed with ``edited``) are rendered fresh and separated from
their neighbours by one blank line. A UTF-8 byte order mark is kept in
``Script.preamble`` so writing back is byte-identical.

Line numbers
    ``Cell.line`` is the 1-based file line of the first line of ``Cell.source``.
    Blank lines at the start and end of a percent, plain or sphinx cell are not
    part of its source, so ``line`` is the first non-blank line after the
    marker; an empty cell gets the line right after its marker. Notebook cells
    have no file lines: their lines count from 1 within each cell, so ``line``
    is 1.

Text before the first marker
    Comments, blank lines and a module docstring before the first marker are
    ``Script.preamble``. If that text holds other code (imports, say), it is a
    code cell without a marker instead, so the code is not silently skipped.

A marker line inside a cell
    ``# %%`` at column 0 always starts a cell. When a cell is rendered fresh,
    a source line that would read as a marker gets a backslash after its
    ``#`` (``#\ %% not a cell``), and reading removes one such backslash, so
    the source reads back unchanged (``#\ %%`` itself is written ``#\\ %%``).

Percent limits
    A code cell's leading and trailing blank lines are not kept
    (``new_code_cell`` strips them). A title or metadata that cannot be read
    back from a marker line makes ``render_percent`` raise ``ValueError``.
"""

from __future__ import annotations

from gradrepl.cells.exported import parse_exported
from gradrepl.cells.model import BOM, Cell, CellKind, Metadata, Script, ScriptError, ScriptFormat, edited, new_code_cell
from gradrepl.cells.notebook import parse_ipynb
from gradrepl.cells.percent import parse_percent, render_percent, write_percent
from gradrepl.cells.reading import describe_os_error, read_script
from gradrepl.cells.skips import marked_skipped, skip_reason
from gradrepl.cells.sphinx import parse_sphinx

__all__ = [
    "BOM", "Cell", "CellKind", "Metadata", "Script", "ScriptError", "ScriptFormat", "describe_os_error", "edited",
    "marked_skipped", "new_code_cell", "parse_exported", "parse_ipynb", "parse_percent", "parse_sphinx", "read_script", "render_percent", "skip_reason", "write_percent",
]
