"""The command palette's entries (Ctrl+P) and the actions only it offers: a screenshot saved
to the working directory and a copy of the last cell's output."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

from textual.app import SystemCommand

from gradrepl.render.text import counted

if TYPE_CHECKING:
    from textual.screen import Screen
    from textual.widget import Widget

    from gradrepl.ui.app import GradReplApp


def system_commands(app: GradReplApp, screen: Screen, inherited: Iterable[SystemCommand]) -> Iterable[SystemCommand]:
    """gradrepl's entries, then Textual's own, with Screenshot saving where the user works and
    Maximize offered only for a whole pane (Textual offers it for whatever has focus)."""
    yield SystemCommand("Run all", "Run every cell of the session again, in order", app.action_run_all)
    yield SystemCommand("Interrupt", "Stop the running cell (Ctrl+C)", app.action_interrupt)
    yield SystemCommand("Restart kernel", "A fresh kernel: names and tensors are gone", app.action_restart_kernel)
    yield SystemCommand("Clear transcript", "Empty the transcript and the backward log", app.action_clear_transcript)
    yield SystemCommand("Save", "Write the session's cells as a # %% script (Ctrl+S)", app.action_save)
    yield SystemCommand("Save as", "Write the session's cells to another file", app.action_save_as)
    yield SystemCommand("Toggle tensor inspector", "Show or hide the tensors", lambda: app.action_toggle_pane("inspector"))
    yield SystemCommand("Toggle backward log", "Show or hide the backward log", lambda: app.action_toggle_pane("backward-log"))
    yield SystemCommand("Copy last output", "Copy what the last cell printed or returned", app.action_copy_output)
    yield SystemCommand(f"NaN check: turn {'off' if app.nan_check else 'on'}",
                        "Name the op that made the first nan or inf (--nan-check), from the next cell",
                        app.action_toggle_nan_check)
    if app.sandbox_entries is not None:
        yield SystemCommand(f"Sandbox: turn {'off' if app.sandboxed else 'on'}",
                            "Confine the kernel (--sandbox): writes only under the script's folder, no TCP; restarts it",
                            app.action_toggle_sandbox)
    yield SystemCommand("Help", "Keys and panes (F1)", app.action_help)
    pane = focused_pane(app, screen)
    if pane is not None and screen.maximized is None:  # Textual offers it only for some widgets
        yield SystemCommand("Maximize", f"Fill the screen with the {pane.border_title or 'pane'}",
                            lambda: setattr(screen, "maximized", pane))
    for command in inherited:
        if command.title == "Screenshot":
            yield SystemCommand("Screenshot", "Save an SVG picture of the screen in the working directory",
                                app.action_save_screenshot)
        elif command.title != "Maximize":
            yield command


def focused_pane(app: GradReplApp, screen: Screen) -> Widget | None:
    """The pane that had focus on `screen` (while the palette is open, its own input has the app's)."""
    focused = screen.focused
    for pane_id in ("transcript", "backward-log", "inspector"):
        if focused is not None and any(w.id == pane_id for w in focused.ancestors_with_self):
            return app.query_one(f"#{pane_id}")
    return None


def save_screenshot(app: GradReplApp) -> None:
    try:
        path = Path(app.save_screenshot(path=str(Path.cwd())))
    except OSError as err:
        app.notify(f"No screenshot: {err.strerror or err}", severity="error", timeout=6)
        return
    app.notify(f"Screenshot saved to {path.name}.", timeout=4)


def copy_last_output(app: GradReplApp) -> None:
    for cell in reversed(app.worksheet.cells):
        text = output_text(cell.events)
        if text:
            app.copy_to_clipboard(text)
            app.notify(f"Copied the output of {app.shown_name(cell)} ({counted(len(text.splitlines()), 'line')}).", timeout=3)
            return
    app.notify("No cell has printed anything yet.", timeout=3)


def output_text(events: Iterable[object]) -> str:
    """A cell's output as plain text, as the transcript shows it (no colours)."""
    from gradrepl.client.events import Display, Error, Result, Stream, strip_ansi

    parts = []
    for event in events:
        if isinstance(event, Stream):
            parts.append(event.text)
        elif isinstance(event, Result | Display):
            parts.append(event.text + "\n")
        elif isinstance(event, Error):
            parts.append(strip_ansi("\n".join(event.traceback)) + "\n" if event.traceback else f"{event.ename}: {event.evalue}\n")
    return "".join(parts).rstrip("\n")
