"""JupyterLab, the learner's main tool, in a real Chromium: open a notebook, run cells, see outputs.

A ``jupyter lab`` server starts on a free loopback port with a token, in a temporary folder that
holds a copy of a project notebook with its outputs cleared (so every output seen was made now,
and autosave never touches the repository); settings and workspaces live in the temporary folder
too. The page is driven as a learner would: the file browser, a double-click, Shift+Enter.
Then the server is shut down through its API and must exit cleanly.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from .conftest import ROOT, Offline

pytestmark = pytest.mark.browser

NOTEBOOK = "10_ddpm.ipynb"
# Run the notebook from its top down to its first show_source(...) cell (imports, parameters,
# seed, ...), whose output is the listing of the function it names.
FIRST_OUTPUT = "show_source(NoiseSchedule.linear)"
EXPECTED_OUTPUT = "def linear"
TIMEOUT_MS = 60_000  # kernel start and `import torch` on a loaded two-core machine


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _cleared_copy(source: Path, target: Path) -> None:
    nb = json.loads(source.read_text(encoding="utf-8"))
    for cell in nb["cells"]:
        if cell["cell_type"] == "code":
            cell["outputs"], cell["execution_count"] = [], None
    target.write_text(json.dumps(nb, indent=1), encoding="utf-8")


def _get(url: str, token: str, method: str = "GET") -> int:
    request = urllib.request.Request(url, method=method, headers={"Authorization": f"token {token}"})
    with urllib.request.urlopen(request, timeout=10) as response:
        return response.status


@pytest.fixture(scope="module")
def lab(browser, tmp_path_factory):  # no server to start where there is no browser to drive it
    """A running JupyterLab: (base URL, token, process, notebook folder)."""
    tmp = tmp_path_factory.mktemp("lab")
    work = tmp / "work"
    work.mkdir()
    _cleared_copy(ROOT / "notebooks" / NOTEBOOK, work / NOTEBOOK)
    # Lab 4 renders only the cells in view by default; render them all, as a reader scrolls to them.
    tracker = tmp / "settings" / "@jupyterlab" / "notebook-extension" / "tracker.jupyterlab-settings"
    tracker.parent.mkdir(parents=True)
    tracker.write_text(json.dumps({"windowingMode": "none"}))
    news = tmp / "settings" / "@jupyterlab" / "apputils-extension" / "notification.jupyterlab-settings"
    news.parent.mkdir(parents=True)
    news.write_text(json.dumps({"fetchNews": "false"}))  # and no toast asking to fetch them
    port, token = _free_port(), secrets.token_hex(16)
    env = dict(os.environ)
    env.update(
        JUPYTER_CONFIG_DIR=str(tmp / "config"),
        JUPYTER_RUNTIME_DIR=str(tmp / "runtime"),
        JUPYTERLAB_SETTINGS_DIR=str(tmp / "settings"),
        JUPYTERLAB_WORKSPACES_DIR=str(tmp / "workspaces"),
        PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT / "src"), env.get("PYTHONPATH")])),
        OMP_NUM_THREADS=env.get("OMP_NUM_THREADS", "1"),
    )
    command = [
        sys.executable, "-m", "jupyterlab", "--no-browser", "--ip=127.0.0.1", f"--port={port}",
        "--ServerApp.port_retries=0", f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={work}",
        "--LabApp.news_url=None", "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
    ]  # fmt: skip
    if os.geteuid() == 0:
        command.append("--allow-root")
    log = open(tmp / "server.log", "w")  # noqa: SIM115 - closed below
    process = subprocess.Popen(command, cwd=work, env=env, stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}/"
    deadline = time.monotonic() + 120
    while True:
        try:
            if _get(base + "api/status", token) == 200:
                break
        except (urllib.error.URLError, ConnectionError, OSError):
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            log.close()
            pytest.fail(f"jupyter lab did not start:\n{(tmp / 'server.log').read_text()[-3000:]}")
        time.sleep(0.5)
    yield base, token, process, work
    if process.poll() is None:  # the shutdown test failed or did not run
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
    log.close()


def test_open_a_notebook_from_the_file_browser_and_run_its_first_cells(browser, lab):
    base, token, _, work = lab
    stored = json.loads((work / NOTEBOOK).read_text())["cells"]
    last_index = next(i for i, c in enumerate(stored) if "".join(c["source"]).startswith(FIRST_OUTPUT))
    code = [i for i in range(last_index + 1) if stored[i]["cell_type"] == "code"]
    offline = Offline(browser, viewport={"width": 1366, "height": 900})
    page = offline.new_page()
    page_errors: list[str] = []
    page.on("pageerror", lambda e: page_errors.append(str(e)))
    try:
        page.goto(f"{base}lab?token={token}")

        item = page.locator(".jp-DirListing-item", has_text=NOTEBOOK)
        item.wait_for(timeout=TIMEOUT_MS)
        item.dblclick()
        panel = page.locator(".jp-NotebookPanel:visible")
        cells = panel.locator(".jp-Notebook .jp-Cell")
        cells.nth(last_index + 1).wait_for(timeout=TIMEOUT_MS)
        # Cells run before the kernel is up are skipped, as they are for a learner who hurries.
        page.locator(".jp-StatusBar-TextItem", has_text=re.compile(r"\| Idle$")).wait_for(timeout=TIMEOUT_MS)
        assert panel.locator(".jp-OutputArea-output").count() == 0, "the copy was stored with outputs"

        cells.first.locator(".jp-InputPrompt").click()  # select the first cell, in command mode
        for _ in range(last_index + 1):
            page.keyboard.press("Shift+Enter")
        cells.nth(last_index).locator(".jp-OutputArea-output", has_text=EXPECTED_OUTPUT).wait_for(
            timeout=TIMEOUT_MS
        )

    except Exception as error:  # keep what the learner would have seen
        shot = work.parent / "lab-failure.png"
        page.screenshot(path=shot)
        log = (work.parent / "server.log").read_text()[-3000:]
        raise AssertionError(f"{error}\nscreenshot: {shot}\nserver log:\n{log}") from error

    prompts = [cells.nth(i).locator(".jp-InputPrompt").inner_text().strip() for i in code]
    assert prompts == [f"[{n}]:" for n in range(1, len(code) + 1)], prompts
    errors = panel.locator(".jp-OutputArea-output[data-mime-type='application/vnd.jupyter.stderr']")
    assert not [e for e in errors.all_inner_texts() if "Traceback" in e], "a cell raised"
    offline.close()
    assert not page_errors, f"uncaught errors in JupyterLab: {page_errors}"
    assert offline.external == [], f"JupyterLab tried to reach other hosts: {offline.external}"


def test_the_server_shuts_down_cleanly(lab):
    base, token, process, _ = lab
    assert _get(base + "api/shutdown", token, method="POST") == 200
    assert process.wait(timeout=60) == 0
    with pytest.raises((urllib.error.URLError, ConnectionError, OSError)):
        _get(base + "api/status", token)
