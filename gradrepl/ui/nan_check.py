"""The app's --nan-check toggle (a palette entry): the probe checks every op's result from the
next cell on, and a restarted kernel keeps the choice. Births are said under their cell."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from gradrepl.ui.app import GradReplApp


def toggle_nan_check(app: GradReplApp) -> None:
    app.run_worker(_toggle(app), group="nan-check", exclusive=True)


async def _toggle(app: GradReplApp) -> None:
    wanted = not app.nan_check
    problem = await app.runner.set_nan_check(wanted)
    if problem is not None:
        app.notify(f"NaN check not {'turned on' if wanted else 'turned off'}: {problem}", severity="warning", timeout=5)
        return
    app.nan_check = wanted
    if wanted:
        app.notify("NaN check on: from the next cell, every op's result and every backward node's gradients are "
                   "checked; the op that made the first nan or inf is named under its cell.", timeout=6)
    else:
        app.notify("NaN check off.", timeout=3)
