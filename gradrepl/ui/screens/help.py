"""F1: every key, the panes, and where to read more."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Markdown

HELP = """\
# gradrepl

Type PyTorch code in the input at the bottom. It runs in a separate Jupyter kernel, so
nothing it does can take the app down. Typing anywhere outside a dialog goes to the input
(a key the focused pane uses, listed below, is the pane's).

| Key | In the code input |
|---|---|
| Enter | run the cell when it is complete (as IPython decides), else a new line |
| Ctrl+J or Alt+Enter | always a new line |
| Ctrl+R | always run |
| Up / Down | on the first / last line: older / newer history (kept across sessions) |
| Tab | complete from the live kernel; indent at the start of a line |
| Backspace | in indentation: remove one level |
| Escape | clear the input (the draft stays in the history) |
| Ctrl+U | delete to the start of the line |
| Ctrl+D | quit, when the input is empty (asks first when cells are unsaved) |
| PageUp / PageDown | scroll the transcript |

| Key | Anywhere |
|---|---|
| Ctrl+C | interrupt the running cell; else copy the selection, or clear the input |
| Ctrl+S | save the session's cells as a `# %%` script |
| F1 | this help |
| F2 / F3 / F4 / F5 | go to the tensors / backward log / input / transcript (its latest output) |
| F8 | restart the kernel (asks first when tensors are named) |
| Ctrl+L | clear the transcript and the backward log (the cells are kept) |
| Ctrl+End | show the transcript's latest output |
| Tab / Shift+Tab | next / previous pane; in the transcript, its next / previous output |
| Ctrl+P | command palette: run all, restart, copy last output, save as, toggle panes, themes |
| Ctrl+Q | quit (asks first when cells are unsaved) |

| Key | In a pane |
|---|---|
| End | transcript: its latest output |
| Escape | transcript: back to the input |
| Enter or Space | transcript: fold or unfold a long output |
| Left / Right | transcript: scroll a wide output (Home / End: its ends) |
| Up / Down | tensors, backward log: previous / next row or entry |
| Enter | tensors: a tensor's detail, or fold / unfold a module; backward log: open the entry, or unfold a group of alike calls; graph: open a folded run (× N) or go to a node |
| Space | tensors: fold / unfold a module |
| **/** | tensors: filter by name (type it; Enter keeps it, Escape clears it) |
| Home / End | tensors: first / last row |
| **g** | tensors or a tensor's detail: its autograd graph (of a leaf: the graphs that use it) |
| **e** / **c** | autograd graph: expand / collapse all; Left / Right fold / unfold a node (Left again: its parent) |
| **s** | an opened backward log entry: step through its chain rule, node by node (Right or **n** next, Left or **p** previous, Home / End) |
| Escape or **q** | close a detail, graph or this help (Enter too for a detail) |

**Tensor inspector**: every tensor your code has named (also in lists, tuples, dicts and
`nn.Module` parameters), one row per tensor with its other names beside it (`x (= c)`). A
module's parameters fold under a row of its own: count, values, the norm of all its grads.
A new tensor's row, and the cells that changed in the last cell, are highlighted (bold on
the theme's yellow) and scrolled into view. The graph shows nodes, the tensors each saved for backward (in red
when modified in place since: backward will fail there), and the leaves by your names.

**Backward log**: one entry per `.backward()` or `torch.autograd.grad` call, also from
inside functions and library code: the root and its value, the `gradient` passed (the `v`
of a vector-Jacobian product), the graph nodes it ran through, and each `.grad` it wrote:
*fresh* (there was none) or *accumulated* (autograd adds into a grad already there). An
opened entry of a non-scalar root shows the Jacobian J, v, and the vᵀ·J that landed in the grad;
**s** there steps through the call node by node: what each node received and passed on, its
rule with the numbers, the tensors it saved, and a grad split by the paths that brought it.

`gradrepl SCRIPT` resumes a script: its cells run first, then you go on from there.
`gradrepl replay SCRIPT` runs one headless. Press Escape to close this help.
"""


class HelpScreen(ModalScreen[None]):
    BINDINGS = [Binding("escape,f1,q", "dismiss", "Close")]
    DEFAULT_CSS = """
    HelpScreen { align: center middle; }
    HelpScreen > VerticalScroll {
        width: 90%; max-width: 100; height: 90%;
        border: round $accent; background: $surface; padding: 0 1;
    }
    """

    def compose(self) -> ComposeResult:
        with VerticalScroll():
            yield Markdown(HELP)

