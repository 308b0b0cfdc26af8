"""Command line: `gradrepl [SCRIPT]` opens the app, `gradrepl replay SCRIPT` runs headless.

Start-up is kept light: the kernel process is launched as soon as the script has been
read, before jupyter_client (or anything else heavy) is imported here.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path
from typing import Any

from gradrepl import __version__

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be more than 0 seconds: {text!r}")
    return value


def replay_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="gradrepl replay",
        description="Run a script's cells (# %% percent format, sphinx-gallery or .ipynb) "
        "in a fresh kernel and print a notebook-like transcript.",
    )
    parser.add_argument("script", help="the script or notebook to run")
    parser.add_argument("--json", action="store_true", help="print one JSON object per cell per line")
    parser.add_argument("--keep-going", action="store_true", help="run the remaining cells after a failing one")
    parser.add_argument("--cell-timeout", type=_seconds, metavar="SECONDS", help="interrupt a cell that runs longer")
    _backward_log_option(parser)
    return parser


def app_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="gradrepl",
        description="A terminal REPL for watching PyTorch autograd.",
        epilog="Headless: gradrepl replay SCRIPT [--json] [--keep-going] (see gradrepl replay --help).",
    )
    parser.add_argument("script", nargs="?", help="a script to resume: its cells run, then the session goes on")
    parser.add_argument("--cell-timeout", type=_seconds, metavar="SECONDS", help="interrupt a cell that runs longer")
    _backward_log_option(parser)
    parser.add_argument("--version", action="version", version=f"gradrepl {__version__}")
    return parser


def _backward_log_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--no-backward-log", action="store_true",
        help="do not trace backward calls (each traced call costs a little; the inspector still works)",
    )


def _kernel_env(args: argparse.Namespace) -> dict[str, str]:
    from gradrepl.kernel.process import BACKWARD_LOG_ENV

    return {BACKWARD_LOG_ENV: "0"} if args.no_backward_log else {}


def run_replay(argv: list[str]) -> int:
    args = replay_parser().parse_args(argv)
    from gradrepl.cells import ScriptError, read_script

    try:
        script = read_script(Path(args.script))
    except ScriptError as err:
        print(err, file=sys.stderr)
        return EXIT_USAGE
    if not script.code_cells:
        print(f"gradrepl: '{args.script}' has no code cells: nothing to run", file=sys.stderr)
        return EXIT_OK

    from gradrepl.replay import replay, writer_for
    from gradrepl.kernel.session import KernelError, KernelSession

    session = KernelSession(cwd=script.path.parent if script.path else None, env=_kernel_env(args))
    session.launch()
    write = writer_for(args.json, script.path)

    async def main() -> int:
        try:
            return await replay(script, write, keep_going=args.keep_going, cell_timeout=args.cell_timeout, session=session)
        finally:
            await session.shutdown()

    try:
        return asyncio.run(main())
    except KernelError as err:
        print(err, file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt:
        print("gradrepl: interrupted", file=sys.stderr)
        return 130


def run_app(argv: list[str]) -> int:
    args = app_parser().parse_args(argv)
    script = None
    if args.script is not None:
        from gradrepl.cells import ScriptError, read_script

        try:
            script = read_script(Path(args.script))
        except ScriptError as err:
            print(err, file=sys.stderr)
            return EXIT_USAGE
    from gradrepl.kernel.process import launch_kernel

    terminal = _keep_enter_distinct()
    cwd = script.path.parent if script is not None and script.path is not None else None
    process = launch_kernel(cwd=cwd, extra_env=_kernel_env(args))  # loads while Textual starts
    try:
        from gradrepl.app.app import GradReplApp

        app = GradReplApp(script, process=process, cwd=cwd, cell_timeout=args.cell_timeout)
        _end_with_the_terminal(app, process)
        code = app.run()
    finally:
        if process.is_alive():
            process.kill()
        process.cleanup()
        _restore_terminal(terminal)
    return code if isinstance(code, int) else EXIT_OK


def _end_with_the_terminal(app: Any, process: Any) -> None:
    """A closed terminal (SIGHUP) or a plain `kill` (SIGTERM) ends the kernel too: it runs
    in a session of its own, so nothing else would stop it."""
    import signal

    def stop(signum: int, frame: object) -> None:
        if process.is_alive():
            process.kill()
        process.cleanup()
        app.call_later(app.exit, 128 + signum)

    for signum in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, stop)


def _keep_enter_distinct() -> list | None:
    """Until Textual switches the terminal to raw mode, the tty turns Enter (CR) into LF,
    which the app reads as Ctrl+J (a newline) instead of Enter (run). Stop that now, so keys
    typed during start-up keep their meaning; the saved settings come back at exit."""
    try:
        import termios

        fd = sys.stdin.fileno()
        saved = termios.tcgetattr(fd)
        changed = termios.tcgetattr(fd)
        changed[0] &= ~termios.ICRNL
        termios.tcsetattr(fd, termios.TCSANOW, changed)
        return saved
    except (ImportError, OSError, ValueError, AttributeError):  # not a terminal
        return None


def _restore_terminal(saved: list | None) -> None:
    if saved is None:
        return
    import termios

    try:
        termios.tcsetattr(sys.stdin.fileno(), termios.TCSADRAIN, saved)
    except (OSError, ValueError):
        pass


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "replay":
        return run_replay(argv[1:])
    return run_app(argv)


if __name__ == "__main__":
    sys.exit(main())
