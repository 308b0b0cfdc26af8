"""Restarting the kernel (F8, the palette, the kernel-died dialog) and naming cells the way
the transcript shows them across restarts: the app's kernel-control side, kept out of app.py."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from gradrepl.render.text import counted

if TYPE_CHECKING:
    from gradrepl.ui.app import GradReplApp
    from gradrepl.ui.state.worksheet import SessionCell

Replay = list[tuple[str, "int | None"]]  # (source, line in the script) of cells to run again


def ask_to_restart(app: GradReplApp, before: Callable[[], None] | None = None, why: str = "") -> None:
    """Restart at once, or ask first when there are named tensors to lose; `before` runs just
    before the restart (not if the user stays), `why` says what for (" to turn the sandbox on")."""
    if not app.tensors:
        if before is not None:
            before()
        app.restart_kernel()
        return
    from gradrepl.ui.screens.confirm_restart import ConfirmRestartScreen

    def chosen(choice: str | None) -> None:
        if choice == "restart":
            if before is not None:
                before()
            app.restart_kernel()

    app.push_screen(ConfirmRestartScreen(len(app.tensors), why), chosen)


async def restart(app: GradReplApp, replay: Replay | None) -> None:
    """A fresh kernel; then, if given, these cells run again (as "run all" runs them)."""
    for cell in app.runner.cancel_queued():
        app.transcript.update_prompt(cell)
    await app.runner.restart()
    app.kernel_first_cell = len(app.worksheet.cells)
    app.worksheet.restarted_at = app.kernel_first_cell
    if app.runner.state != "dead":
        app.tensors = {}
        app.inspector.show((), highlight_changes=False)
        label = f"kernel restarted: {counted(len(replay), 'cell')} run again" if replay else "kernel restarted: a fresh namespace"
        app.transcript.add_separator(label)  # In [n] counts from 1 again below it
        app.backward_log.add_separator(label)
        if replay:
            app.notify(f"Kernel restarted: running {counted(len(replay), 'cell')} again.", timeout=4)
            for source, line in replay:
                app.submit(source, script_line=line, rerun=True)
        else:
            app.notify("Kernel restarted: a fresh namespace.", timeout=4)
    app.resume_total = 0
    app.show_progress()
    app.update_status()


def offer_restart(app: GradReplApp, cell: SessionCell) -> None:
    """The kernel died in `cell`: the dialog offers a fresh kernel, with or without the cells
    that had run well in the one that died."""
    from gradrepl.ui.screens.kernel_died import KernelDiedScreen

    good = good_cells_before(app, cell)

    def chosen(choice: str | None) -> None:
        if choice == "replay":
            app.restart_kernel(replay=[(c.source, c.script_line) for c in good])
        elif choice == "restart":
            app.restart_kernel()

    app.push_screen(KernelDiedScreen(shown_name(app, cell), cell.reason or "no reason given", len(good)), chosen)


def good_cells_before(app: GradReplApp, cell: SessionCell) -> list[SessionCell]:
    """The cells that ran without error in the kernel that `cell` killed, in order."""
    return [c for c in app.worksheet.cells[app.kernel_first_cell:] if c.number < cell.number and c.state == "ok"]


def shown_name(app: GradReplApp, cell: SessionCell) -> str:
    """The cell as the transcript names it: In [n], or (no count: the kernel died before
    replying) by the numbered cell of the same kernel above it."""
    if cell.execution_count is not None:
        return f"In [{cell.execution_count}]"
    before = [c for c in app.worksheet.cells[app.kernel_first_cell:] if c.number < cell.number]
    counted = [c for c in before if c.execution_count is not None]
    if counted:
        return f"the cell after In [{counted[-1].execution_count}]"
    return "the first cell after the restart" if app.kernel_first_cell else "the first cell"
