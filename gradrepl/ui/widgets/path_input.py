"""A one-line input for a file name whose keys act in the order they were typed.

Textual runs a widget's key bindings (Ctrl+U, Left, Home, Enter...) only once the key has
bubbled back up, by which time the keys typed behind it may have been inserted: Ctrl+U then
a name, typed fast, ends with an empty field. Here bindings run as their key arrives.
"""

from __future__ import annotations

from textual import events
from textual.widgets import Input


class PathInput(Input):
    async def _on_key(self, event: events.Key) -> None:
        bindings = self._bindings.key_to_bindings.get(event.key)
        if bindings and not event.is_printable:
            event.stop()
            event.prevent_default()
            await self.run_action(bindings[0].action)
            return
        await super()._on_key(event)
