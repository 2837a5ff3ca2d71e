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
    rows = [{"id": i, "cells": [i, "claim", "source", "supported"], "links": 1}
            for i in browser_check.LEDGER_IDS]
    assert browser_check.ledger_failures({"ledger": rows}) == []
    short = rows[:16] + [{**rows[16], "links": 0, "cells": ["C16", "c", "s", ""]}]
    assert browser_check.ledger_failures({"ledger": short[:16]})[0].startswith("ledger: lists")
    assert browser_check.ledger_failures({"ledger": short}) == [
        "ledger: C16 has no chapter link", "ledger: C16 has no verdict"]
