"""Make the built book a self-contained static site that loads without errors.

Two small fixes, each in its own function:

- :func:`copy_mathjax`: MathJax 3 is served from the site itself, so maths renders without
  internet. It comes from the Python package ``django-static-mathjax`` (MathJax 3.2.2,
  pinned in requirements.txt), so nothing is downloaded at build time. The parts of its
  ``es5`` distribution that ``tex-chtml.js`` loads (the TeX-to-CHTML component, the TeX
  extensions it may autoload, the CHTML fonts, the menu) are copied to ``_mathjax/`` in the
  output, where ``mathjax_path`` in ``_config.yml`` points. They are kept out of
  ``_static/`` on purpose: Jupyter Book adds every ``*.js`` found there to every page.
- :func:`drop_duplicate_scripts`: Jupyter Book and sphinx-book-theme both register
  sphinx-thebe and sphinx-togglebutton, whose inline scripts then appear twice on every
  page; the second ``const THEBE_JS_URL`` is a JavaScript error in the browser.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import mathjax
from sphinx.application import Sphinx

MATHJAX = Path(next(iter(mathjax.__path__))) / "static" / "mathjax"
MATHJAX_PARTS = [
    "es5/tex-chtml.js",
    "es5/input",
    "es5/output/chtml",
    "es5/ui",
    "es5/a11y",
    "es5/adaptors",
    "LICENSE",
]
MATHJAX_TARGET = "_mathjax"


def copy_mathjax(app: Sphinx, exception: Exception | None) -> None:
    if exception is not None or app.builder.format != "html":
        return
    for part in MATHJAX_PARTS:
        source = MATHJAX / part
        target = Path(app.outdir) / MATHJAX_TARGET / part.removeprefix("es5/")
        if source.is_dir():
            shutil.copytree(source, target, dirs_exist_ok=True)
        else:
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)


def drop_duplicate_scripts(app: Sphinx, pagename, templatename, context, doctree) -> None:
    seen = set()
    unique = []
    for script in context.get("script_files", []):
        # the same file or inline body (filename None or ""), whatever its priority
        key = (script.filename or "", tuple(sorted(script.attributes.items())))
        if key not in seen:
            seen.add(key)
            unique.append(script)
    context["script_files"] = unique


def setup(app: Sphinx) -> dict:
    # after every other extension has added its scripts
    app.connect("html-page-context", drop_duplicate_scripts, priority=900)
    app.connect("build-finished", copy_mathjax)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
