"""Check the built book (``_build/html``) the way a reader sees it, in headless Chromium.

Usage: ``python tests/browser_check.py [HTML_DIR] [--screenshots DIR] [--chromium BIN]
[--repository-url URL]`` (``make test-browser``; ``make test-browser-url`` for the online build).  Exits 1 and lists every failure if any check fails.

Static checks (every page): no raw TeX (``$...$``) or pipe-table markup in the rendered text
no matplotlib object's repr as a cell's output (``Text(0.5, 0.98, ...)``), and no code cell in
view but the parameters cell (the others ``hide-input``); no external script, stylesheet, font or image (``http(s)://`` or
``//`` in a resource attribute, or ``url(...)``/``@import`` in CSS); every ``<img>`` file exists
and figures are valid PNG files; every local link resolves to a file, and its ``#anchor`` to an
id on the target page.  Which build (``--repository-url``): the default build (no URL) has no
repository, issues or launch button and no URL of GitHub, GitLab, Binder or Colab on any page (a
citation's bare ``github.com/...`` text is not a URL); the online build (``BOOK_REPOSITORY_URL``)
has, on a chapter page, repository and issues buttons linking to URL, a download button and a
Binder launch button for URL's repository, no Colab button anywhere, and no other such URL.

In Chromium (every page, opened from a temporary copy with a small report script injected):
no resource failed to load and no script error; every image loaded (``naturalWidth > 0``) and
every figure (an image in a cell's output) is shown at >= 0.6x its natural width at 1280 px; no
table is wider than the text column (cut off, or scrolled by a bar at its foot); every
math element was typeset by MathJax (``mjx-container`` inside, no ``mjx-merror``); no error or
stderr output cell (myst-nb's ``output traceback`` / ``output stderr``); no external request; no
failed execution in the ``nb-exec-table``; the ledger table (``table.claims-ledger``) lists
exactly R0, C1..C16, N1..N3, each with a verdict and a link to its chapter; every figure opens at full
size on a click (``modadd.js`` links it to its image).  Then screenshots at 1280 px of the front
page, the ledger and chapter 3 (``SHOTS``), checked for their size and not blank.

Figures and chapters (static): every image in a cell's output sits in a numbered ``<figure>`` with
a caption of at least ``MIN_CAPTION`` characters and alt text that is not empty, a hash or a file
name; every chapter page ends with a "Conclusion" section and has one "Reproduce this chapter"
box; the front page has its computed summary figure (``figure#fig-summary``).
"""
from __future__ import annotations

import argparse
import concurrent.futures as futures
import html
import json
import re
import shutil
import subprocess
import sys
import tempfile
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlsplit

from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
SKIP_DIRS = {"_static", "_sources", "_images", "reports", "jupyter_execute", "mathjax"}
EXTERNAL = re.compile(r"^(https?:)?//", re.I)
CSS_EXTERNAL = re.compile(r"(url\(\s*['\"]?\s*(https?:)?//|@import\s+['\"](https?:)?//)", re.I)
RESOURCE_ATTRS = {"script": ("src",), "link": ("href",), "img": ("src", "srcset"),
                  "iframe": ("src",), "source": ("src", "srcset"), "video": ("src", "poster"),
                  "audio": ("src",), "embed": ("src",), "object": ("data",)}
# links that point at other documents, not resources the page loads
LINK_RELS = {"index", "search", "next", "prev", "author", "license", "canonical", "alternate",
             "help", "bookmark"}
LEDGER_IDS = ["R0", *(f"C{i}" for i in range(1, 17)), "N1", "N2", "N3"]
MIN_SHOWN = 0.6      # a figure is shown at no less than this share of its natural width
WINDOW = "--window-size=1280,1600"   # the reader's screen: every page is measured at 1280 px
BUDGET_MS = 10_000    # virtual milliseconds a page gets to load and typeset its math
SHOTS = {"intro": "book/intro.html", "ledger": "book/claims.html",
         "chapter3": "notebooks/03_execution_manifold.html"}
