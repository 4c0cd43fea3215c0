"""The repository's own promises: the two dependency lists agree, the notebooks are stored clean."""

from __future__ import annotations

import importlib
import importlib.util
import json
import re
import tomllib
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))


def _pyproject_requirements() -> set[str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    return set(project["dependencies"]) | set(project["optional-dependencies"]["dev"])


def _conda_pip_requirements() -> tuple[set[str], list]:
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    pip_lists = [d["pip"] for d in env["dependencies"] if isinstance(d, dict) and "pip" in d]
    assert len(pip_lists) == 1, "environment.yml must have exactly one pip: section"
    return set(pip_lists[0]) - {"-e ."}, env["dependencies"]


def test_environment_yml_matches_pyproject():
    pip_reqs, conda_deps = _conda_pip_requirements()
    reqs = _pyproject_requirements()
    assert pip_reqs == reqs, (
        f"only in environment.yml: {sorted(pip_reqs - reqs)}; "
        f"only in pyproject.toml: {sorted(reqs - pip_reqs)}"
    )
    assert "-e ." in next(d["pip"] for d in conda_deps if isinstance(d, dict)), (
        "environment.yml must install the package"
    )
    assert any(str(d).startswith("python=3.11") for d in conda_deps)


def test_runtime_dependencies_are_the_design_set():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    names = {re.split(r"[<>=!~ \[]", r)[0] for r in project["dependencies"]}
    assert {"torch", "numpy", "matplotlib", "tqdm", "scikit-learn", "jupyterlab", "nbval"} <= names


def test_there_are_notebooks():
    assert NOTEBOOKS, "notebooks/ holds no notebook"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_is_stored_clean(path: Path):
    assert re.fullmatch(r"\d\d[a-z]?_[a-z0-9_]+\.ipynb", path.name), f"{path.name}: expected NN_topic.ipynb"
    nb = json.loads(path.read_text())
    cells = nb["cells"]
    code = [c for c in cells if c["cell_type"] == "code"]
    src = ["".join(c["source"]) for c in code]
    assert cells[0]["cell_type"] == "markdown" and "".join(cells[0]["source"]).startswith("# "), (
        f"{path.name}: the first cell must be the markdown title"
    )
    tagged = [c for c in code if "parameters" in c.get("metadata", {}).get("tags", [])]
    assert len(tagged) == 1, f"{path.name}: expected one code cell tagged 'parameters', found {len(tagged)}"
    assert any(re.search(r"^assert claims_hold\(", s, re.M) for s in src), f"{path.name}: no claim asserted"
    counts = [c.get("execution_count") for c in code]
    assert counts == list(range(1, len(code) + 1)), (
        f"{path.name}: store it fully executed from a fresh kernel, in order (counts {counts})"
    )
    errors = [o for c in code for o in c.get("outputs", []) if o.get("output_type") == "error"]
    assert not errors, f"{path.name}: a stored output is an error: {errors[0].get('ename')}"
    outputs = [o for c in code for o in c.get("outputs", [])]
    widgets = [o for o in outputs if "application/vnd.jupyter.widget-view+json" in o.get("data", {})]
    assert not widgets, f"{path.name}: a widget is stored; its saved text is its first frame"
    assert "widgets" not in nb.get("metadata", {}), f"{path.name}: stale widget state in its metadata"
    streams = "".join("".join(o["text"]) for o in outputs if o.get("output_type") == "stream")
    assert "\r" not in streams, f"{path.name}: store progress bars settled (scripts/run_notebook.py)"
    unfinished = re.findall(r"^.*\b\d{1,2}%\|.*$", streams, re.M)
    assert not unfinished, f"{path.name}: a progress bar is stored unfinished: {unfinished[0]!r}"
    size_mb = path.stat().st_size / 2**20
    assert size_mb < 2.0, f"{path.name}: {size_mb:.1f} MB stored; keep figures small (dpi about 80)"


def _public_namespace() -> dict:
    """Every public name of every family and sub-package, as a notebook imports them."""
    names = {}
    packages = sorted(
        ".".join(p.parent.relative_to(ROOT / "src").parts)
        for p in (ROOT / "src" / "toyalgos").glob("*/**/__init__.py")
    )
    for package in packages:
        module = importlib.import_module(package)
        names.update({n: getattr(module, n) for n in module.__all__})
    return names


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_stored_source_is_the_library_source(path: Path):
    """``show_source`` promises that the code shown is the code run: a stored listing that no
    longer matches the library (a later edit, shifted line numbers) means rerun the notebook."""
    from toyalgos.core import show_source

    names = _public_namespace()
    stale = []
    for cell in json.loads(path.read_text())["cells"]:
        calls = re.findall(r"show_source\(([\w.]+)\)", "".join(cell["source"]))
        if cell["cell_type"] != "code" or not calls:
            continue
        if len(calls) > 1:  # a cell displays only its last expression: the others would be lost
            stale.append(f"{', '.join(calls)} (one show_source per cell)")
            continue
        match = re.search(r"show_source\(([\w.]+)\)", "".join(cell["source"]))
        shown = [
            "".join(o["data"]["text/markdown"])
            for o in cell["outputs"]
            if "text/markdown" in o.get("data", {})
        ]
        current = show_source(eval(match.group(1), {}, names))._repr_markdown_()  # a dotted public name
        if shown != [current]:
            stale.append(match.group(1))
    assert not stale, f"{path.name}: rerun it; the stored source of {stale} differs from the library's"


def _run_notebook_script():
    spec = importlib.util.spec_from_file_location("run_notebook", ROOT / "scripts" / "run_notebook.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_run_notebook_stores_what_a_terminal_shows():
    script = _run_notebook_script()
    bar = "\r  0%|   | 0/9\r 50%|#  | 4/9\r100%|###| 9/9"
    assert script.settle(bar + "\ndone\n") == "100%|###| 9/9\ndone\n"
    outputs = [
        {"output_type": "stream", "name": "stderr", "text": "\r  0%|"},
        {"output_type": "stream", "name": "stderr", "text": "\r100%|"},
        {"output_type": "stream", "name": "stdout", "text": "x\n"},
        {"output_type": "stream", "name": "stderr", "text": "\n"},
    ]
    assert script.coalesce(outputs) == [
        {"output_type": "stream", "name": "stderr", "text": "100%|"},
        {"output_type": "stream", "name": "stdout", "text": "x\n"},
    ]
