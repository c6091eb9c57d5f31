"""A throwaway JupyterLab server for the browser test: own port, token, root folder, settings and config."""

from __future__ import annotations

import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LabServer:
    """``jupyter lab`` on 127.0.0.1 serving ``root``; a context manager that always stops it and its kernels.

    Settings and config live under ``root`` too, so the user's own JupyterLab setup (workspaces,
    themes, extensions' settings) neither changes the test nor is changed by it.  Every cell
    stays in the DOM (``windowingMode: none``) and the news pop-up is off, so that what the test
    looks for is on the page.
    """

    def __init__(self, root: Path, *, env: dict | None = None, start_timeout: float = 90.0):
        self.root, self.start_timeout = Path(root), start_timeout
        self.port, self.token = free_port(), secrets.token_hex(16)
        self.env = {**os.environ, **(env or {})}
        self.log_path = self.root / ".lab" / "server.log"
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def page_url(self, path: str) -> str:
        return f"{self.url}/lab/tree/{path}?token={self.token}"

    def _write_settings(self) -> tuple[Path, Path]:
        lab = self.root / ".lab"
        config, settings = lab / "config", lab / "settings"
        (config / "labconfig").mkdir(parents=True, exist_ok=True)
        (config / "labconfig" / "page_config.json").write_text(json.dumps(
            {"disabledExtensions": {"@jupyterlab/apputils-extension:announcements": True}}))
        tracker = settings / "@jupyterlab" / "notebook-extension"
        tracker.mkdir(parents=True, exist_ok=True)
        (tracker / "tracker.jupyterlab-settings").write_text(json.dumps({"windowingMode": "none"}))
        return config, settings

    def __enter__(self) -> "LabServer":
        config, settings = self._write_settings()
        env = {**self.env, "JUPYTER_CONFIG_DIR": str(config)}
        command = [sys.executable, "-m", "jupyter", "lab", "--no-browser", "--allow-root", "--ServerApp.ip=127.0.0.1",
                   f"--port={self.port}", "--port-retries=0", f"--ServerApp.token={self.token}",
                   f"--ServerApp.root_dir={self.root}", f"--LabApp.user_settings_dir={settings}",
                   f"--LabApp.workspaces_dir={self.root / '.lab' / 'workspaces'}"]
        self.log = open(self.log_path, "w")
        # A session of its own: stopping it reaches the kernels it started, and nothing else.
        self.process = subprocess.Popen(command, env=env, stdout=self.log, stderr=subprocess.STDOUT,
                                        start_new_session=True)
        try:
            self._wait_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def _wait_ready(self):
        deadline = time.monotonic() + self.start_timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"jupyter lab exited with {self.process.returncode}:\n{self.log_text()}")
            try:
                with urllib.request.urlopen(f"{self.url}/api/status?token={self.token}", timeout=2):
                    return
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                time.sleep(0.5)
        raise RuntimeError(f"jupyter lab did not answer within {self.start_timeout} s:\n{self.log_text()}")

    def log_text(self, tail: int = 4000) -> str:
        return self.log_path.read_text(errors="replace")[-tail:] if self.log_path.exists() else ""

    def _api(self, method: str, path: str):
        request = urllib.request.Request(f"{self.url}/api/{path}", method=method,
                                         headers={"Authorization": f"token {self.token}"})
        with urllib.request.urlopen(request, timeout=20) as response:
            body = response.read()
        return json.loads(body) if body else None

    def shutdown_kernels(self):
        """Shut every kernel down through the API: kernels run in sessions of their own
        (jupyter_client's choice), out of reach of a signal to the server's group."""
        for kernel in self._api("GET", "kernels"):
            self._api("DELETE", f"kernels/{kernel['id']}")

    def stop(self):
        if self.process is None:
            return
        if self.process.poll() is None:
            try:
                self.shutdown_kernels()
            except (urllib.error.URLError, ConnectionError, TimeoutError, ValueError):
                pass  # the server's own shutdown below still stops its kernels
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=10)
        self.log.close()
        self.process = None

    def __exit__(self, *exc):
        self.stop()
