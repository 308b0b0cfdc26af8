"""The app theme: the one remembered in the config file at start, the input's token colours
following it (a light theme gets light-background colours), a new choice remembered."""

from __future__ import annotations

from typing import TYPE_CHECKING

from gradrepl.ui.widgets.code_input import CodeInput

if TYPE_CHECKING:
    from gradrepl.ui.app import GradReplApp


def apply_remembered_theme(app: GradReplApp) -> None:
    wanted = app.settings.theme
    if wanted is not None and wanted != app.theme:
        if wanted in app.available_themes:
            app.theme = wanted
        else:
            app.notify(f"Config: no theme called {wanted!r}; the default is used.", severity="warning", timeout=8)
    _warn_settings(app)
    app.query_one(CodeInput).follow_theme(app.current_theme.dark)

    def changed(theme: object) -> None:
        app.query_one(CodeInput).follow_theme(app.current_theme.dark)
        app.settings.remember_theme(app.theme)
        _warn_settings(app)

    app.theme_changed_signal.subscribe(app, changed)


def _warn_settings(app: GradReplApp) -> None:
    if app.settings.error:
        app.notify(app.settings.error, severity="warning", timeout=8)
        app.settings.error = None
