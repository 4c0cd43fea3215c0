"""The website in a real Chromium: every page as a reader gets it, offline.

The site is built from this tree with ``mkdocs build --strict`` (or taken from ``TOYALGOS_SITE``
when CI has just built it), served on the loopback, and every page is visited once; the tests
below read that visit. Screenshots of the home page and of a notebook page are checked and, with
``TOYALGOS_UPDATE_SCREENSHOTS=1`` (or when missing), saved to ``docs/assets/screenshots/``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from .conftest import ROOT, Offline, build_site, require_mkdocs
from .inspect_site import dead_links, new_page, site_pages, visit

pytestmark = pytest.mark.browser

SCREENSHOTS = ROOT / "docs" / "assets" / "screenshots"
SHOWN_NOTEBOOK = "notebooks/10_ddpm/"


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    prebuilt = os.environ.get("TOYALGOS_SITE")
    if prebuilt:
        path = Path(prebuilt).resolve()
        assert (path / "index.html").is_file(), f"TOYALGOS_SITE={prebuilt} holds no built site"
        return path
    require_mkdocs()
    path = tmp_path_factory.mktemp("site")
    result = build_site(ROOT, path)
    assert result.returncode == 0, f"mkdocs build --strict failed:\n{result.stdout}{result.stderr}"
    return path


@pytest.fixture(scope="module")
def session(browser, site, serve):
    """One offline context, the site's base URL and the reports of the visit of every page."""
    base = serve(site)
    offline = Offline(browser, viewport={"width": 1366, "height": 900})
    reports = visit(offline, base, site_pages(site))
    yield offline, base, reports
    offline.close()


def _notebook_pages(site: Path) -> list[str]:
    return [p for p in site_pages(site) if p.startswith("notebooks/")]


def test_the_site_has_every_notebook_and_family(site):
    stored = sorted(p.stem for p in (ROOT / "notebooks").glob("*.ipynb"))
    assert [p.split("/")[1] for p in _notebook_pages(site)] == stored
    libraries = sorted(p.name for p in (ROOT / "src" / "toyalgos").iterdir() if (p / "__init__.py").exists())
    assert sorted(p.split("/")[1] for p in site_pages(site) if p.startswith("reference/")) == libraries


def test_every_page_loads_with_200(session):
    _, _, reports = session
    bad = {path or "/": report.status for path, report in reports.items() if report.status != 200}
    assert not bad, f"pages not served with 200: {bad}"


def test_no_page_error_console_error_or_failed_load(session):
    _, _, reports = session
    bad = {
        path or "/": r.page_errors + r.console_errors + r.failed_loads
        for path, r in reports.items()
        if r.page_errors or r.console_errors or r.failed_loads
    }
    assert not bad, f"errors in the browser, by page: {json.dumps(bad, indent=1)}"


def test_every_image_decodes(session):
    _, _, reports = session
    bad = {path or "/": r.broken_images for path, r in reports.items() if r.broken_images}
    assert not bad, f"images that do not decode (naturalWidth 0), by page: {bad}"
    assert sum(r.status == 200 for r in reports.values()) > 1


def test_every_internal_link_resolves(session):
    offline, _, reports = session
    assert sum(len(r.links) for r in reports.values()) > len(reports), "too few links: is the nav there?"
    dead = dead_links(offline.context.request, reports)
    assert not dead, "dead internal links:\n" + "\n".join(dead)


def test_math_is_typeset(session, site):
    _, _, reports = session
    errors = {p: r.math_errors for p, r in reports.items() if r.math_errors}
    left = {p or "/": r.math_untypeset for p, r in reports.items() if r.math_untypeset}
    assert not errors, f"TeX errors, by page: {errors}"
    assert not left, f"TeX left as text, by page: {left}"
    for path in _notebook_pages(site):
        nb = json.loads((ROOT / "notebooks" / (path.split("/")[1] + ".ipynb")).read_text())
        markdown = "".join("".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "markdown")
        if "$" in markdown:
            assert reports[path].math_typeset > 0, f"{path}: its markdown has math, none was typeset"
    assert reports["running/"].math_typeset > 0, "running/: the arithmatex formula was not typeset"


def test_no_request_leaves_the_machine(session):
    offline, _, _ = session
    assert offline.external == [], f"requests to other hosts (blocked): {offline.external}"


def test_navigation_by_clicking(session):
    offline, base, _ = session
    page = new_page(offline)
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(base)
    nav = page.locator("nav.md-nav--primary")
    nav.get_by_role("link", name="10 · DDPM and DDIM", exact=True).click()
    page.wait_for_url(base + SHOWN_NOTEBOOK)
    assert page.locator("h1").first.inner_text().startswith("DDPM and DDIM")
    page.locator("a.md-footer__link--next").click()  # the footer's "Next" goes to the following page
    page.wait_for_url(base + "notebooks/11_edm_unified/")
    nav.get_by_role("link", name="Run and scale a notebook", exact=True).click()
    page.wait_for_url(base + "running/")
    nav.get_by_role("link", name="toyalgos.core", exact=True).click()
    page.wait_for_url(base + "reference/core/")
    assert page.locator("h1").first.inner_text().startswith("toyalgos.core")
    nav.get_by_role("link", name="Home", exact=True).click()
    page.wait_for_url(base)
    page.locator(".md-content table a", has_text="44_reranking").click()  # the topic table's link
    page.wait_for_url(base + "notebooks/44_reranking/")
    page.close()
    assert not errors, errors


def test_search_finds_a_notebook(session):
    offline, base, _ = session
    page = offline.new_page()
    page.goto(base)
    page.locator("label.md-search__icon, .md-search__input").first.click()
    # The index (about 1 MB) is built in a web worker; a query typed before it is ready is lost.
    page.wait_for_function(
        "() => { const m = document.querySelector('.md-search-result__meta');"
        " return m && m.textContent.trim() && !/initializ/i.test(m.textContent); }",
        timeout=60_000,
    )
    page.locator("input.md-search__input").press_sequentially("LambdaRank")  # typed, as keys
    results = page.locator(".md-search-result__item a")
    results.first.wait_for(timeout=60_000)
    hrefs = results.evaluate_all("links => links.map(a => a.href)")
    page.close()
    assert any("notebooks/40_search_ranking/" in h for h in hrefs), hrefs


def test_screenshots_of_the_home_and_a_notebook_page(session, tmp_path):
    from PIL import Image

    offline, base, _ = session
    page = new_page(offline)
    update = os.environ.get("TOYALGOS_UPDATE_SCREENSHOTS") == "1"
    for name, path in [("home", ""), ("notebook", SHOWN_NOTEBOOK)]:
        page.goto(base + path)
        page.evaluate("() => window.MathJax ? MathJax.startup.promise : null")
        if path:  # scroll to the first figure, past the title and the imports
            page.locator(".jp-OutputArea-output img").first.scroll_into_view_if_needed()
        shot = tmp_path / f"{name}.png"
        page.screenshot(path=shot)
        image = Image.open(shot).convert("RGB")
        assert len(image.getcolors(1 << 16) or range(1 << 16)) > 16, f"{name}: the screenshot is blank"
        target = SCREENSHOTS / f"{name}.png"
        if update or not target.exists():
            SCREENSHOTS.mkdir(parents=True, exist_ok=True)
            image.resize((image.width * 3 // 4, image.height * 3 // 4), Image.LANCZOS).quantize(
                colors=64, method=Image.Quantize.MEDIANCUT
            ).save(target, optimize=True)
    page.close()
