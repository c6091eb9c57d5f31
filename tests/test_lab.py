"""`make lab`, the README's main command, really serves JupyterLab, also as root (containers, cloud notebooks)."""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
START_TIMEOUT = 90.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def group_members(pgid: int) -> list[str]:
    """Live (non-zombie) processes of process group ``pgid``, as "pid command" lines."""
    proc = Path("/proc")
    if not proc.is_dir():  # no /proc (macOS): only "is anything left in the group"
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return []
        except PermissionError:
            pass
        return [f"process group {pgid}"]
    members = []
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
        except OSError:
            continue  # gone meanwhile
        state, _ppid, pgrp = stat[stat.rindex(")") + 2:].split()[:3]  # after "pid (comm) "
        if int(pgrp) == pgid and state != "Z":
            members.append(f"{entry.name} {cmdline}")
    return members


def wait_group(process: subprocess.Popen, timeout: float) -> bool:
    """Wait until nothing is left in ``process``'s group (make exits on SIGTERM at once, jupyter takes
    a moment to shut down: wait for the group, not for make); True when it is empty."""
    deadline = time.monotonic() + timeout
    while group_members(process.pid):
        if time.monotonic() > deadline:
            return False
        process.poll()  # reap make as soon as it exits
        time.sleep(0.2)
    return True


def stop_group(process: subprocess.Popen, timeout: float = 20.0) -> list[str]:
    """SIGTERM to the whole group (make and jupyter), SIGKILL after ``timeout``; returns the processes
    that are still there (should be none)."""
    pgid = process.pid  # start_new_session: the group's id is make's pid
    for sig, wait in ((signal.SIGTERM, timeout), (signal.SIGKILL, 10.0)):
        try:
            os.killpg(pgid, sig)
        except ProcessLookupError:
            break
        if wait_group(process, wait):
            break
    process.wait(timeout=10)
    return group_members(pgid)


@pytest.mark.timeout(240)
@pytest.mark.skipif(os.name != "posix", reason="make lab and process groups are POSIX only")
def test_make_lab_serves_jupyterlab_even_as_root(tmp_path):
    make = shutil.which("make")
    if make is None:
        pytest.skip("make is not on PATH")
    # the environment this test runs in, built by make (its stamp file): make lab reuses it, never rebuilds
    env_dir = Path(sys.prefix)
    stamp = env_dir / ".m2v_lab-installed"
    if not stamp.exists() or not (env_dir / "bin" / "jupyter").exists():
        pytest.skip(f"{env_dir} is not an environment built by make (no {stamp.name} or bin/jupyter)")

    port, token = free_port(), secrets.token_hex(16)
    jupyter = tmp_path / "jupyter"
    # Config, runtime files, settings and workspaces in tmp_path: the user's own setup neither changes
    # the test nor is changed by it.
    env = {**os.environ,
           "JUPYTER_CONFIG_DIR": str(jupyter / "config"),
           "JUPYTER_RUNTIME_DIR": str(jupyter / "runtime"),
           "JUPYTERLAB_SETTINGS_DIR": str(jupyter / "settings"),
           "JUPYTERLAB_WORKSPACES_DIR": str(jupyter / "workspaces"),
           "IPYTHONDIR": str(jupyter / "ipython"),
           "BROWSER": "true"}  # belt and braces: were a browser opened after all, it opens nothing
    for var in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL"):  # when run from `make test`: a fresh make, not a sub-make
        env.pop(var, None)
    lab_args = " ".join(["--no-browser", "--ServerApp.open_browser=False", "--ServerApp.ip=127.0.0.1",
                         f"--ServerApp.port={port}", "--ServerApp.port_retries=0",
                         f"--ServerApp.token={token}"])
    # --old-file: a prerequisite edited since the environment was built must not trigger a reinstall here
    command = [make, "--no-print-directory", f"ENV={env_dir}", f"--old-file={stamp}", "lab",
               f"LAB_ARGS={lab_args}"]
    log_path = tmp_path / "make-lab.log"
    url = f"http://127.0.0.1:{port}/api/status?token={token}"

    def output() -> str:
        return log_path.read_text(errors="replace")[-6000:]

    with open(log_path, "w") as log:
        # A session of its own: stopping its group reaches make and jupyter, and nothing else.
        process = subprocess.Popen(command, cwd=REPO, env=env, stdin=subprocess.DEVNULL, stdout=log,
                                   stderr=subprocess.STDOUT, start_new_session=True)
        try:
            status, deadline = None, time.monotonic() + START_TIMEOUT
            while status is None:
                if process.poll() is not None:
                    pytest.fail(f"make lab exited with {process.returncode} before serving:\n{output()}")
                if time.monotonic() > deadline:
                    pytest.fail(f"make lab did not answer on {url} within {START_TIMEOUT:.0f} s:\n{output()}")
                try:
                    with urllib.request.urlopen(url, timeout=2) as response:
                        assert response.status == 200
                        status = json.loads(response.read())
                except (urllib.error.URLError, ConnectionError, TimeoutError):
                    time.sleep(0.5)
        finally:
            left = stop_group(process)

    assert {"started", "connections", "kernels", "last_activity"} <= set(status), status
    assert not left, f"processes left after stopping make lab: {left}\n{output()}"
    with pytest.raises(OSError):  # the port is free again: nothing serves it any more
        socket.create_connection(("127.0.0.1", port), timeout=2).close()
