"""Whether a command's kernel runs sandboxed, from its options: `--sandbox[=MODE]`, else
config.toml's `sandbox = "strict"` (or "best-effort"), unless `--no-sandbox`; the folders it
may write in (`--sandbox-writable DIR`) and its limits (`--sandbox-limit NAME=VALUE`). Shared by
the app, replay, graph and check; the kernel confines itself (gradrepl/inkernel/sandbox.py)."""

from __future__ import annotations

import argparse
import os
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

from gradrepl.protocol import MEMORY_LIMIT_ENV, SANDBOX_ENV, SandboxRequest, default_memory_limit, size_from_text
from gradrepl.protocol.sandbox import LIMIT_NAMES, SANDBOX_MODES

CONFIG_KEY = "sandbox"


def add_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--sandbox", nargs="?", const="strict", choices=SANDBOX_MODES, metavar="MODE",
        help="confine the kernel (Linux Landlock and limits): it may write only under the script's folder and "
        "--sandbox-writable folders, open no TCP connection; best-effort: where this Linux cannot confine "
        f"something, say so and run anyway (the default, strict, refuses to start); config.toml: {CONFIG_KEY} = \"strict\"",
    )
    parser.add_argument("--no-sandbox", action="store_true", help=f"not sandboxed, whatever config.toml's {CONFIG_KEY} says")
    parser.add_argument("--sandbox-writable", action="append", default=[], type=Path, metavar="DIR",
                        help="with --sandbox: a folder the kernel may also write in (repeatable)")
    defaults = default_request()
    parser.add_argument(
        "--sandbox-limit", action="append", default=[], type=_limit, metavar="NAME=VALUE",
        help=f"with --sandbox: cpu=SECONDS a cell may use (default {defaults.cpu_seconds:g}), processes=N it may start "
        f"(default {defaults.processes}), open-files=N (default {defaults.open_files}), file-size=SIZE (default 4G); "
        "--memory-limit defaults to half the machine's memory",
    )


def default_request(mode: str = "strict", writable: tuple[str, ...] = ()) -> SandboxRequest:
    """The limits without --sandbox-limit; torch starts a thread per core, so processes grows with them."""
    return SandboxRequest(mode, writable, processes=max(256, 4 * (os.cpu_count() or 1)))  # type: ignore[arg-type]


def _limit(text: str) -> tuple[str, float]:
    name, equals, value = text.partition("=")
    field = LIMIT_NAMES.get(name.strip())
    if not equals or field is None:
        raise argparse.ArgumentTypeError(f"not NAME=VALUE with NAME one of {', '.join(LIMIT_NAMES)}: {text!r}")
    try:
        number = size_from_text(value) if field == "file_size" else float(value)
    except ValueError as err:
        raise argparse.ArgumentTypeError(f"{name}: {err}") from None
    if not 0 < number < float("inf") or (field in ("processes", "open_files") and number != int(number)):
        raise argparse.ArgumentTypeError(f"{name}: not a {'whole ' if field != 'cpu_seconds' else ''}number above 0: {value!r}")
    return field, number


def chosen(args: argparse.Namespace) -> bool:
    """Settle args.sandbox (the config's default applies where no option says otherwise) and
    check what goes with it; False once what is wrong is on stderr."""
    attached = bool(getattr(args, "existing", None) or getattr(args, "server", None))
    if args.no_sandbox and args.sandbox is not None:
        return _problem("--sandbox and --no-sandbox: one or the other")
    if args.sandbox is None and not args.no_sandbox:
        configured = _configured()
        if configured is False:
            return False
        if configured is not None and attached:
            print(f"gradrepl: config.toml's {CONFIG_KEY} = \"{configured}\" confines kernels gradrepl starts, "
                  "not this one (--existing/--server)", file=sys.stderr)
        elif configured is not None:
            args.sandbox = configured
        args.sandbox_configured = configured
    if args.sandbox is None and (args.sandbox_writable or args.sandbox_limit):
        option = "--sandbox-writable" if args.sandbox_writable else "--sandbox-limit"
        return _problem(f"{option} goes with --sandbox")
    if args.sandbox is not None and attached:
        return _problem("--sandbox confines a kernel gradrepl starts: not with --existing or --server")
    missing = next((folder for folder in args.sandbox_writable if not folder.is_dir()), None)
    if args.sandbox is not None and missing is not None:
        return _problem(f"--sandbox-writable {missing}: no such folder")
    return True


def kernel_env(args: argparse.Namespace, folders: list[Path]) -> dict[str, str]:
    """The kernel's environment entries for --sandbox (none without it): the request, and the
    default memory limit unless --memory-limit gave one."""
    if args.sandbox is None:
        return {}
    writable = tuple(sorted({str(folder.resolve()) for folder in [*folders, *args.sandbox_writable]}))
    limits: dict[str, Any] = {field: value if field == "cpu_seconds" else int(value) for field, value in args.sandbox_limit}
    request = replace(default_request(args.sandbox, writable), **limits)
    env = {SANDBOX_ENV: request.to_json()}
    if args.memory_limit is None:
        env[MEMORY_LIMIT_ENV] = str(default_memory_limit())
    return env


def toggle_env(args: argparse.Namespace, folders: list[Path]) -> dict[str, str]:
    """What the app's toggle adds to the kernel's environment to turn the sandbox on: as
    kernel_env, in the mode given or configured (strict without one)."""
    mode = args.sandbox or getattr(args, "sandbox_configured", None) or "strict"
    return kernel_env(argparse.Namespace(**{**vars(args), "sandbox": mode}), folders)


def _configured() -> str | bool | None:
    """config.toml's sandbox mode: None without one, False (said) when it is not a mode."""
    from gradrepl.ui.state.config import Settings, default_path

    path = default_path()
    settings = Settings(path)
    if settings.error and _mentions(path, CONFIG_KEY):  # it may say sandbox = "strict": never run unconfined on a guess
        return _problem(f"{settings.error.removesuffix(' defaults used.').rstrip(':')}: whether to sandbox is not known "
                        "(fix it, or say --sandbox or --no-sandbox)")
    value = settings.value(CONFIG_KEY)
    if value is None or value is False:
        return None
    if value is True:
        return "strict"
    if value not in SANDBOX_MODES:
        return _problem(f"{path}: {CONFIG_KEY} should be \"strict\", \"best-effort\" or false, not {value!r}")
    return str(value)


def _mentions(path: Path, word: str) -> bool:
    try:
        return word in path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return True  # unreadable: it may


def _problem(line: str) -> bool:
    print(f"gradrepl: {line}", file=sys.stderr)
    return False
