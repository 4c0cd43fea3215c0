"""What a reader's browser sees on each page of a site: the checks behind test_site.py.

``visit`` loads every page once in one tab and records, per page, its HTTP status, uncaught
errors, console errors, failed loads, images that do not decode, TeX left untypeset or in error,
and the internal links it holds; ``dead_links`` then requests each internal link once.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import unquote, urldefrag

# Resolves once MathJax (when the page loads it) has typeset the page.
WAIT_FOR_MATH = """() => (window.MathJax && MathJax.startup && MathJax.startup.promise)
    ? MathJax.startup.promise.then(() => true) : false"""
BROKEN_IMAGES = """async () => {
    const bad = [];
    for (const img of document.images) {
        try { await img.decode(); } catch (e) {}
        if (!(img.complete && img.naturalWidth > 0)) bad.push((img.getAttribute('src') || '').slice(0, 80));
    }
    return bad;
}"""
LINKS = "() => Array.from(document.querySelectorAll('a[href]'), a => a.href)"
IDS = "() => Array.from(document.querySelectorAll('[id], a[name]'), e => e.id || e.name)"
MATH = """() => {
    const root = document.querySelector('.md-content') || document.body;
    const skip = 'pre, code, script, style, textarea, mjx-container, .tex2jax_ignore';
    const accept = n => n.parentElement.closest(skip) ? NodeFilter.FILTER_REJECT : NodeFilter.FILTER_ACCEPT;
    const walker = document.createTreeWalker(root, NodeFilter.SHOW_TEXT, {acceptNode: accept});
    const left = [];
    for (let n = walker.nextNode(); n; n = walker.nextNode()) {
        const text = n.nodeValue;
        if (/\\$[^$\\s][^$]*\\$|\\\\\\(|\\\\\\[/.test(text)) left.push(text.trim().slice(0, 80));
    }
    return {typeset: document.querySelectorAll('mjx-container').length,
            errors: Array.from(document.querySelectorAll('mjx-merror'), e => e.textContent.slice(0, 80)),
            untypeset: left};
}"""


@dataclass
class PageReport:
    url: str
    status: int | None = None
    page_errors: list[str] = field(default_factory=list)
    console_errors: list[str] = field(default_factory=list)
    failed_loads: list[str] = field(default_factory=list)
    broken_images: list[str] = field(default_factory=list)
    links: list[str] = field(default_factory=list)
    ids: set[str] = field(default_factory=set)
    math_typeset: int = 0
    math_errors: list[str] = field(default_factory=list)
    math_untypeset: list[str] = field(default_factory=list)


def site_pages(site: Path) -> list[str]:
    """Every page of a built site, as paths relative to its root ('' for the home page)."""
    pages = []
    for html in sorted(site.rglob("index.html")):
        rel = html.parent.relative_to(site).as_posix()
        pages.append("" if rel == "." else rel + "/")
    return pages


def _without_documents(route) -> None:
    """The theme's search index with its documents removed: building the real one (about 1 MB)
    on every page visited here would double the run time; test_site.py searches with the real one."""
    response = route.fetch()
    index = response.json()
    index["docs"] = []
    route.fulfill(response=response, json=index)


def new_page(offline):
    """A tab whose pages get an empty search index (see ``_without_documents``)."""
    page = offline.new_page()
    page.route("**/search/search_index.json", _without_documents)
    return page


def _record_failure(report: PageReport, request) -> None:
    """A load that failed, except one cancelled by leaving the page (net::ERR_ABORTED: a font or an
    icon still in flight when the next page opens), which says nothing about the page's assets;
    a missing asset answers 404 and a blocked request fails with another error."""
    if "ERR_ABORTED" not in (request.failure or ""):
        report.failed_loads.append(request.url[:120])


def visit(offline, base: str, paths: list[str]) -> dict[str, PageReport]:
    reports: dict[str, PageReport] = {}
    page = new_page(offline)
    current: list[PageReport] = []
    page.on("pageerror", lambda error: current[-1].page_errors.append(str(error)))
    page.on(
        "console", lambda msg: current[-1].console_errors.append(msg.text) if msg.type == "error" else None
    )
    page.on("requestfailed", lambda request: _record_failure(current[-1], request))
    page.on(
        "response",
        lambda response: (
            current[-1].failed_loads.append(f"{response.status} {response.url}")
            if response.status >= 400
            else None
        ),
    )
    for path in paths:
        report = reports[path] = PageReport(base + path)
        current.append(report)
        response = page.goto(report.url, wait_until="load")
        report.status = response.status if response else None
        page.evaluate(WAIT_FOR_MATH)
        report.broken_images = page.evaluate(BROKEN_IMAGES)
        report.links = sorted({link for link in page.evaluate(LINKS) if link.startswith(base)})
        report.ids = set(page.evaluate(IDS))
        math = page.evaluate(MATH)
        report.math_typeset, report.math_errors, report.math_untypeset = (
            math["typeset"],
            math["errors"],
            math["untypeset"],
        )
    page.close()
    return reports


def dead_links(request, reports: dict[str, PageReport]) -> list[str]:
    """``page: link`` for every internal link whose target is not 200, or whose anchor is missing.

    A link to a visited page is judged by that visit (its status, the ids of its elements once
    scripts ran); any other target (a notebook download, an asset) is requested once.
    """
    visited = {report.url: report for report in reports.values()}
    statuses: dict[str, int] = {}
    dead = []
    for path, report in reports.items():
        for link in report.links:
            target, fragment = urldefrag(link)
            if target in visited:
                status, ids = visited[target].status, visited[target].ids
            else:
                if target not in statuses:
                    statuses[target] = request.head(target).status
                status, ids = statuses[target], None
            if status != 200:
                dead.append(f"{path or '/'}: {link} ({status})")
            elif fragment and ids is not None and unquote(fragment) not in ids:
                dead.append(f"{path or '/'}: {link} (no such anchor)")
    return dead
