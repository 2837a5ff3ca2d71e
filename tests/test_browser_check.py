"""The browser check's static checks and report reading, on a tiny hand-made site (no Chromium)."""
from __future__ import annotations

from pathlib import Path

from PIL import Image

import browser_check

PAGE = """<html><head>{head}</head><body><h1 id="top">t</h1>{body}</body></html>"""


def site(tmp_path: Path, head: str = "", body: str = "") -> Path:
    """A one-page site with a valid figure and a second page with an anchor."""
    html = tmp_path / "html"
    (html / "_images").mkdir(parents=True)
    (html / "_static").mkdir()
    Image.new("RGB", (4, 3), "red").save(html / "_images" / "fig.png")
    (html / "index.html").write_text(PAGE.format(head=head, body=body))
    (html / "other.html").write_text(PAGE.format(head="", body='<p id="here">x</p>'))
    return html


def failures(html: Path) -> list[str]:
    return browser_check.static_checks(html, browser_check.book_pages(html))


def test_a_clean_site_passes(tmp_path: Path) -> None:
    html = site(tmp_path, head='<link rel="stylesheet" href="_static/a.css">'
                '<link rel="next" href="other.html">',
                body='<img src="_images/fig.png"><a href="other.html#here">ok</a>'
                     '<a href="https://arxiv.org/abs/1">a paper</a><a href="#top">up</a>')
    (html / "_static" / "a.css").write_text("body { background: url(img/x.png); }")
    assert failures(html) == []


def test_external_resources_are_reported(tmp_path: Path) -> None:
    html = site(tmp_path, head='<script src="https://cdn.example/x.js"></script>'
                '<link rel="stylesheet" href="//fonts.example/f.css">'
                '<style>@import "https://fonts.example/g.css";</style>')
    (html / "_static" / "b.css").write_text("@font-face { src: url('https://f.example/w.woff2') }")
    found = failures(html)
    assert "index.html: external resource https://cdn.example/x.js" in found
    assert "index.html: external resource //fonts.example/f.css" in found
    assert "index.html: external URL in inline CSS" in found
    assert "_static/b.css: loads an external URL" in found
    assert len(found) == 4