# each screenshot's height at 1280 px: the front page down to its summary figure, the ledger,
# chapter 3 down to its first figures
SHOT_HEIGHTS = {"intro": 4000, "ledger": 1600, "chapter3": 4000}
CHAPTER = "notebooks/01_task.html"   # the page whose header buttons the online build must have
# the header buttons of sphinx-book-theme, by their classes (launch links: title "Launch on X")
BUTTON_CLASSES = {"btn-source-repository-button": "repository",
                  "btn-source-issues-button": "issues", "btn-download-source-button": "download"}
BUTTON_GROUPS = {"dropdown-launch-buttons": "launch", "dropdown-source-buttons": "source"}
ONLINE_URL = re.compile(r"(?:https?:)?//(?:www\.)?(?:github\.com|gitlab\.com|mybinder\.org|"
                        r"colab\.research\.google\.com)[^\s\"'<>)]*", re.I)
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                  "--no-first-run", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--hide-scrollbars",
                  "--allow-file-access-from-files"]

# Injected at the top of <head>: records failed loads (capture phase) and script errors.
WATCH = """<script>window.__checkErrors=[];window.addEventListener('error',function(e){var t=e.target;
window.__checkErrors.push(t&&t!==window?'failed to load '+(t.src||t.href||t.tagName):
'script error: '+e.message+' ('+(e.filename||'').split('/').pop()+':'+e.lineno+')');},true);</script>"""
# Injected before </body>: after load and MathJax's typesetting, writes a JSON report on <html>.
REPORT = """<script>window.addEventListener('load',function(){
var ready=(window.MathJax&&MathJax.startup&&MathJax.startup.promise)||Promise.resolve();
function all(s){return Array.prototype.slice.call(document.querySelectorAll(s));}
ready.then(function(){return document.fonts.ready;}).then(function(){
var math=all('.math');
var out={images:all('img').map(function(i){return {src:i.getAttribute('src'),
  loaded:i.complete&&i.naturalWidth>0, natural:i.naturalWidth,
  shown:i.getBoundingClientRect().width, figure:!!i.closest('.cell_output')};}),
 math:math.length, untypeset:math.filter(function(m){return !m.querySelector('mjx-container');}).length,
 typeset:all('mjx-container').length, math_errors:all('mjx-merror').length,
 error_cells:all('.output.traceback,.traceback,.output.stderr').length,
 failed_executions:all('table td, table th').filter(function(c){return c.textContent.indexOf('\\u274c')>=0;}).length,
 external:performance.getEntriesByType('resource').map(function(e){return e.name;})
   .filter(function(n){return /^https?:/i.test(n);}),
 fonts_failed:Array.prototype.slice.call(document.fonts).filter(function(f){return f.status==='error';})
   .map(function(f){return f.family;}),
 ledger:all('table.claims-ledger tbody tr').map(function(r){return {id:r.cells[0].textContent.trim(),
   cells:Array.prototype.map.call(r.cells,function(c){return c.textContent.trim();}),
   links:r.querySelectorAll('a[href]').length,
   id_link:!!r.cells[0].querySelector('a[href*="notebooks/"]')};}),
 download:all('a[download="claims-ledger.csv"]').length,
 headline:all('#fig-summary img').length,
 unlinked:all('figure img').filter(function(i){return !i.closest('a[href]');}).length,
 overflowing:all('article table').filter(function(t){var room=t.parentElement.clientWidth;
   return t.getBoundingClientRect().width>room+1;}).map(function(t){
   var h=t.querySelector('th,td');return (t.className||'table')+': '+
   (h?h.textContent.trim().slice(0,40):'');}),
 errors:window.__checkErrors};
document.documentElement.setAttribute('data-browser-check',JSON.stringify(out));},
function(e){document.documentElement.setAttribute('data-browser-check',
  JSON.stringify({fatal:String(e)}));});});</script>"""


