"""A kernel gradrepl did not start (`--existing CONNECTION_FILE`): its connection file found
and checked, and the code that puts the probe into it.

The probe's code is sent with the request that installs it (the kernel side of gradrepl,
inkernel/ and protocol/, about 80 kB compressed), so a kernel on another machine needs
nothing installed but ipykernel: the modules load from that copy, under their own names,
unless the kernel has gradrepl imported already (a second front end, or one gradrepl
started), which is then used if it is the same version.
"""

from __future__ import annotations

import base64
import functools
import json
import os
import stat
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gradrepl

REQUIRED_KEYS = ("transport", "ip", "shell_port", "iopub_port", "stdin_port", "control_port", "hb_port", "key")
ATTACH_RESULT = "gradrepl_attach"  # the user expression that reads what attach() said


class ConnectionFileError(Exception):
    """A connection file that cannot be used; str() is one line for the user."""


@dataclass(frozen=True)
class Existing:
    """A running kernel to attach to, and whether quitting shuts it down."""

    connection_file: Path
    connection_info: dict[str, Any] = field(repr=False)  # holds the key: never printed
    shutdown_on_exit: bool = False


def find_existing(name: str, shutdown_on_exit: bool = False) -> Existing:
    """The kernel `name` names: a path, or a file name (or glob) in Jupyter's runtime
    directory, as `jupyter console --existing` finds it. Checked to be private to this user."""
    from jupyter_client import find_connection_file

    try:
        path = Path(find_connection_file(name))
    except OSError:
        raise ConnectionFileError(f"gradrepl: no kernel connection file {name!r} (a path, or a name in "
                                  "Jupyter's runtime directory: jupyter --runtime-dir)") from None
    return Existing(path, read_private(path), shutdown_on_exit)


def read_private(path: Path) -> dict[str, Any]:
    """The connection info in `path`, refused when another user could read it (its key lets
    anyone who has it run code in the kernel) or when it is not a connection file."""
    try:
        status = path.stat()
        text = path.read_text(encoding="utf-8")
    except OSError as err:
        raise ConnectionFileError(f"gradrepl: cannot read '{path}': {err.strerror or err}") from None
    if status.st_uid != os.getuid():
        raise ConnectionFileError(f"gradrepl: '{path}' belongs to another user: its key is not private to you")
    if status.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise ConnectionFileError(f"gradrepl: '{path}' can be read by other users (mode {stat.S_IMODE(status.st_mode):04o}), "
                                  f"and its key runs code in the kernel: chmod 600 '{path}'")
    try:
        info = json.loads(text)
    except ValueError:
        info = None
    missing = [key for key in REQUIRED_KEYS if not isinstance(info, dict) or key not in info]
    if missing:
        raise ConnectionFileError(f"gradrepl: '{path}' is not a kernel connection file (no {', '.join(missing)})")
    assert isinstance(info, dict)
    return info


_SHIPPED = ("inkernel", "protocol")


@functools.cache
def _payload() -> str:
    """The kernel side of gradrepl as {module: (is_package, source)}, compressed."""
    root = Path(gradrepl.__file__).resolve().parent
    sources: dict[str, tuple[bool, str]] = {"gradrepl": (True, (root / "__init__.py").read_text(encoding="utf-8"))}
    for package in _SHIPPED:
        for path in sorted((root / package).glob("*.py")):
            name = f"gradrepl.{package}" if path.stem == "__init__" else f"gradrepl.{package}.{path.stem}"
            sources[name] = (path.stem == "__init__", path.read_text(encoding="utf-8"))
    return base64.b64encode(zlib.compress(json.dumps(sources).encode("utf-8"), 9)).decode("ascii")


# Run in a namespace of its own (exec'd with a fresh dict), so the user's sees nothing of it.
_BOOTSTRAP = '''
import base64, importlib.abc, importlib.machinery, json, sys, zlib
version, settings = {version!r}, {settings!r}
present = sys.modules.get("gradrepl")
if present is None:
    sources = json.loads(zlib.decompress(base64.b64decode({payload!r})))

    class ShippedGradrepl(importlib.abc.MetaPathFinder, importlib.abc.Loader):
        """gradrepl's kernel side, from the copy the front end sent."""

        def find_spec(self, name, path=None, target=None):
            if name not in sources:
                return None
            return importlib.machinery.ModuleSpec(name, self, origin="<gradrepl>/" + name, is_package=sources[name][0])

        def create_module(self, spec):
            return None

        def exec_module(self, module):
            exec(compile(sources[module.__name__][1], module.__spec__.origin, "exec"), module.__dict__)

    sys.meta_path.insert(0, ShippedGradrepl())
elif getattr(present, "__version__", None) != version:
    raise ImportError("this kernel has gradrepl " + str(getattr(present, "__version__", "?")) + " loaded, not " + version)
from gradrepl.inkernel import attach
attach.last_attach = json.dumps(attach.attach(settings))
'''


def install_request(settings: dict[str, str]) -> tuple[str, dict[str, str]]:
    """The code of a silent execute request that installs the probe, and the user
    expression that reads what it said (see attach_result)."""
    code = _BOOTSTRAP.format(version=gradrepl.__version__, settings=dict(settings), payload=_payload())
    return f"exec({code!r}, {{}})", {ATTACH_RESULT: "__import__('sys').modules['gradrepl.inkernel.attach'].last_attach"}


def attach_result(reply: dict[str, Any] | None) -> dict[str, Any]:
    """What attach() said, from the install request's execute_reply; {"error": ...} when it failed."""
    import ast

    if reply is None:
        return {"error": "the kernel did not answer"}
    content = reply.get("content") or {}
    if content.get("status") != "ok":
        return {"error": f"{content.get('ename', 'error')}: {content.get('evalue', '')}".strip()}
    found = (content.get("user_expressions") or {}).get(ATTACH_RESULT) or {}
    if found.get("status") != "ok":
        return {"error": f"{found.get('ename', 'no answer')}: {found.get('evalue', '')}".strip()}
    try:
        result = json.loads(ast.literal_eval((found.get("data") or {}).get("text/plain", "")))
    except (ValueError, SyntaxError):
        return {"error": "the kernel's answer could not be read"}
    return result if isinstance(result, dict) else {"error": "the kernel's answer could not be read"}
