"""Resuming a script in the app: its cells queued in order (skipped ones shown, not run), its
Markdown between them, and the status line's "resuming: cell n of N" until the last has run."""

from __future__ import annotations

from typing import TYPE_CHECKING

from gradrepl.render.text import counted
from gradrepl.ui.widgets.status_line import StatusLine

if TYPE_CHECKING:
    from gradrepl.cells import Script
    from gradrepl.ui.app import GradReplApp


def resume(app: GradReplApp, script: Script) -> None:
    from gradrepl.cells import skip_reason
    from gradrepl.ui.state.worksheet import SKIPPED_ON_RESUME

    app.resume_total = len(script.code_cells)
    for cell in script.cells:
        if cell.kind == "markdown":
            app.transcript.add_markdown(cell.source)
        elif cell.kind == "code" and (reason := skip_reason(cell)) is not None:
            skipped = app.worksheet.add(cell.source, cell.line)
            skipped.state, skipped.reason = "cancelled", SKIPPED_ON_RESUME + reason
            app.transcript.add_cell(skipped).add_note(f"not run ({skipped.reason})")
        elif cell.kind == "code":
            app.submit(cell.source, script_line=cell.line)
    show_progress(app)


def show_progress(app: GradReplApp) -> None:
    """The status line while a resumed script runs; one notice when its last cell has run."""
    status = app.query_one(StatusLine)
    total = app.resume_total
    if not total:
        status.progress = ""
        return
    script_cells = [c for c in app.worksheet.cells if c.from_script and not c.rerun][:total]
    done = sum(1 for c in script_cells if c.state not in ("queued", "running"))
    failures = [c for c in script_cells if c.state in ("error", "timeout", "died")]
    failed = ", ".join(str(c.number) for c in failures)
    if done < total:
        status.progress = f"resuming: cell {done + 1} of {total}" + (f" (failed: {failed})" if failed else "")
        return
    status.progress = ""
    app.resume_total = 0
    name = app.path_label() or "the script"
    from gradrepl.ui.state.worksheet import SKIPPED_ON_RESUME

    skipped = sum(1 for c in script_cells if c.state == "cancelled" and (c.reason or "").startswith(SKIPPED_ON_RESUME))
    also = f", {skipped} skipped" if skipped else ""
    if failures:
        app.notify(f"Resumed {name}: {counted(done - skipped, 'cell')}{also}, {len(failures)} failed (cell {failed}).",
                   severity="warning", timeout=8)
    else:
        app.notify(f"Resumed {name}: {counted(done - skipped, 'cell')} ran{also}.", timeout=5)