# What a reader must never see in rendered text (outside code, pre and typeset math): TeX left
# untypeset ($...$ or a bare \\mathbb-style command) and pipe-table markup left as text.
RAW_MATH = re.compile(r"\$[^$\s][^$]{0,200}\$|\\(?:mathbb|mathrm|frac|approx|sqrt)\b")
RAW_TABLE = re.compile(r"\|\s*:?(?:-{3,}|[—–]+):?\s*\|")   # smartquotes turn --- into —
RAW_TEXT_EXEMPT = {"script", "style", "pre", "code", "textarea", "head"}
VOID_TAGS = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta",
             "source", "track", "wbr"}
# a notebook cell whose code the reader sees only on request (or never), and the one cell
# whose code is part of the page: the parameters a reader changes
# a matplotlib object's repr printed as a cell's result (a cell ending in fig.suptitle(...))
OBJECT_REPR = re.compile(r"^\s*(?:Text|Line2D|Legend|Annotation)\(|<(?:Figure size|matplotlib\.|"
                         r"Axes[: ]|seaborn\.)")
CODE_OUT_OF_THE_WAY = {"tag_hide-input", "tag_hide-cell", "tag_remove-input", "tag_remove-cell",
                       "tag_parameters"}


class RenderParser(HTMLParser):
    """The rendered text of a page outside code and math, and its code cells left in view."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.text: list[str] = []
        self.shown_code = 0                # cell inputs shown without a toggle
        self.plain_outputs: list[str] = []   # text/plain results of cells
        self.figures: list[dict] = []        # each cell-output image: caption, alt, number
        self.headings: list[str] = []        # the text of every <h2>
        self.reproduce_boxes = 0             # "Reproduce this chapter" boxes
        self.cells = 0                       # notebook cells (a chapter page has some)
        self._open: list[tuple[str, set[str]]] = []
        self._figure: dict | None = None     # the <figure> being read

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        classes = set((dict(attrs).get("class") or "").split())
        if tag == "div" and "cell_input" in classes:
            cell = next((c for t, c in reversed(self._open) if t == "div" and "cell" in c), set())
            if not cell & CODE_OUT_OF_THE_WAY:
                self.shown_code += 1
        if "reproduce-chapter" in classes:
            self.reproduce_boxes += 1
        if tag == "div" and "cell" in classes:
            self.cells += 1
        if tag == "figure":
            self._figure = {"images": [], "caption": "", "number": False}
        if tag == "img" and any(t == "div" and "cell_output" in c for t, c in self._open):
            image = {"alt": dict(attrs).get("alt") or "", "src": dict(attrs).get("src") or "",
                     "in_figure": self._figure is not None}
            self.figures.append(image)
            if self._figure is not None:
                self._figure["images"].append(image)
        if tag == "span" and "caption-number" in classes and self._figure is not None:
            self._figure["number"] = True
        if tag == "h2":
            self.headings.append("")
        if tag not in VOID_TAGS:
            self._open.append((tag, classes))

    def handle_endtag(self, tag: str) -> None:
        if tag == "figure" and self._figure is not None:
            for image in self._figure["images"]:
                image["caption"] = self._figure["caption"].strip()
                image["number"] = self._figure["number"]
            self._figure = None
        for index in range(len(self._open) - 1, -1, -1):     # tolerate unclosed inner tags
            if self._open[index][0] == tag:
                del self._open[index:]
                break

    def handle_data(self, data: str) -> None:
        if not any(t in RAW_TEXT_EXEMPT or "math" in c for t, c in self._open):
            self.text.append(data)
        if any(t == "div" and "text_plain" in c for t, c in self._open) and data.strip():
            self.plain_outputs.append(data)
        if self._figure is not None and any(t == "figcaption" for t, _ in self._open) \
                and not any(t == "a" and "headerlink" in c or "caption-number" in c
                            for t, c in self._open):
            self._figure["caption"] += data
        if self.headings and any(t == "h2" for t, _ in self._open) \
                and not any(t == "a" and "headerlink" in c for t, c in self._open):
            self.headings[-1] += data


# alt text that names nothing: empty, a hash or a file name (myst-nb's default is the file's hash)
MEANINGLESS_ALT = re.compile(r"^\s*(?:[0-9a-f]{12,}(?:\.png)?|[\w-]+\.(?:png|svg|jpe?g))?\s*$", re.I)
MIN_CAPTION = 40      # characters a caption needs to say what a figure shows
CHAPTER_PAGE = re.compile(r"^notebooks/\d\d_[\w-]+\.html$")
SUMMARY_FIGURE = "fig-summary"   # the front page's computed summary figure (modadd.headline)


def figure_failures(name: str, parser: "RenderParser") -> list[str]:
    """A figure a reader cannot identify or read about: not in a numbered ``<figure>``, a
    caption under :data:`MIN_CAPTION` characters, or alt text that is empty, a hash or a file
    name; on a chapter page, a last section not called Conclusion or no "Reproduce this
    chapter" box."""
    failures = []
    for image in parser.figures:
        src = image["src"].rsplit("/", 1)[-1][:20]
        if not image["in_figure"] or not image.get("number"):
            failures.append(f"{name}: figure {src} has no numbered caption (mystnb figure "
                            f"metadata on its cell)")
        elif len(image.get("caption", "")) < MIN_CAPTION:
            failures.append(f"{name}: figure {src}: caption {image.get('caption', '')!r} says "
                            f"too little (at least {MIN_CAPTION} characters)")
        if MEANINGLESS_ALT.match(image["alt"]):
            failures.append(f"{name}: figure {src}: alt text {image['alt']!r} describes nothing")
    if CHAPTER_PAGE.match(name) and parser.cells:
        headings = [h.strip() for h in parser.headings if h.strip()]
        if not headings or headings[-1] != "Conclusion":
            failures.append(f"{name}: the last section is "
                            f"{headings[-1] if headings else None!r}, not 'Conclusion'")
        if parser.reproduce_boxes != 1:
            failures.append(f"{name}: {parser.reproduce_boxes} 'Reproduce this chapter' boxes "
                            f"(expected 1)")
    return failures


