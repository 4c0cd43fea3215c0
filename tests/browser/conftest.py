"""A real Chromium for the browser tests, and a web site built and served on the loopback.

The browser is Debian's ``chromium`` (or ``TOYALGOS_CHROMIUM``), driven by Playwright for Python;
``playwright install`` is never needed. Without a browser (or without Playwright / MkDocs) the
tests skip with a message on how to install it, except under ``CI=true``, where they fail: CI
installs everything (``.ci/run``) and must not pass by skipping.

Every page gets a context that lets requests to this machine through and aborts, and records,
every other one: ``external`` must stay empty. Each test module builds its own server, so the
modules run in parallel under ``pytest -n auto --dist loadscope``.
"""

from __future__ import annotations

import functools
import http.server
import os
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest

ROOT = Path(__file__).resolve().parents[2]
LOCAL_HOSTS = {"127.0.0.1", "localhost", "::1", "[::1]"}
INSTALL_HINT = (
    "install Chromium (Debian/Ubuntu: `sudo apt-get install chromium`) or set TOYALGOS_CHROMIUM "
    "to a Chrome/Chromium binary; Playwright comes with `pip install -e '.[dev]'`"
)
# Chromium's own background traffic (updates, sync, safe browsing) would try to leave the machine.
CHROMIUM_ARGS = [
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-default-apps",
    "--disable-extensions",
    "--disable-quic",
    "--no-first-run",
    "--no-default-browser-check",
]


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() in {"1", "true", "yes"}


def unavailable(reason: str):
    """Skip a learner's run; fail CI's, which must run the browser tests."""
    if in_ci():
        pytest.fail(f"CI=true but {reason}: {INSTALL_HINT}", pytrace=False)
    pytest.skip(f"{reason}: {INSTALL_HINT}")


def chromium_path() -> str | None:
    for candidate in (
        os.environ.get("TOYALGOS_CHROMIUM"),
        "/usr/bin/chromium",
        shutil.which("chromium"),
        shutil.which("chromium-browser"),
        shutil.which("google-chrome"),
    ):
        if candidate and Path(candidate).is_file() and os.access(candidate, os.X_OK):
            return candidate
    return None


@pytest.fixture(scope="session")
def browser():
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        unavailable("Playwright for Python is not installed")
    executable = chromium_path()
    if executable is None:
        unavailable("no Chromium found")
    args = CHROMIUM_ARGS + (["--no-sandbox"] if os.geteuid() == 0 else [])
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=executable, headless=True, args=args)
        yield chromium
        chromium.close()


class Offline:
    """A browser context in which only this machine answers; every other request is recorded."""

    def __init__(self, browser, **options):
        self.external: list[str] = []
        self.context = browser.new_context(**options)
        self.context.route("**/*", self._route)

    def _route(self, route) -> None:
        url = route.request.url
        parts = urlsplit(url)
        if parts.scheme in {"data", "blob"} or parts.hostname in LOCAL_HOSTS:
            route.continue_()
        else:
            self.external.append(url)
            route.abort("blockedbyclient")

    def new_page(self):
        page = self.context.new_page()
        page.on(
            "websocket",
            lambda ws: None if urlsplit(ws.url).hostname in LOCAL_HOSTS else self.external.append(ws.url),
        )
        return page

    def close(self) -> None:
        self.context.close()


@pytest.fixture
def offline(browser) -> Iterator[Offline]:
    ctx = Offline(browser, viewport={"width": 1366, "height": 900})
    yield ctx
    ctx.close()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:
        pass


@pytest.fixture(scope="module")
def serve():
    """``serve(directory) -> base URL``: a static server on the loopback, stopped after the module."""
    servers = []

    def start(directory: Path) -> str:
        handler = functools.partial(_QuietHandler, directory=str(directory))
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return f"http://127.0.0.1:{server.server_port}/"

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


def build_site(project: Path, site_dir: Path) -> subprocess.CompletedProcess:
    """``mkdocs build --strict`` of ``project`` into ``site_dir``; its output names any bad page."""
    env = dict(os.environ, NO_MKDOCS_2_WARNING="1")
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(project / "src"), env.get("PYTHONPATH")]))
    return subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "-d", str(site_dir)],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )


def require_mkdocs() -> None:
    try:
        import mkdocs  # noqa: F401
        import mkdocs_jupyter  # noqa: F401
    except ImportError:
        if in_ci():
            pytest.fail("CI=true but MkDocs is not installed: pip install -e '.[docs]'", pytrace=False)
        pytest.skip("the site needs the docs extra: pip install -e '.[docs]'")
