"""The website's build (mkdocs.yml, scripts/site_hooks.py): pages found, not listed; bad pages named.

A notebook with a stored error, an image that does not decode, a dead link or a file loaded from
another host must fail
``mkdocs build --strict`` with a message that names it. Needs the docs extra; skips without it,
except under CI=true.
"""

from __future__ import annotations

import importlib.util
import json
import shutil
from pathlib import Path

import pytest

from tests.browser import conftest as browser_conftest
from tests.browser.conftest import build_site, require_mkdocs

ROOT = Path(__file__).resolve().parents[1]
PNG = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8DwHwAFBQIAX8jx0gAAAABJRU5ErkJggg=="


@pytest.fixture(scope="module")
def hooks():
    require_mkdocs()
    spec = importlib.util.spec_from_file_location("site_hooks", ROOT / "scripts" / "site_hooks.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_every_notebook_has_a_family_and_a_readme_row(hooks):
    readme = (ROOT / "README.md").read_text()
    table = hooks.readme_table(readme)
    for path in hooks.notebooks(ROOT):
        assert hooks.family_of(path.name), f"{path.name}: no family for its number in FAMILIES"
        assert f"(notebooks/{path.name})" in table, f"{path.name}: no row in README.md's notebook table"


def test_families_come_from_the_number(hooks):
    assert hooks.family_of("10_ddpm.ipynb") == "Diffusion"
    assert hooks.family_of("20b_reversal_curse.ipynb") == "Language models"
    assert hooks.family_of("27_grpo.ipynb") == "Language models"  # a notebook not written yet
    assert hooks.family_of("31_anchor_free_detection.ipynb") == "Detection"
    assert hooks.family_of("33_margin_softmax.ipynb") == "Faces"
    assert hooks.family_of("44_reranking.ipynb") == "Search and recommendation"
    assert hooks.family_of("90_future.ipynb") is None


def test_nav_lists_every_notebook_by_family_then_the_reference(hooks):
    nav = hooks.build_nav(ROOT)
    sections = [next(iter(entry)) for entry in nav]
    assert sections[:2] == ["Home", "Run and scale a notebook"] and sections[-1] == "Library reference"
    listed = [next(iter(p.values())) for entry in nav[2:-1] for p in next(iter(entry.values()))]
    assert listed == [f"notebooks/{p.name}" for p in hooks.notebooks(ROOT)]
    assert "Faces" in sections and sections.index("Detection") < sections.index("Faces")


def test_readme_table_is_the_notebooks_table(hooks):
    readme = "# t\n\nintro\n\n## Notebooks\n\n| a | b |\n|---|---|\n| 1 | 2 |\n\nafter\n\n| x |\n"
    assert hooks.readme_table(readme) == "| a | b |\n|---|---|\n| 1 | 2 |"
    assert hooks.readme_intro(readme) == "intro"
    assert hooks.readme_table("# t\n\nno table\n") == ""


def _notebook(cells: list[dict]) -> dict:
    return {
        "cells": cells,
        "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}},
        "nbformat": 4,
        "nbformat_minor": 5,
    }


def _markdown(text: str) -> dict:
    return {"cell_type": "markdown", "metadata": {}, "source": text}


def _code(source: str, outputs: list[dict], tags: tuple = ()) -> dict:
    return {
        "cell_type": "code",
        "execution_count": 1,
        "metadata": {"tags": list(tags)},
        "outputs": outputs,
        "source": source,
    }


@pytest.fixture(scope="module")
def bad_build(hooks, tmp_path_factory):
    """A small project: one good notebook and one with every defect, built with --strict."""
    project = tmp_path_factory.mktemp("project")
    shutil.copy(ROOT / "mkdocs.yml", project)
    shutil.copytree(ROOT / "docs", project / "docs", ignore=shutil.ignore_patterns("screenshots"))
    (project / "scripts").mkdir()
    shutil.copy(ROOT / "scripts" / "site_hooks.py", project / "scripts")
    package = project / "src" / "toyalgos" / "core"
    package.mkdir(parents=True)
    (package.parent / "__init__.py").write_text('"""A library."""\n')
    (package / "__init__.py").write_text(
        '"""A family."""\n\n\ndef f(x: int) -> int:\n    """Twice x."""\n    return 2 * x\n'
    )
    (project / "README.md").write_text(
        "# demo\n\nIntro.\n\n## Notebooks\n\n| notebook | topic |\n|---|---|\n"
        "| [10_good](notebooks/10_good.ipynb) | good |\n"
    )
    image = {
        "output_type": "display_data",
        "metadata": {},
        "data": {"image/png": PNG, "text/plain": "<Figure>"},
    }
    good = _notebook(
        [
            _markdown("# Good: a page\n\nMath $x^2$."),
            _code("seed = 0", [], ("parameters",)),
            _code("f()", [image]),
        ]
    )
    error = {"output_type": "error", "ename": "ValueError", "evalue": "boom", "traceback": []}
    broken = {"output_type": "display_data", "metadata": {}, "data": {"image/png": PNG[:40]}}
    bad = _notebook(
        [
            _markdown(
                "# Bad: a page\n\nSee [the next one](12_missing.ipynb) and ![a figure](figure.png).\n\n"
                '<img alt="remote" src="https://example.org/remote.png">'
            ),
            _code("raise ValueError('boom')", [error], ("parameters",)),
            _code("plot()", [broken]),
        ]
    )
    (project / "notebooks").mkdir()
    for name, nb in [("10_good.ipynb", good), ("11_bad.ipynb", bad)]:
        (project / "notebooks" / name).write_text(json.dumps(nb))
    result = build_site(project, project / "site")
    return result.returncode, result.stdout + result.stderr


def test_a_bad_notebook_fails_the_strict_build_naming_its_page(bad_build):
    returncode, output = bad_build
    assert returncode != 0, output
    for message in [
        "notebooks/11_bad.ipynb: code cell 1 stores an error output (ValueError: boom)",
        "notebooks/11_bad.ipynb: code cell 2 stores an image/png output that does not decode",
        "notebooks/11_bad.ipynb: no row in README.md's notebook table",
        "notebooks/11_bad/index.html: dead link 12_missing.ipynb",
        "notebooks/11_bad/index.html: dead image figure.png",
        "notebooks/11_bad/index.html: loads https://example.org/remote.png from another host",
    ]:
        assert message in output, f"missing {message!r} in:\n{output}"
    warnings = [line for line in output.splitlines() if line.startswith("WARNING")]
    assert len(warnings) == 6 and not [w for w in warnings if "10_good" in w], output


def test_without_a_browser_a_learner_skips_and_ci_fails(monkeypatch):
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match="apt-get install chromium"):
        browser_conftest.unavailable("no Chromium found")
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="CI=true but no Chromium found"):
        browser_conftest.unavailable("no Chromium found")