def render_failures(name: str, path: Path) -> list[str]:
    """Raw TeX or pipe-table markup in a page's rendered text; a matplotlib object's repr as
    a cell's output; code cells left in view."""
    parser = RenderParser()
    parser.feed(path.read_text(encoding="utf-8"))
    text = " ".join(parser.text)
    failures = [f"{name}: raw math in the text: {m.group(0)[:60]!r}"
                for m in RAW_MATH.finditer(text)][:3]
    failures += [f"{name}: a pipe table left as text: {m.group(0)!r}"
                 for m in RAW_TABLE.finditer(text)][:3]
    failures += [f"{name}: an object's repr as output: {t.strip()[:60]!r}"
                 for t in parser.plain_outputs if OBJECT_REPR.search(t)]
    if parser.shown_code:
        failures.append(f"{name}: {parser.shown_code} code cell(s) shown without a toggle "
                        f"(tag them hide-input; only the parameters cell stays in view)")
    return failures + figure_failures(name, parser)


class PageParser(HTMLParser):
    """Collects a page's resource URLs, image sources, link targets, ids and inline CSS."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.resources: list[str] = []
        self.images: list[str] = []
        self.links: list[str] = []
        self.ids: set[str] = set()
        self.styles: list[str] = []
        self.redirect: str | None = None
        self.buttons: list[tuple[str, str]] = []   # (kind, href): repository, issues, launch ...
        self._in_style = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {k: v or "" for k, v in attrs}
        if "id" in values:
            self.ids.add(values["id"])
        if tag == "a" and "name" in values:
            self.ids.add(values["name"])
        if tag == "meta" and values.get("http-equiv", "").lower() == "refresh":
            self.redirect = values.get("content", "").split("url=")[-1].strip()
        if tag == "a" and values.get("href"):
            self.links.append(values["href"])
        classes = set(values.get("class", "").split())
        self.buttons += [(kind, values.get("href", "")) for cls, kind in BUTTON_CLASSES.items()
                         if cls in classes]
        self.buttons += [(kind, "") for cls, kind in BUTTON_GROUPS.items() if cls in classes]
        if tag == "a" and values.get("title", "").startswith("Launch on "):
            self.buttons.append((f"launch {values['title'][10:]}", values.get("href", "")))
        if tag == "img" and values.get("src"):
            self.images.append(values["src"])
        if tag == "link" and set(values.get("rel", "").lower().split()) <= LINK_RELS \
                and values.get("rel"):
            return
        for attr in RESOURCE_ATTRS.get(tag, ()):
            if values.get(attr):
                self.resources.append(values[attr])
        if tag == "style":
            self._in_style = True

    def handle_endtag(self, tag: str) -> None:
        if tag == "style":
            self._in_style = False

    def handle_data(self, data: str) -> None:
        if self._in_style:
            self.styles.append(data)


def parse_page(path: Path) -> PageParser:
    """The parsed page at ``path``."""
    parser = PageParser()
    parser.feed(path.read_text(encoding="utf-8"))
    return parser


def book_pages(html_dir: Path) -> list[Path]:
    """Every HTML page of the book, skipping static assets and copies of sources."""
    return sorted(p for p in html_dir.rglob("*.html")
                  if not SKIP_DIRS & set(p.relative_to(html_dir).parts[:-1])
                  and not p.name.startswith("."))


def local_target(page: Path, url: str) -> tuple[Path | None, str]:
    """The file and fragment a local URL on ``page`` points at (``None``: not a local file)."""
    parts = urlsplit(url)
    if parts.scheme or parts.netloc or url.startswith(("mailto:", "data:", "javascript:")):
        return None, ""
    target = page if not parts.path else (page.parent / unquote(parts.path)).resolve()
    return target, unquote(parts.fragment)


def check_png(path: Path) -> str | None:
    """``None`` if ``path`` is a valid PNG with a non-empty image, else what is wrong."""
    try:
        with Image.open(path) as image:
            if image.format != "PNG":
                return f"{path.name} is {image.format}, not PNG"
            image.verify()
            if min(image.size) < 1:
                return f"{path.name} is empty"
    except Exception as err:   # PIL raises several types for corrupt files
        return f"{path.name} is not a valid image: {err}"
    return None


def static_checks(html_dir: Path, pages: list[Path]) -> list[str]:
    """Failures found without a browser: external resources, images, local links."""
    failures, parsed = [], {p: parse_page(p) for p in pages}
    ids: dict[Path, set[str]] = {p.resolve(): parsed[p].ids for p in pages}
    for page, info in parsed.items():
        name = page.relative_to(html_dir).as_posix()
        failures += [f"{name}: external resource {u}" for u in info.resources if EXTERNAL.match(u)]
        failures += [f"{name}: external URL in inline CSS" for s in info.styles
                     if CSS_EXTERNAL.search(s)]
        for src in info.images:
            target, _ = local_target(page, src)
            if src.startswith("data:"):
                continue
            if target is None or not target.is_file():
                failures.append(f"{name}: missing image {src}")
            elif "_images" in target.parts:
                problem = check_png(target)
                if problem:
                    failures.append(f"{name}: figure {problem}")
        for href in info.links:
            target, fragment = local_target(page, href)
            if target is None:
                continue
            if not target.exists():
                failures.append(f"{name}: broken link {href}")
            elif fragment and target.suffix == ".html":
                known = ids.get(target) if target in ids else parse_page(target).ids
                if fragment not in known:
                    failures.append(f"{name}: link {href}: no id {fragment!r} on the target page")
    for page in pages:
        failures += render_failures(page.relative_to(html_dir).as_posix(), page)
    intro = html_dir / SHOTS["intro"]
    if intro.is_file() and not re.search(rf'<figure[^>]*id="{SUMMARY_FIGURE}"[^>]*>\s*'
                                         rf'(?:<a[^>]*>\s*)?<img', intro.read_text("utf-8")):
        failures.append(f"{SHOTS['intro']}: no summary figure (figure#{SUMMARY_FIGURE})")
    for css in sorted((html_dir / "_static").rglob("*.css")):
        if CSS_EXTERNAL.search(css.read_text(encoding="utf-8", errors="replace")):
            failures.append(f"{css.relative_to(html_dir)}: loads an external URL")
    return failures


def binder_prefix(url: str, branch: str) -> str:
    """The start of a Binder launch link for the repository ``url`` on ``branch``."""
    host, owner, repo = urlsplit(url).netloc, *urlsplit(url).path.strip("/").split("/")[:2]
    spec = f"gh/{owner}/{repo}" if host == "github.com" else f"gl/{owner}%2F{repo}"
    return f"https://mybinder.org/v2/{spec}/{branch}?urlpath="


def repository_failures(html_dir: Path, pages: list[Path], url: str = "",
                        branch: str = "main") -> list[str]:
    """The default build (``url`` empty) names no repository: no repository, issues or launch
    button, no GitHub/GitLab/Binder/Colab URL. The online build's chapter page has repository,
    issues, download and Binder buttons for ``url``; no page has Colab or another such URL."""
    failures, url = [], url.rstrip("/")
    binder = binder_prefix(url, branch) if url else ""
    for page in pages:
        name = page.relative_to(html_dir).as_posix()
        info, text = parse_page(page), page.read_text(encoding="utf-8")
        found = [m.group(0) for m in ONLINE_URL.finditer(text)]
        if not url:
            failures += [f"{name}: {kind} button (the default build names no repository)"
                         for kind, _ in info.buttons if kind != "download"]
            failures += [f"{name}: URL {u} (the default build names no repository)"
                         for u in dict.fromkeys(found)]
            continue
        failures += [f"{name}: {kind} button (no Colab: it cannot open .py chapters)"
                     for kind, _ in info.buttons if kind == "launch Colab"]
        failures += [f"{name}: URL {u} is neither {url} nor its Binder" for u in dict.fromkeys(found)
                     if not (u == url or u.startswith(url + "/") or u.startswith(binder))]
        if name != CHAPTER:
            continue
        buttons = {kind: href for kind, href in reversed(info.buttons)}
        source = (html_dir / "_sources" / CHAPTER).with_suffix(".py").relative_to(html_dir)
        expected = {"repository": (url, "== "), "issues": (f"{url}/issues", "starting with "),
                    "download": (f"../{source.as_posix()}", "== "),
                    "launch Binder": (f"{binder}lab/tree/{Path(CHAPTER).with_suffix('.py')}",
                                      "== ")}
        for kind, (want, how) in expected.items():
            href = buttons.get(kind)
            if href is None:
                failures.append(f"{name}: no {kind} button")
            elif not (href == want or how.startswith("starting") and href.startswith(want)):
                failures.append(f"{name}: {kind} button links to {href}, expected {how}{want}")
    return failures


def run_chromium(chromium: str, args: list[str], timeout: float) -> str:
    """Run headless Chromium (common flags, a fresh profile, a virtual-time budget long enough
    for MathJax to typeset) with ``args``; its stdout."""
    profile = tempfile.mkdtemp(prefix="browser-check-")
    try:
        command = [chromium, *CHROMIUM_FLAGS, f"--user-data-dir={profile}",
                   f"--virtual-time-budget={BUDGET_MS}", *args]
        return subprocess.run(command, capture_output=True, text=True, timeout=timeout).stdout
    finally:
        shutil.rmtree(profile, ignore_errors=True)


def instrumented_copy(page: Path) -> Path:
    """A copy of ``page`` beside it (so relative URLs resolve) with the report scripts injected."""
    text = page.read_text(encoding="utf-8")
    text = re.sub(r"(<head[^>]*>)", lambda m: m.group(1) + WATCH, text, count=1)
    text = text.replace("</body>", REPORT + "</body>", 1)
    copy = page.with_name(f".browser-check-{page.name}")
    copy.write_text(text, encoding="utf-8")
    return copy


def browser_report(page: Path, chromium: str, timeout: float) -> dict:
    """The injected script's report for ``page`` (``{"fatal": ...}`` if it never completed)."""
    copy = instrumented_copy(page)
    try:
        dom = run_chromium(chromium, [WINDOW, "--dump-dom", copy.as_uri()], timeout)
    except subprocess.TimeoutExpired:
        return {"fatal": f"Chromium did not finish within {timeout:.0f} s"}
    finally:
        copy.unlink(missing_ok=True)
    found = re.search(r'data-browser-check="([^"]*)"', dom)
    if not found:
        return {"fatal": "the report script did not run (page did not load, or no MathJax)"}
    return json.loads(html.unescape(found.group(1)))


