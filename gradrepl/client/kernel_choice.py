"""Which kernel a command works in, from its options: one it starts (the default), a running
one (`--existing CONNECTION_FILE`), or one on a Jupyter Server or gateway (`--server URL`,
with `--token`, else JUPYTER_TOKEN, else `server_token` in config.toml, and `--kernel-id`
to attach to a kernel the server already runs). Shared by the app, replay, graph and check."""

from __future__ import annotations

import argparse
import os
import stat
import sys
from typing import Any

TOKEN_ENV = "JUPYTER_TOKEN"
CONFIG_TOKEN = "server_token"


def add_options(parser: argparse.ArgumentParser, shared: str = "") -> None:
    """--existing, --server and what goes with them; `shared`: what attaching means for this command."""
    where = parser.add_mutually_exclusive_group()
    where.add_argument(
        "--existing", metavar="CONNECTION_FILE",
        help="attach to a running kernel (a connection file: a path, or a name in `jupyter --runtime-dir`, "
        "as jupyter console --existing) instead of starting one; the probe is put into it silently, and "
        f"quitting leaves it running{'; ' + shared if shared else ''}",
    )
    where.add_argument(
        "--server", metavar="URL",
        help="run the kernel on a Jupyter Server, JupyterHub server, Kernel Gateway or Enterprise Gateway "
        f"(its token: --token, else ${TOKEN_ENV}, else {CONFIG_TOKEN} in config.toml); a kernel it starts "
        f"is shut down when done{'; ' + shared if shared else ''}",
    )
    parser.add_argument("--token", metavar="TOKEN", help=f"with --server: its token (visible in `ps`: ${TOKEN_ENV} is not)")
    parser.add_argument("--kernel-id", metavar="ID", help="with --server: attach to this kernel, left running when done")
    parser.add_argument("--kernel-name", metavar="NAME", default="python3",
                        help="with --server: the kernel spec to start (default python3)")
    parser.add_argument("--shutdown-on-exit", action="store_true",
                        help="with --existing or --kernel-id: shut the kernel down when done")


def chosen(args: argparse.Namespace) -> Any:
    """The kernel to attach to (client.existing.Existing or client.remote.Server), None for one
    of the command's own, or False once what is wrong is on stderr."""
    server = getattr(args, "server", None)
    if args.existing is None and server is None:
        for given, name in ((args.shutdown_on_exit, "--shutdown-on-exit"), (args.token, "--token"), (args.kernel_id, "--kernel-id")):
            if given:
                print(f"gradrepl: {name} goes with --existing or --server", file=sys.stderr)
                return False
        return None
    if args.memory_limit is not None:
        print("gradrepl: --memory-limit is set when gradrepl starts the kernel: not with --existing or --server", file=sys.stderr)
        return False
    if args.existing is not None:
        from gradrepl.client.existing import ConnectionFileError, find_existing

        try:
            return find_existing(args.existing, args.shutdown_on_exit)
        except ConnectionFileError as err:
            print(err, file=sys.stderr)
            return False
    return _server(args, str(server))


def one_kernel(choice: Any) -> bool:
    """Whether every lesson must run in the same kernel: a running one, or one the server already runs."""
    return choice is not None and choice is not False and getattr(choice, "kernel_id", "running") is not None


def _server(args: argparse.Namespace, url: str) -> Any:
    from gradrepl.client.remote import Server, ServerError, check_url

    try:
        url = check_url(url)
    except ServerError as err:
        print(err, file=sys.stderr)
        return False
    token = args.token or os.environ.get(TOKEN_ENV) or _config_token()
    if token is False:
        return False
    choice = Server(url, str(token or ""), args.kernel_id, args.kernel_name, True if args.shutdown_on_exit else None)
    warning = choice.cleartext_warning()
    if warning:
        print(warning, file=sys.stderr)
    return choice


def _config_token() -> str | bool | None:
    """`server_token` from config.toml: None without one, False (said) when others can read the file."""
    from gradrepl.ui.state.config import Settings, default_path

    path = default_path()
    token = Settings(path).text(CONFIG_TOKEN)
    if token is None:
        return None
    if path.stat().st_mode & (stat.S_IRWXG | stat.S_IRWXO):
        print(f"gradrepl: {path} holds {CONFIG_TOKEN} but other users can read it: chmod 600 '{path}'", file=sys.stderr)
        return False
    return token
