"""The built book in a real browser: Debian's headless Chromium driven by Playwright.

Every page is opened from a local web server: no console errors, no failed or external
requests, maths typeset by the site's own MathJax, every image loaded, and the search page
finds the chapters. A screenshot of each chapter is saved in ``_build/screenshots/``.
"""

from __future__ import annotations

import functools
import http.server
import threading
from pathlib import Path

import pytest

CHROMIUM = Path("/usr/bin/chromium")
pytestmark = pytest.mark.skipif(
    not CHROMIUM.exists(),
    reason="Debian's Chromium is not installed (apt-get install chromium); .ci/run installs it",
)
SCREENSHOTS = Path(__file__).resolve().parents[1] / "_build" / "screenshots"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture(scope="module")
def site(built_book):
    """The built book served on a free localhost port; yields its base URL."""
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(built_book))
    handler.log_message = lambda *args: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


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


def test_every_page_renders_offline(browser, site, built_book):
    from tests.test_book import html_pages

    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    pages = [p.relative_to(built_book).as_posix() for p in html_pages(built_book)]
    assert len(pages) >= 5
    for path in pages:
        page, problems = open_page(browser, f"{site}/{path}")
        assert not problems, f"{path}: {problems}"
        has_maths = page.locator(".math").count() > 0
        if has_maths:
            assert page.locator("mjx-container").count() > 0, f"{path}: maths not typeset"
            text = page.locator("article").inner_text()
            assert "\\[" not in text and "\\(" not in text, f"{path}: raw TeX left"
        broken = page.evaluate(
            "() => [...document.images].filter(i => !i.complete || i.naturalWidth === 0)"
            ".map(i => i.src)"
        )
        assert not broken, f"{path}: images not loaded: {broken}"
        if path.startswith("book/") and page.locator(".cell_output").count():
            name = path.removeprefix("book/").removesuffix(".html").replace("/", "-")
            page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)
        page.close()


def test_search_finds_the_chapters(browser, site):
    page, problems = open_page(browser, f"{site}/search.html?q=attention")
    page.wait_for_selector("ul.search li", timeout=20_000)
    results = page.locator("ul.search li a").evaluate_all("links => links.map(a => a.href)")
    assert any("/book/" in url for url in results), results
    assert not problems, problems
    page.close()