def page_failures(name: str, report: dict) -> list[str]:
    """What is wrong with one page, from its browser report."""
    if "fatal" in report:
        return [f"{name}: {report['fatal']}"]
    failures = [f"{name}: {e}" for e in report["errors"]]
    failures += [f"{name}: image did not load: {i['src']}" for i in report["images"]
                 if not i["loaded"]]
    failures += [f"{name}: figure {i['src']} shown at {i['shown'] / i['natural']:.2f}x its "
                 f"natural width {i['natural']} px (at least {MIN_SHOWN:.1f}x: draw it for the "
                 f"page, modadd.plots)" for i in report["images"]
                 if i.get("figure") and i.get("natural") and i["shown"] < MIN_SHOWN * i["natural"]]
    if report["untypeset"] or report["math_errors"]:
        failures.append(f"{name}: {report['untypeset']} of {report['math']} math elements not "
                        f"typeset, {report['math_errors']} MathJax errors")
    if report["error_cells"]:
        failures.append(f"{name}: {report['error_cells']} error/stderr output cells")
    if report["failed_executions"]:
        failures.append(f"{name}: {report['failed_executions']} failed notebook executions")
    failures += [f"{name}: table wider than the text column ({t})"
                 for t in report.get("overflowing", [])]
    if report.get("unlinked"):
        failures.append(f"{name}: {report['unlinked']} figure(s) a click does not enlarge "
                        f"(book/_static/modadd.js)")
    failures += [f"{name}: external request {u}" for u in report["external"]]
    failures += [f"{name}: font failed to load: {f}" for f in report["fonts_failed"]]
    return failures


