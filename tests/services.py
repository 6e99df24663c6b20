"""Helpers of the service tests (browser, hub): find a required service, start and always stop servers.

A missing service fails the test in CI (``CI`` set: .ci/run installs everything with
scripts/install-services.sh) and skips it only on a developer's machine without it.
"""
from __future__ import annotations

import http.client
import os
import shutil
import signal
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def require(ok: bool, what: str) -> None:
    """Fail in CI, skip elsewhere, when a service the test needs is missing."""
    if ok:
        return
    msg = f"{what} is missing: run scripts/install-services.sh (make install-services)"
    if os.environ.get("CI"):
        pytest.fail(msg)
    pytest.skip(msg)


def require_chromium() -> str:
    require(Path(CHROMIUM).exists(), "Debian's chromium (/usr/bin/chromium)")
    return CHROMIUM


def require_program(name: str) -> str:
    path = shutil.which(name)
    require(path is not None, name)
    return path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_http(url: str, timeout: float, proc: subprocess.Popen | None = None, log: Path | None = None) -> None:
    """Poll ``url`` until it answers (any HTTP status), at most ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"server exited with {proc.returncode}: " + (log.read_text()[-3000:] if log else ""))
        try:
            urllib.request.urlopen(url, timeout=5)
            return
        except urllib.error.HTTPError:
            return
        except (OSError, http.client.HTTPException):  # not up yet, or another program's port (not HTTP)
            time.sleep(0.5)
    raise AssertionError(f"{url} did not answer within {timeout} s: " + (log.read_text()[-3000:] if log else ""))


def start_on_free_port(argv_for, url_for, log: Path, timeout: float, tries: int = 3, **popen):
    """Start a server on a free port; another program may take the port first, so retry on a fresh one.

    Returns:
        (process, port); the process runs in its own session (``stop`` ends its group).
    """
    for attempt in range(tries):
        port = free_port()
        with open(log, "w") as fh:
            proc = subprocess.Popen(argv_for(port), stdout=fh, stderr=subprocess.STDOUT, start_new_session=True,
                                    **popen)
        try:
            wait_http(url_for(port), timeout=timeout, proc=proc, log=log)
            time.sleep(1)
            if proc.poll() is None:  # ours answered (a server that lost the port race exits)
                return proc, port
        except AssertionError:
            if attempt == tries - 1:
                stop(proc)
                raise
        stop(proc)
    raise AssertionError(f"no free port after {tries} tries: " + log.read_text()[-3000:])


def stop(proc: subprocess.Popen, timeout: float = 20) -> None:
    """SIGTERM the process group a server was started in, then SIGKILL what is left."""
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=timeout)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            pass
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait(timeout=timeout)


def launch_chromium(playwright, profile: Path):
    """Debian's Chromium through Playwright, with a fresh profile (never a downloaded browser)."""
    return playwright.chromium.launch_persistent_context(
        str(profile), executable_path=require_chromium(), args=CHROMIUM_ARGS, headless=True,
        viewport={"width": 1400, "height": 900})
