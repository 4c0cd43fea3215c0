"""MkDocs hooks: the website built from the stored notebooks, README.md and the library's docstrings.

Nothing here is a copy that can drift from its source, and nothing is fetched or executed:

- one page per ``notebooks/NN_topic.ipynb`` (rendered by mkdocs-jupyter from its stored outputs),
  grouped in the navigation by family from the notebook's number (``FAMILIES``); a notebook added to
  ``notebooks/`` appears without an edit here;
- one reference page per library family, every package under ``src/toyalgos/`` (mkdocstrings);
- the home page's introduction and topic table are README.md's, read at build time; the "run and
  scale" page lists each notebook's ``parameters`` cell, read from the notebook;
- MathJax 3 is copied from an installed package (``django-static-mathjax``, or ``npm install
  mathjax@3``) into the site; the notebook pages' CDN script tags are removed.

Checks that make ``mkdocs build --strict`` fail with a message naming the page: a stored error
output, an image output that does not decode, a notebook without a row in README.md's table, a
dead internal link or image, and a script, style sheet, font or image loaded from another host.
"""

from __future__ import annotations

import base64
import binascii
import html
import importlib.util
import json
import logging
import os
import posixpath
import re
from pathlib import Path
from urllib.parse import unquote, urlsplit

from mkdocs.exceptions import PluginError
from mkdocs.plugins import event_priority
from mkdocs.structure.files import File, Files
from mkdocs.utils import get_relative_url

log = logging.getLogger("mkdocs.plugins.toyalgos")

# Family of a notebook from the start of its number; the longest matching prefix wins.
FAMILIES = {
    "1": "Diffusion",
    "2": "Language models",
    "3": "Detection",
    "33": "Faces",
    "4": "Search and recommendation",
}
NOTEBOOK_NAME = re.compile(r"(\d\d[a-z]?)_[a-z0-9_]+\.ipynb")
# Where MathJax 3's es5 directory is found, first match wins (relative paths: from the repository root).
MATHJAX_CANDIDATES = ("node_modules/mathjax/es5",)
MATHJAX_FILES = ("tex-mml-chtml.js", "output/chtml/fonts/woff-v2", "input/tex/extensions")
# Tags that make the browser fetch their URL (a <link> only for these rels; canonical is not a load).
LOADING_TAGS = re.compile(r"<(script|img|iframe|source|audio|video|link)\b[^>]*>", re.I)
LOADING_RELS = {"stylesheet", "icon", "preload", "modulepreload", "prefetch", "manifest"}
URL_ATTRS = re.compile(r"<(a|img|link|script)\b[^>]*?\b(href|src)\s*=\s*\"([^\"]*)\"", re.I)
IDS = re.compile(r"\bid\s*=\s*[\"']([^\"']+)[\"']")


# --- discovery ----------------------------------------------------------------------------------


def root_of(config) -> Path:
    return Path(config.config_file_path).resolve().parent


def notebooks(root: Path) -> list[Path]:
    """The stored notebooks, in the order of their numbers."""
    return sorted(p for p in (root / "notebooks").glob("*.ipynb") if NOTEBOOK_NAME.fullmatch(p.name))


def family_of(name: str) -> str | None:
    number = NOTEBOOK_NAME.fullmatch(name).group(1)
    prefixes = [p for p in FAMILIES if number.startswith(p)]
    return FAMILIES[max(prefixes, key=len)] if prefixes else None


def library_families(root: Path) -> list[str]:
    """Every package of the library (core and nn first: every other family builds on them)."""
    src = root / "src" / "toyalgos"
    names = sorted(p.name for p in src.iterdir() if (p / "__init__.py").exists())
    return [n for n in ("core", "nn") if n in names] + [n for n in names if n not in ("core", "nn")]


