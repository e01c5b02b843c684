"""The built book in a real browser: Debian's headless Chromium driven by Playwright.

Every page is opened from a local web server: no console errors, no failed or external
requests, and the search page finds the chapters. Then the reader's gate
(``tests/reader_gate.js``) reads each page as it is shown, after MathJax has finished: no raw
TeX or MyST syntax in the prose, every formula typeset without a MathJax error, no unresolved
reference or citation, every image loaded at a non-zero size, and no cell output with a
traceback, a warning or a NaN. A screenshot of each chapter is saved in
``_build/screenshots/``.
"""

from __future__ import annotations

import contextlib
import functools
import http.server
import subprocess
import sys
import threading
from pathlib import Path

import pytest

CHROMIUM = Path("/usr/bin/chromium")
pytestmark = pytest.mark.skipif(
    not CHROMIUM.exists(),
    reason="Debian's Chromium is not installed (apt-get install chromium); .ci/run installs it",
)
ROOT = Path(__file__).resolve().parents[1]
SCREENSHOTS = ROOT / "_build" / "screenshots"
READER_GATE = (Path(__file__).parent / "reader_gate.js").read_text()
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format, *args):
        pass


@contextlib.contextmanager
def serve(folder: Path):
    """``folder`` served on a free localhost port; yields its base URL."""
    handler = functools.partial(QuietHandler, directory=str(folder))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()


@pytest.fixture(scope="module")
def site(built_book):
    """The built book served on a free localhost port; yields its base URL."""
    with serve(built_book) as url:
        yield url


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield browser
        browser.close()


def open_page(browser, url: str):
    """Open ``url``; return the page and the problems seen while it loaded."""
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    problems: list[str] = []
    base = url.split("/", 3)[:3]
    # Chromium asks every site for /favicon.ico on its own; this site has none.
    page.on(
        "console",
        lambda m: (
            m.type == "error"
            and "favicon.ico" not in (m.location or {}).get("url", "")
            and problems.append(f"console: {m.text}")
        ),
    )
    page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
    page.on("requestfailed", lambda r: problems.append(f"failed request: {r.url}"))
    page.on(
        "request",
        lambda r: (
            r.url.split("/", 3)[:3] != base
            and not r.url.startswith("data:")
            and problems.append(f"external request: {r.url}")
        ),
    )
    page.on("response", lambda r: r.status >= 400 and problems.append(f"HTTP {r.status}: {r.url}"))
    page.goto(url, wait_until="networkidle")
    page.evaluate("() => window.MathJax?.startup?.promise")  # typesetting finished
    return page, problems


def reader_problems(page, path: str) -> list[str]:
    """What a reader of ``page`` would see wrong, one line each: page, section, problem."""
    return [f"{path} § {section}: {kind}: {text!r}" for section, kind, text in
            page.evaluate(READER_GATE)]  # fmt: skip


def test_every_page_renders_offline_as_a_reader_sees_it(browser, site, built_book):
    from tests.test_book import html_pages

    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    pages = [p.relative_to(built_book).as_posix() for p in html_pages(built_book)]
    assert len(pages) >= 5
    problems = []
    for path in pages:
        page, loading = open_page(browser, f"{site}/{path}")
        problems += [f"{path}: {problem}" for problem in loading]
        problems += reader_problems(page, path)
        if path.startswith("book/") and page.locator(".cell_output").count():
            name = path.removeprefix("book/").removesuffix(".html").replace("/", "-")
            page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)
        page.close()
    assert not problems, "\n".join(problems)


def test_search_finds_the_chapters(browser, site):
    page, problems = open_page(browser, f"{site}/search.html?q=attention")
    page.wait_for_selector("ul.search li", timeout=20_000)
    results = page.locator("ul.search li a").evaluate_all("links => links.map(a => a.href)")
    assert any("/book/" in url for url in results), results
    assert not problems, problems
    page.close()


@pytest.fixture(scope="module")
def fixture_site(tmp_path_factory) -> Path:
    """``tests/reader_gate_fixture`` built by Sphinx as the book is, warnings allowed."""
    out = tmp_path_factory.mktemp("reader-gate") / "html"
    source = Path(__file__).parent / "reader_gate_fixture"
    result = subprocess.run(
        [sys.executable, "-m", "sphinx", "-b", "html", "-q", str(source), str(out)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return out


def test_the_reader_gate_fails_on_what_a_reader_would_see(browser, fixture_site):
    with serve(fixture_site) as url:
        page, _ = open_page(browser, f"{url}/broken.html")
        problems = reader_problems(page, "broken.html")
        page.close()
        page, _ = open_page(browser, f"{url}/clean.html")
        assert reader_problems(page, "clean.html") == []
        page.close()
    # Every planted defect is named with its page and section, the graphs bug first of all:
    # the wrapped "+ \mathbf{I}$" became a list item and left raw TeX in the text.
    expected = {
        "Directed graphs: in-degree or out-degree?": "raw source text",
        "A formula MathJax cannot typeset": "MathJax error",
        "A reference to nothing": "unresolved reference",
        "An image that is not there": "image not loaded",
        "A training run that diverged": 'cell output shows "nan"',
        "A warning in an output": "cell output",
        "Code that scrolls sideways": "code cell",
        "An output that scrolls sideways": "cell output",
        "A figure whose text is too small": "figure text",
    }
    for section, kind in expected.items():
        hits = [p for p in problems if p.startswith(f"broken.html § {section}: {kind}")]
        assert hits, f"the gate missed {kind!r} in {section!r}; it found:\n" + "\n".join(problems)
    graphs = [p for p in problems if "Directed graphs" in p]
    assert any("mathbf{A}" in p for p in graphs) and any("mathbf{I}$)" in p for p in graphs)
    assert all(any(f"§ {section}:" in p for section in expected) for p in problems), problems
