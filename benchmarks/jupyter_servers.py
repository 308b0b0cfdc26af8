"""Real Jupyter servers for the tests and the bench: a Jupyter Server or a Kernel Gateway on
127.0.0.1, a free port and a fresh token, its config, data and runtime folders its own."""

from __future__ import annotations

import json
import os
import secrets
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class RunningServer:
    def __init__(self, kind: str, folder: Path) -> None:
        self.kind = kind
        self.port = free_port()
        self.token = secrets.token_hex(16)
        self.url = f"http://127.0.0.1:{self.port}"
        home = folder / f"{kind}-home"
        home.mkdir()
        env = {**os.environ, "JUPYTER_CONFIG_DIR": str(home / "config"), "JUPYTER_DATA_DIR": str(home / "data"),
               "JUPYTER_RUNTIME_DIR": str(home / "runtime"), "JUPYTER_TOKEN": self.token}
        if kind == "jupyter-server":
            argv = [sys.executable, "-m", "jupyter_server", "--no-browser", "--ServerApp.ip=127.0.0.1",
                    f"--ServerApp.port={self.port}", "--ServerApp.port_retries=0", f"--ServerApp.root_dir={folder}",
                    "--ServerApp.allow_root=True"]
        else:
            argv = [sys.executable, "-m", "kernel_gateway", "--KernelGatewayApp.ip=127.0.0.1",
                    f"--KernelGatewayApp.port={self.port}", "--KernelGatewayApp.port_retries=0",
                    f"--KernelGatewayApp.auth_token={self.token}", "--JupyterWebsocketPersonality.list_kernels=True"]
        self.log = open(home / "server.log", "wb")  # noqa: SIM115  # closed in stop()
        self.process = subprocess.Popen(argv, cwd=folder, env=env, stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 60
        while not self._answers():  # a server says it is up on no channel but its port
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"the {kind} at {self.url} did not answer within 60 s (log: {self.log.name})")
            time.sleep(0.05)

    def _answers(self) -> bool:
        assert self.process.poll() is None, f"the {self.kind} exited: {self.log.name}"
        try:
            self.rest("/api")
            return True
        except (OSError, urllib.error.URLError):
            return False

    def rest(self, path: str, method: str = "GET", body: Any = None) -> Any:
        request = urllib.request.Request(f"{self.url}{path}", method=method,
                                         data=None if body is None else json.dumps(body).encode(),
                                         headers={"Authorization": f"token {self.token}", "Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=30) as response:
            text = response.read()
        return json.loads(text) if text else None

    def kernels(self) -> list[str]:
        return [kernel["id"] for kernel in self.rest("/api/kernels")]

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.log.close()