def read_notebook(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


def notebook_title(nb: dict) -> str:
    """The title cell's heading, without markdown."""
    first = "".join(nb["cells"][0]["source"]) if nb.get("cells") else ""
    match = re.match(r"#\s+(.+)", first)
    return match.group(1).strip() if match else ""


def nav_title(path: Path, nb: dict) -> str:
    """``10 · DDPM and DDIM`` from ``# DDPM and DDIM: learning a distribution by removing noise``."""
    number = NOTEBOOK_NAME.fullmatch(path.name).group(1)
    short = notebook_title(nb).split(":")[0].strip() or path.stem
    return f"{number} · {short}"


def build_nav(root: Path) -> list:
    sections: dict[str, list] = {}
    for path in notebooks(root):
        family = family_of(path.name) or "Other"
        sections.setdefault(family, []).append(
            {nav_title(path, read_notebook(path)): f"notebooks/{path.name}"}
        )
    reference = [{f"toyalgos.{name}": f"reference/{name}.md"} for name in library_families(root)]
    return [
        {"Home": "index.md"},
        {"Run and scale a notebook": "running.md"},
        *({family: pages} for family, pages in sections.items()),
        {"Library reference": reference},
    ]


# --- README.md, the one source of the topic table ------------------------------------------------


def readme_intro(readme: str) -> str:
    """The paragraphs between the title and the first ``##`` heading."""
    body = readme.split("\n", 1)[1] if readme.startswith("# ") else readme
    return body.split("\n## ", 1)[0].strip()


def readme_table(readme: str, heading: str = "## Notebooks") -> str:
    """The first markdown table under ``heading``."""
    if heading not in readme:
        return ""
    lines = readme.split(heading, 1)[1].splitlines()
    start = next((i for i, line in enumerate(lines) if line.startswith("|")), None)
    if start is None:
        return ""
    end = next((i for i in range(start, len(lines)) if not lines[i].startswith("|")), len(lines))
    return "\n".join(lines[start:end])


def parameters_section(root: Path) -> str:
    """Each notebook's ``parameters`` cell, as a collapsed block, with the page it belongs to."""
    blocks = []
    for path in notebooks(root):
        nb = read_notebook(path)
        cells = [c for c in nb["cells"] if "parameters" in c.get("metadata", {}).get("tags", [])]
        source = "".join(cells[0]["source"]).rstrip() if cells else "(no cell tagged parameters)"
        device = "takes `device`" if re.search(r"^device\s*=", source, re.M) else "CPU only, no `device`"
        title = f"{path.stem}: {notebook_title(nb)} ({device})".replace('"', "'")
        code = "\n".join("    " + line for line in ["```python", *source.splitlines(), "```"])
        blocks.append(f'??? example "{title}"\n\n    [Read the page](notebooks/{path.name})\n\n{code}\n')
    return "\n".join(blocks)


# --- MathJax, from a registry package, never a CDN -------------------------------------------------


def find_mathjax(root: Path) -> Path | None:
    candidates = [os.environ.get("TOYALGOS_MATHJAX", "")]
    candidates += [str(root / c) for c in MATHJAX_CANDIDATES]
    spec = importlib.util.find_spec("mathjax")  # the django-static-mathjax wheel: MathJax 3.2
    for location in (spec.submodule_search_locations or []) if spec else []:
        candidates.append(str(Path(location) / "static" / "mathjax" / "es5"))
    for candidate in filter(None, candidates):
        if (Path(candidate) / "tex-mml-chtml.js").is_file():
            return Path(candidate)
    return None


def mathjax_files(es5: Path, config) -> list[File]:
    paths = []
    for entry in MATHJAX_FILES:
        target = es5 / entry
        paths += sorted(p for p in target.rglob("*") if p.is_file()) if target.is_dir() else [target]
    files = [
        File.generated(config, "assets/mathjax/" + p.relative_to(es5).as_posix(), abs_src_path=str(p))
        for p in paths
    ]
    licence = es5.parent / "LICENSE"
    if licence.is_file():
        files.append(File.generated(config, "assets/mathjax/LICENSE", abs_src_path=str(licence)))
    return files


# --- checks of a stored notebook ------------------------------------------------------------------


def notebook_problems(nb: dict) -> list[str]:
    """A stored error output, or an image output that is not a decodable PNG / JPEG / SVG."""
    problems = []
    code = [c for c in nb.get("cells", []) if c.get("cell_type") == "code"]
    for number, cell in enumerate(code, 1):
        for out in cell.get("outputs", []):
            if out.get("output_type") == "error":
                problems.append(
                    f"code cell {number} stores an error output ({out.get('ename')}: {out.get('evalue')})"
                )
            for mime, data in out.get("data", {}).items():
                if mime in ("image/png", "image/jpeg") and not _decodes(mime, data):
                    problems.append(f"code cell {number} stores an {mime} output that does not decode")
    for number, cell in enumerate(nb.get("cells", []), 1):
        for name, bundle in (cell.get("attachments") or {}).items():
            for mime, data in bundle.items():
                if mime in ("image/png", "image/jpeg") and not _decodes(mime, data):
                    problems.append(f"cell {number}: attachment {name} does not decode")
    return problems


def _decodes(mime: str, data) -> bool:
    try:
        raw = base64.b64decode("".join(data) if isinstance(data, list) else data, validate=False)
    except (binascii.Error, ValueError):
        return False
    magic = b"\x89PNG\r\n\x1a\n" if mime == "image/png" else b"\xff\xd8\xff"
    return raw.startswith(magic) and len(raw) > 64


# --- hooks ----------------------------------------------------------------------------------------


def on_config(config):
    root = root_of(config)
    if not notebooks(root):
        raise PluginError(f"no notebook NN_topic.ipynb in {root / 'notebooks'}")
    config.nav = build_nav(root)
    config.watch.extend(str(p) for p in (root / "notebooks", root / "src", root / "README.md") if p.exists())
    return config


@event_priority(100)  # before mkdocs-jupyter's on_files, which wraps the .ipynb files into pages
def on_files(files: Files, config) -> Files:
    root = root_of(config)
    for path in notebooks(root):
        files.append(File(f"notebooks/{path.name}", str(root), config.site_dir, config.use_directory_urls))
    for name in library_families(root):
        content = f"# toyalgos.{name}\n\n::: toyalgos.{name}\n"
        files.append(File.generated(config, f"reference/{name}.md", content=content))
    es5 = find_mathjax(root)
    if es5 is None:
        raise PluginError(
            "MathJax 3 not found: install the docs extra (pip install -e '.[docs]', which brings "
            "django-static-mathjax), or run 'npm install mathjax@3' in the repository root, or set "
            "TOYALGOS_MATHJAX to a MathJax 3 es5 directory"
        )
    for file in mathjax_files(es5, config):
        files.append(file)
    return files


def on_page_markdown(markdown: str, page, config, files) -> str:
    root = root_of(config)
    if page.file.src_uri == "index.md":
        readme = (root / "README.md").read_text(encoding="utf-8")
        table = readme_table(readme)
        if not table:
            log.warning("index.md: README.md has no table under '## Notebooks'")
        for path in notebooks(root):
            if f"(notebooks/{path.name})" not in table:
                log.warning(
                    f"notebooks/{path.name}: no row in README.md's notebook table (the home page's table)"
                )
        markdown = markdown.replace("<!-- readme:intro -->", readme_intro(readme))
        markdown = markdown.replace("<!-- readme:notebooks -->", table)
    if page.file.src_uri == "running.md":
        markdown = markdown.replace("<!-- notebooks:parameters -->", parameters_section(root))
    return markdown


def on_page_content(content: str, page, config, files) -> str:
    src = page.file.src_uri
    if not (src.startswith("notebooks/") and src.endswith(".ipynb")):
        return content
    for problem in notebook_problems(read_notebook(Path(page.file.abs_src_path))):
        log.warning(f"{src}: {problem}")
    # nbconvert's template loads MathJax 2 and mermaid from a CDN; the site loads MathJax 3 itself.
    content = re.sub(
        r"<!-- Load mathjax -->.*?<!-- End of mathjax configuration -->", "", content, flags=re.S
    )
    content = re.sub(
        r"<script type=\"module\">(?:(?!</script>).)*?mermaid.*?</script>", "", content, flags=re.S
    )

    def relink(match: re.Match) -> str:
        # A markdown link to a sibling notebook, "11_edm_unified.ipynb#section", points to its page.
        target, fragment = match.group(2), match.group(3) or ""
        file = files.get_file_from_path(posixpath.normpath(posixpath.join("notebooks", target)))
        if file is None:
            return match.group(0)
        return f'{match.group(1)}"{get_relative_url(file.url, page.file.url)}{fragment}"'

    content = re.sub(r'(<a\b[^>]*?\bhref=)"(?![a-z]+:|/|#)([^"#]*?\.ipynb)(#[^"]*)?"', relink, content)
    align_toc(page.toc, re.findall(r'<h[1-6] id="([^"]+)"', content))
    name = posixpath.basename(src)  # mkdocs-jupyter's include_source puts it beside the page
    download = (
        f'<p class="toyalgos-download"><a href="{name}" download>Download {name}</a> to run it: '
        f"<code>jupyter lab {name}</code>, or from a clone, <code>jupyter lab notebooks/{name}</code>.</p>"
    )
    head, h1, rest = content.partition("</h1>")  # under the notebook's title
    return head + h1 + download + rest if h1 else download + content


def align_toc(toc, heading_ids: list[str]) -> None:
    """Point the table of contents at the headings' real ids.

    mkdocs-jupyter slugs the TOC from a markdown conversion that drops inline HTML and code, so a
    heading such as "Reverse queries: `<bos> ? <sep> B`" gets a TOC anchor its page does not have.
    Walk both in document order and take the next heading whose id extends the TOC's.
    """
    position = 0
    stack = list(reversed(list(toc)))
    while stack:
        anchor = stack.pop()
        stack.extend(reversed(anchor.children))
        if anchor.id in heading_ids[position:]:
            position = heading_ids.index(anchor.id, position) + 1
            continue
        match = next(
            (i for i in range(position, len(heading_ids)) if heading_ids[i].startswith(anchor.id)), None
        )
        if match is not None:
            anchor.id, position = heading_ids[match], match + 1


def external_loads(text: str) -> list[str]:
    """URLs on other hosts that a page's scripts, images, frames, media and style sheets load."""
    found = []
    for match in LOADING_TAGS.finditer(text):
        tag = match.group(0)
        attrs = dict(re.findall(r"\b([a-z-]+)\s*=\s*[\"']([^\"']*)[\"']", tag, re.I))
        if match.group(1).lower() == "link" and not LOADING_RELS & set(attrs.get("rel", "").lower().split()):
            continue
        for key in ("src", "href"):
            if re.match(r"(https?:)?//", attrs.get(key, ""), re.I):
                found.append(attrs[key])
    return found


def on_post_build(config) -> None:
    """Every internal link and image of every page resolves; nothing is loaded from another host."""
    site = Path(config.site_dir)
    pages = sorted(p for p in site.rglob("*.html") if p.name != "404.html")
    ids: dict[Path, set[str]] = {}

    def ids_of(path: Path) -> set[str]:
        if path not in ids:
            ids[path] = set(IDS.findall(path.read_text(encoding="utf-8", errors="replace")))
        return ids[path]

    for page in pages:
        text = page.read_text(encoding="utf-8", errors="replace")
        name = page.relative_to(site).as_posix()
        for url in sorted(set(external_loads(text))):
            log.warning(f"{name}: loads {url} from another host (the site must work offline)")
        for tag, _attr, raw in URL_ATTRS.findall(text):
            url = html.unescape(raw)
            parts = urlsplit(url)
            if parts.scheme or url.startswith("//") or not url:
                continue
            if not parts.path:  # "#anchor" on the page itself
                if parts.fragment and tag.lower() == "a" and unquote(parts.fragment) not in ids_of(page):
                    log.warning(f"{name}: link to a missing anchor #{parts.fragment}")
                continue
            target = (page.parent / unquote(parts.path)).resolve()
            if target.is_dir() or parts.path.endswith("/"):
                target = target / "index.html"
            if not target.is_file():
                log.warning(f"{name}: dead {'image' if tag.lower() == 'img' else 'link'} {url}")
            elif (
                parts.fragment and target.suffix == ".html" and unquote(parts.fragment) not in ids_of(target)
            ):
                log.warning(f"{name}: link {url} names an anchor missing from its target")
