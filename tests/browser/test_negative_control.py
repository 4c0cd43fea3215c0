"""Negative control: a site with a broken image, a script error, a dead link, math left as text and
a request to another host, visited by the same checks as the real site, must be caught on its page."""

from __future__ import annotations

import pytest

from .conftest import Offline
from .inspect_site import dead_links, site_pages, visit

pytestmark = pytest.mark.browser

GOOD = "<!doctype html><title>good</title><h1 id='top'>fine</h1><a href='../bad/'>bad</a>"
BAD = """<!doctype html><title>bad</title>
<img alt="stored, corrupt" src="data:image/png;base64,bm90IGEgUE5HIGF0IGFsbA==">
<img alt="missing" src="figure.png">
<img alt="remote" src="https://example.org/figure.png">
<a href="../missing/">a page that does not exist</a>
<a href="../good/#nowhere">an anchor that does not exist</a>
<p>an equation left as text: $x^2$</p>
<script>undefined_function_of_the_page();</script>"""


def test_the_checks_catch_a_broken_image_a_script_error_and_a_dead_link(browser, serve, tmp_path):
    for name, text in [("good", GOOD), ("bad", BAD)]:
        (tmp_path / name).mkdir()
        (tmp_path / name / "index.html").write_text(text)
    base = serve(tmp_path)
    offline = Offline(browser)
    reports = visit(offline, base, site_pages(tmp_path))
    dead = dead_links(offline.context.request, reports)
    offline.close()

    good, bad = reports["good/"], reports["bad/"]
    assert (good.status, good.page_errors, good.broken_images) == (200, [], [])
    assert any("undefined_function_of_the_page" in e for e in bad.page_errors), bad.page_errors
    assert bad.broken_images == [
        "data:image/png;base64,bm90IGEgUE5HIGF0IGFsbA==",
        "figure.png",
        "https://example.org/figure.png",
    ], bad.broken_images
    assert f"404 {base}bad/figure.png" in bad.failed_loads, bad.failed_loads
    assert sorted(dead) == [f"bad/: {base}good/#nowhere (no such anchor)", f"bad/: {base}missing/ (404)"]
    assert bad.math_untypeset == ["an equation left as text: $x^2$"], bad.math_untypeset
    assert offline.external == ["https://example.org/figure.png"]
