"""The app's --sandbox toggle (a palette entry). A kernel cannot leave its sandbox, nor enter
one once user code has run in it: turning it on or off restarts the kernel (asking first when
tensors are named), and every later kernel keeps the choice. The status line says "sandboxed"."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from gradrepl.ui.app import GradReplApp


def toggle_sandbox(app: GradReplApp) -> None:
    entries = app.sandbox_entries
    if entries is None:
        app.notify("The sandbox confines a kernel gradrepl starts, not one it attached to.", severity="warning", timeout=5)
        return
    wanted = not app.sandboxed

    def switch() -> None:
        env = {key: value for key, value in (app.runner.env or {}).items() if key not in entries}
        env.update(entries if wanted else {})
        app.runner.env = env
        if app.runner.session is not None:
            app.runner.session.env = env
        app.sandboxed = wanted
        app.notify(f"Sandbox {'on' if wanted else 'off'}: the kernel restarts {'confined' if wanted else 'unconfined'}.", timeout=4)

    from gradrepl.ui.restarting import ask_to_restart

    ask_to_restart(app, before=switch, why=f" to turn the sandbox {'on' if wanted else 'off'}")
