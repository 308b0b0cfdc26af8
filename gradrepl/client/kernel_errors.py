"""What a kernel session raises."""

from __future__ import annotations


class KernelError(RuntimeError):
    """The kernel could not be started or reached; str() is one line for the user."""


class KernelUnreachable(KernelError):
    """The server to run the kernel on could not be used (bad input: a command exits 2)."""


class KernelDied(Exception):
    """The kernel ended (or stopped answering) while a reply was awaited."""
