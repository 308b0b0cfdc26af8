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
nothing it does can take the app down.

| Key | In the code input |
|---|---|
| Enter | run the cell when it is complete (as IPython decides), else a new line |
| Ctrl+J or Alt+Enter | always a new line |
| Ctrl+R | always run |
| Up / Down | on the first / last line: older / newer history (kept across sessions) |
| Tab | complete from the live kernel; indent at the start of a line |

| Key | Anywhere |
|---|---|
| Ctrl+C | interrupt the running cell |
| Ctrl+S | save the session's cells as a `# %%` script |
| F2 / F3 / F4 | go to the tensor inspector / backward log / code input |
| Ctrl+P | command palette: run all, interrupt, restart kernel, clear, save, toggle panes, themes |
| F1 | this help |
| Ctrl+Q | quit (asks first when cells are unsaved) |

**Tensor inspector**: every tensor your code has named (also in lists, tuples, dicts and
`nn.Module` parameters). Cells in yellow changed in the last cell. Enter on a row shows its
data, grad, stats, grad_fn and version; **g** shows its autograd graph as a tree: nodes,
the tensors each saved for backward (in red when modified in place since: backward will
fail there), and the leaves by your names.

**Backward log**: one entry per `.backward()` or `torch.autograd.grad` call, also from
inside functions and library code: the root and its value, the `gradient` passed (the `v`
of a vector-Jacobian product), the graph nodes it ran through, and each `.grad` it wrote:
*fresh* (there was none) or *accumulated* (autograd adds into a grad already there). Run a
backward cell three times and watch the grad grow. Up / Down pick an entry, Enter opens it:
for a non-scalar root, the Jacobian J, v, and the vᵀ·J that landed in the grad.

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