def test_missing_and_broken_images_and_links_are_reported(tmp_path: Path) -> None:
    html = site(tmp_path, body='<img src="_images/gone.png"><img src="_images/bad.png">'
                               '<a href="other.html#nowhere">x</a><a href="missing.html">y</a>')
    (html / "_images" / "bad.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 10)
    found = failures(html)
    assert found[0] == "index.html: missing image _images/gone.png"
    assert found[1].startswith("index.html: figure bad.png is not a valid image")
    assert found[2] == "index.html: link other.html#nowhere: no id 'nowhere' on the target page"
    assert found[3] == "index.html: broken link missing.html"
    assert len(found) == 4


def test_a_jpeg_figure_is_not_accepted(tmp_path: Path) -> None:
    html = site(tmp_path, body='<img src="_images/photo.png">')
    Image.new("RGB", (4, 3), "blue").save(html / "_images" / "photo.png", format="JPEG")
    assert failures(html) == ["index.html: figure photo.png is JPEG, not PNG"]


def test_browser_reports_are_read() -> None:
    report = {"errors": ["failed to load x.js"], "images": [{"src": "a.png", "loaded": False}],
              "math": 3, "untypeset": 1, "math_errors": 0, "error_cells": 2,
              "failed_executions": 1, "external": [], "fonts_failed": ["MJXZERO"]}
    assert browser_check.page_failures("p.html", report) == [
        "p.html: failed to load x.js", "p.html: image did not load: a.png",
        "p.html: 1 of 3 math elements not typeset, 0 MathJax errors",
        "p.html: 2 error/stderr output cells", "p.html: 1 failed notebook executions",
        "p.html: font failed to load: MJXZERO"]
    assert browser_check.page_failures("p.html", {"fatal": "no report"}) == ["p.html: no report"]


def test_the_ledger_must_list_every_claim() -> None:
    rows = [{"id": i, "cells": [i, "claim", "source", "supported"], "links": 1, "id_link": True}
            for i in browser_check.LEDGER_IDS]
    assert browser_check.ledger_failures({"ledger": rows, "download": 1}) == []
    short = rows[:16] + [{**rows[16], "links": 0, "cells": ["C16", "c", "s", ""],
                          "id_link": False}] + rows[17:]
    assert browser_check.ledger_failures({"ledger": short[:16], "download": 1})[0] \
        .startswith("ledger: lists")
    assert browser_check.ledger_failures({"ledger": short}) == [
        "ledger: C16 has no chapter link", "ledger: C16's id does not link to its chapter section",
        "ledger: C16 has no verdict", "ledger: no CSV download (claims-ledger.csv)"]


URL = "https://github.com/owner/modadd"
BINDER = "https://mybinder.org/v2/gh/owner/modadd/main?urlpath=lab/tree/notebooks/01_task.py"


def buttons(binder: str = BINDER, repo: str = URL, issues: str = URL + "/issues/new?title=x",
            extra: str = "") -> str:
    """sphinx-book-theme's header buttons as the online build renders them (abridged)."""
    launch = (f'<div class="dropdown dropdown-launch-buttons"><ul><li><a href="{binder}" '
              f'class="btn btn-sm dropdown-item" title="Launch on Binder">Binder</a></li>'
              f'{extra}</ul></div>') if binder else ""
    source = ('<div class="dropdown dropdown-source-buttons"><ul>'
              + (f'<li><a href="{repo}" class="btn btn-source-repository-button">R</a></li>'
                 if repo else "")
              + (f'<li><a href="{issues}" class="btn btn-source-issues-button">I</a></li>'
                 if issues else "") + '</ul></div>')
    download = ('<div class="dropdown dropdown-download-buttons"><a href="../_sources/notebooks/'
                '01_task.py" class="btn btn-download-source-button">.py</a></div>')
    return launch + source + download


def book(tmp_path: Path, header: str, intro: str = "") -> Path:
    """A site with a chapter page (header buttons ``header``) and an intro page."""
    html = site(tmp_path, body=intro)
    (html / "notebooks").mkdir()
    (html / "_sources" / "notebooks").mkdir(parents=True)
    (html / "_sources" / "notebooks" / "01_task.py").write_text("# %%\n")
    (html / "notebooks" / "01_task.html").write_text(PAGE.format(head="", body=header))
    return html


def repository(html: Path, url: str = "") -> list[str]:
    return browser_check.repository_failures(html, browser_check.book_pages(html), url)


def test_the_default_build_names_no_repository(tmp_path: Path) -> None:
    citation = "<p>Code: github.com/someone/bubble-modadd, commit 39dcc3a</p>"   # text, not a URL
    download = buttons(binder="", repo="", issues="").split("</div>", 1)[1]
    html = book(tmp_path, download, intro=citation)
    assert repository(html) == []
    assert failures(html) == []


def test_buttons_or_urls_in_the_default_build_are_reported(tmp_path: Path) -> None:
    html = book(tmp_path, buttons(), intro='<a href="https://colab.research.google.com/x">c</a>'
                '<script>var u="//github.com/a/b";</script>')
    found = repository(html)
    assert found[:2] == ["index.html: URL https://colab.research.google.com/x (the default "
                         "build names no repository)",
                         "index.html: URL //github.com/a/b (the default build names no "
                         "repository)"]
    chapter = [f.split(": ", 1)[1] for f in found if f.startswith("notebooks/01_task.html")]
    assert chapter[:5] == [f"{kind} button (the default build names no repository)" for kind in
                           ("launch", "launch Binder", "source", "repository", "issues")]
    assert chapter[5] == f"URL {BINDER} (the default build names no repository)"
    assert len(found) == 2 + 5 + 3


def test_the_online_build_has_the_buttons_of_its_repository(tmp_path: Path) -> None:
    html = book(tmp_path, buttons(), intro=f'<a href="{URL}/blob/main/README.md">readme</a>')
    assert repository(html, URL) == []
    assert repository(html, URL + "/") == []


def test_missing_or_wrong_buttons_in_the_online_build_are_reported(tmp_path: Path) -> None:
    html = book(tmp_path, buttons(binder="", repo="", issues="https://github.com/other/x/issues"))
    assert repository(html, URL) == [
        "notebooks/01_task.html: URL https://github.com/other/x/issues is neither "
        f"{URL} nor its Binder",
        "notebooks/01_task.html: no repository button",
        "notebooks/01_task.html: issues button links to https://github.com/other/x/issues, "
        f"expected starting with {URL}/issues",
        "notebooks/01_task.html: no launch Binder button"]


def test_a_colab_button_or_another_binder_is_reported(tmp_path: Path) -> None:
    colab = ('<li><a href="https://colab.research.google.com/github/owner/modadd/blob/main/'
             'notebooks/01_task.py" class="btn" title="Launch on Colab">Colab</a></li>')
    other = "https://mybinder.org/v2/gh/owner/modadd/dev?urlpath=lab/tree/notebooks/01_task.py"
    html = book(tmp_path, buttons(binder=other, extra=colab))
    found = repository(html, URL)
    assert found[0] == "notebooks/01_task.html: launch Colab button (no Colab: it cannot open " \
        ".py chapters)"
    assert found[1] == f"notebooks/01_task.html: URL {other} is neither {URL} nor its Binder"
    assert found[2].startswith("notebooks/01_task.html: URL https://colab.research.google.com/")
    assert found[3] == f"notebooks/01_task.html: launch Binder button links to {other}, " \
        f"expected == {BINDER}"
    assert len(found) == 4
    assert browser_check.binder_prefix("https://gitlab.com/g/r", "main") == \
        "https://mybinder.org/v2/gl/g%2Fr/main?urlpath="


CELL = ('<div class="cell{tags} docutils container"><div class="cell_input docutils container">'
        '<pre>x = 1</pre></div><div class="cell_output docutils container">{out}</div></div>')


def test_raw_math_and_pipe_tables_in_the_text_are_reported(tmp_path: Path) -> None:
    clean = ('<p>the rate <span class="math notranslate nohighlight">\\(r_{90}\\)</span> costs '
             '$5 in <code>$x$</code></p><pre>| a |\n|---|</pre><table><tr><td>1</td></tr></table>')
    assert failures(site(tmp_path / "a", body=clean)) == []
    raw = ('<p>Chapter 3: $r_{90}$ in \\mathbb{R}^{16384}</p>'
           '<p>| m | r90 | |---|---| | 1 | 3 |</p><p>| a | b |\n|—|—|</p>')
    assert failures(site(tmp_path / "b", body=raw)) == [
        "index.html: raw math in the text: '$r_{90}$'",
        "index.html: raw math in the text: '\\\\mathbb'",
        "index.html: a pipe table left as text: '|---|'",
        "index.html: a pipe table left as text: '|—|'"]


def test_code_cells_in_view_are_reported_but_the_parameters_cell(tmp_path: Path) -> None:
    hidden = "".join(CELL.format(tags=t, out="<p>ok</p>") for t in
                     (" tag_parameters", " tag_hide-input", " tag_remove-input"))
    assert failures(site(tmp_path / "a", body=hidden)) == []
    shown = hidden + CELL.format(tags="", out="") + CELL.format(tags=" tag_remove-output", out="")
    assert failures(site(tmp_path / "b", body=shown)) == [
        "index.html: 2 code cell(s) shown without a toggle (tag them hide-input; only the "
        "parameters cell stays in view)"]


def test_an_object_repr_as_output_is_reported(tmp_path: Path) -> None:
    plain = ('<div class="output text_plain highlight-myst-ansi notranslate"><div class="highlight">'
             '<pre><span></span>{}\n</pre></div></div>')
    ok = CELL.format(tags=" tag_hide-input", out=plain.format("Text size: 3 (a count)"))
    assert failures(site(tmp_path / "a", body=ok)) == []
    bad = CELL.format(tags=" tag_hide-input", out=plain.format(
        "Text(0.5, 0.98, 'Fingerprint sequences, seed 0')"))
    bad += CELL.format(tags=" tag_hide-input", out=plain.format("&lt;Figure size 640x480 with 1 Axes&gt;"))
    assert failures(site(tmp_path / "b", body=bad)) == [
        "index.html: an object's repr as output: \"Text(0.5, 0.98, 'Fingerprint sequences, seed 0')\"",
        "index.html: an object's repr as output: '<Figure size 640x480 with 1 Axes>'"]


def test_a_figure_shrunk_below_six_tenths_is_reported() -> None:
    base = {"errors": [], "math": 0, "untypeset": 0, "math_errors": 0, "error_cells": 0,
            "failed_executions": 0, "external": [], "fonts_failed": []}
    images = [{"src": "a.png", "loaded": True, "natural": 1050, "shown": 685, "figure": True},
              {"src": "logo.png", "loaded": True, "natural": 2000, "shown": 100, "figure": False},
              {"src": "b.png", "loaded": True, "natural": 1700, "shown": 685, "figure": True}]
    assert browser_check.page_failures("p.html", {**base, "images": images}) == [
        "p.html: figure b.png shown at 0.40x its natural width 1700 px (at least 0.6x: draw it "
        "for the page, modadd.plots)"]


def test_a_table_wider_than_the_column_is_reported() -> None:
    base = {"errors": [], "images": [], "math": 0, "untypeset": 0, "math_errors": 0,
            "error_cells": 0, "failed_executions": 0, "external": [], "fonts_failed": []}
    assert browser_check.page_failures("p.html", {**base, "overflowing": []}) == []
    assert browser_check.page_failures("p.html", {**base, "overflowing": ["dataframe: T"]}) == [
        "p.html: table wider than the text column (dataframe: T)"]


FIGURE = ('<figure class="align-default" id="fig-a"><img alt="{alt}" src="_images/fig.png" />'
          '<figcaption><p><span class="caption-number">Fig. 1 </span><span class="caption-text">'
          '{caption}</span><a class="headerlink" href="#fig-a">#</a></p></figcaption></figure>')
CAPTION = "Held-out accuracy per m over training, mean and 95% CI over seeds"
ALT = "Four rising accuracy curves with shaded bands"


def test_figures_need_a_numbered_caption_and_alt_text(tmp_path: Path) -> None:
    good = CELL.format(tags=" tag_hide-input", out=FIGURE.format(alt=ALT, caption=CAPTION))
    assert failures(site(tmp_path / "a", body=good)) == []
    bad = (CELL.format(tags=" tag_hide-input", out='<img alt="0a1b2c3d4e5f60718293" '
                                                   'src="_images/fig.png" />')
           + CELL.format(tags=" tag_hide-input", out=FIGURE.format(alt="fig.png", caption="Acc")))
    assert failures(site(tmp_path / "b", body=bad)) == [
        "index.html: figure fig.png has no numbered caption (mystnb figure metadata on its cell)",
        "index.html: figure fig.png: alt text '0a1b2c3d4e5f60718293' describes nothing",
        "index.html: figure fig.png: caption 'Acc' says too little (at least 40 characters)",
        "index.html: figure fig.png: alt text 'fig.png' describes nothing"]


def chapter_site(tmp_path: Path, body: str) -> Path:
    html = site(tmp_path)
    (html / "notebooks").mkdir()
    (html / "notebooks" / "03_x.html").write_text(PAGE.format(head="", body=body))
    return html


def test_a_chapter_needs_a_conclusion_last_and_a_reproduce_box(tmp_path: Path) -> None:
    box = '<div class="admonition tip reproduce-chapter"><p>Reproduce this chapter</p></div>'
    heading = '<section id="x"><h2>{}<a class="headerlink" href="#x">#</a></h2></section>'
    good = CELL.format(tags=" tag_hide-input", out=box) + heading.format("1. Rank") \
        + heading.format("Conclusion")
    assert failures(chapter_site(tmp_path / "a", good)) == []
    bad = CELL.format(tags=" tag_hide-input", out="") + heading.format("Conclusion") \
        + heading.format("7. Appendix")
    assert failures(chapter_site(tmp_path / "b", bad)) == [
        "notebooks/03_x.html: the last section is '7. Appendix', not 'Conclusion'",
        "notebooks/03_x.html: 0 'Reproduce this chapter' boxes (expected 1)"]


def test_the_front_page_needs_its_summary_figure(tmp_path: Path) -> None:
    html = site(tmp_path)
    (html / "book").mkdir()
    intro = html / "book" / "intro.html"
    intro.write_text(PAGE.format(head="", body="<p>findings</p>"))
    assert failures(html) == ["book/intro.html: no summary figure (figure#fig-summary)"]
    intro.write_text(PAGE.format(head="", body='<figure id="fig-summary"><img alt="x" '
                                               'src="../_images/fig.png"></figure>'))
    assert failures(html) == []


def test_a_figure_a_click_does_not_enlarge_is_reported() -> None:
    base = {"errors": [], "images": [], "math": 0, "untypeset": 0, "math_errors": 0,
            "error_cells": 0, "failed_executions": 0, "external": [], "fonts_failed": []}
    assert browser_check.page_failures("p.html", {**base, "unlinked": 0}) == []
    assert browser_check.page_failures("p.html", {**base, "unlinked": 2}) == [
        "p.html: 2 figure(s) a click does not enlarge (book/_static/modadd.js)"]