def ledger_failures(report: dict) -> list[str]:
    """The ledger page must list exactly R0, C1..C16, N1..N3, each with a verdict and a chapter link
    (its id links to the chapter's section), and offer the ledger as a CSV download."""
    rows = report.get("ledger", [])
    ids = [r["id"] for r in rows]
    failures = [] if ids == LEDGER_IDS else [f"ledger: lists {ids}, expected {LEDGER_IDS}"]
    failures += [f"ledger: {r['id']} has no chapter link" for r in rows if r["links"] < 1]
    failures += [f"ledger: {r['id']}'s id does not link to its chapter section" for r in rows
                 if not r.get("id_link")]
    failures += [f"ledger: {r['id']} has no verdict" for r in rows if len(r["cells"]) < 4
                 or not r["cells"][3]]
    if rows and not report.get("download"):
        failures.append("ledger: no CSV download (claims-ledger.csv)")
    return failures


def screenshot(page: Path, target: Path, chromium: str, timeout: float,
               height: int = 1600) -> list[str]:
    """Save a screenshot 1280 px wide and ``height`` tall of ``page`` to ``target``; failures
    if missing, of another size or blank."""
    target.parent.mkdir(parents=True, exist_ok=True)
    target.unlink(missing_ok=True)
    try:
        run_chromium(chromium, [f"--screenshot={target}", f"--window-size=1280,{height}",
                                page.as_uri()], timeout)
    except subprocess.TimeoutExpired:
        return [f"screenshot {target.name}: Chromium did not finish within {timeout:.0f} s"]
    if not target.is_file():
        return [f"screenshot {target.name}: not written"]
    with Image.open(target) as image:
        extrema = image.convert("L").getextrema()
        size = image.size
    failures = [] if size == (1280, height) else [f"screenshot {target.name}: size {size}"]
    return failures + ([f"screenshot {target.name}: blank"] if extrema[0] == extrema[1] else [])



