"""Saving the session as a script (Ctrl+S, Save as) and quitting (Ctrl+Q), which asks first
when cells are unsaved: the app's file side, kept out of app.py."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from gradrepl.ui.widgets.status_line import StatusLine

if TYPE_CHECKING:
    from gradrepl.ui.app import GradReplApp


def save(app: GradReplApp) -> None:
    """To the file the session came from or was saved to; Save as when there is none."""
    path = app.worksheet.path
    if path is None:
        ask_where_to_save(app)
        return
    save_to(app, path)


def ask_where_to_save(app: GradReplApp, *, then_quit: bool = False) -> None:
    from gradrepl.ui.screens.save_as import SaveAsScreen

    def chosen(path: Path | None) -> None:
        if path is not None and save_to(app, path) and then_quit:
            app.run_worker(app.quit_now())

    app.push_screen(SaveAsScreen(app.worksheet.suggested_path, app.worksheet.path), chosen)


def save_to(app: GradReplApp, path: Path) -> bool:
    """Writes the session's cells to `path` unless the file changed on disk since it was read;
    the journal then follows the file. Every failure is one notice."""
    worksheet = app.worksheet
    if worksheet.changed_on_disk(path):
        app.notify(f"Not saved: {path} changed on disk since it was loaded; use Save as.", severity="error", timeout=8)
        return False
    try:
        worksheet.save(path)
    except OSError as err:
        app.notify(f"Not saved: {err.strerror or err} ({path})", severity="error", timeout=8)
        return False
    app.journal.saved(len(worksheet.typed_cells), path)
    app.update_status()
    app.query_one(StatusLine).path = app.path_label()
    count = len(worksheet.document())
    app.notify(f"Saved {count} cell{'s' if count != 1 else ''} to {app.path_label()}.", timeout=4)
    return True


async def quit_or_ask(app: GradReplApp) -> None:
    unsaved = app.worksheet.unsaved
    if unsaved <= 0:
        await app.quit_now()
        return

    def chosen(choice: str | None) -> None:
        if choice == "quit":
            app.run_worker(app.quit_now())
        elif choice == "save":
            if app.worksheet.path is not None:
                if save_to(app, app.worksheet.path):
                    app.run_worker(app.quit_now())
            else:
                ask_where_to_save(app, then_quit=True)

    from gradrepl.ui.screens.confirm_quit import ConfirmQuitScreen

    app.push_screen(ConfirmQuitScreen(unsaved), chosen)