def main(argv: list[str] | None = None) -> int:
    """Run every check; print the failures; 0 if there are none."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("html_dir", nargs="?", default=str(ROOT / "_build" / "html"))
    parser.add_argument("--screenshots", default=str(ROOT / "_build" / "screenshots"))
    parser.add_argument("--chromium", default="chromium")
    parser.add_argument("--jobs", type=int, default=2, help="Chromium processes at once")
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds per page")
    parser.add_argument("--repository-url", default="", help="the build's BOOK_REPOSITORY_URL "
                        "(empty: the default build, which names no repository)")
    parser.add_argument("--branch", default="main", help="the online build's BOOK_BRANCH")
    args = parser.parse_args(argv)
    html_dir = Path(args.html_dir).resolve()
    if not (html_dir / "index.html").is_file():
        parser.error(f"html_dir: no index.html in {html_dir}; build the book first (make book)")
    if shutil.which(args.chromium) is None:
        parser.error(f"--chromium: {args.chromium!r} not found (apt-get install chromium)")
    pages = book_pages(html_dir)
    missing = [p for p in SHOTS.values() if not (html_dir / p).is_file()]
    failures = [f"missing page {p}" for p in missing] + static_checks(html_dir, pages)
    if args.repository_url and not (html_dir / CHAPTER).is_file():
        failures.append(f"missing page {CHAPTER}")
    failures += repository_failures(html_dir, pages, args.repository_url, args.branch)
    browsed = [p for p in pages if parse_page(p).redirect is None]
    with futures.ThreadPoolExecutor(max(1, args.jobs)) as pool:
        reports = dict(zip(browsed, pool.map(
            lambda p: browser_report(p, args.chromium, args.timeout), browsed)))
    for page, report in reports.items():
        name = page.relative_to(html_dir).as_posix()
        failures += page_failures(name, report)
        if name == SHOTS["ledger"]:
            failures += ledger_failures(report)
        if name == SHOTS["intro"] and not report.get("headline"):
            failures.append(f"{name}: the summary figure did not render (#{SUMMARY_FIGURE} img)")
    for label, page in SHOTS.items():
        if (html_dir / page).is_file():
            failures += screenshot(html_dir / page, Path(args.screenshots) / f"{label}.png",
                                   args.chromium, args.timeout, SHOT_HEIGHTS[label])
    typeset = sum(r.get("typeset", 0) for r in reports.values())
    build = f"repository {args.repository_url}" if args.repository_url else "no repository"
    print(f"browser check ({build}): {len(pages)} pages ({len(reports)} opened in Chromium), "
          f"{sum(len(r.get('images', [])) for r in reports.values())} images, "
          f"{typeset} typeset math elements; screenshots in {args.screenshots}")
    for failure in failures:
        print(f"FAIL {failure}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
