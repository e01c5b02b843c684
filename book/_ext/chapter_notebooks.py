"""Every chapter runs where readers run notebooks.

- :func:`write_chapter_notebook`: each chapter page (a MyST Markdown notebook) offers the
  chapter as a Jupyter notebook, ``_sources/<page>.ipynb``, through the download button of
  sphinx-book-theme (which shows ``.ipynb`` when ``ipynb_source`` is set). The notebook is
  the chapter's source converted by Jupytext, without outputs, with one cell in front that
  installs ``vislearn`` from this site when it is missing.
- :func:`ship_wheel`: the site ships ``vislearn`` as a wheel, ``wheels/<wheel>``, built from
  ``lib/`` with pip, which that first cell installs with its ``data`` and ``book`` extras
  (the data sets' packages, matplotlib and ipywidgets) and their dependencies from PyPI.

The install cell takes the site's address from the environment variable ``VISLEARN_SITE``,
else from ``html_baseurl`` (``html.baseurl`` in ``_config.yml``), set when the book is
published. Set ``chapter_notebooks: false`` in the Sphinx configuration to turn both off
(the solutions site does).
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import jupytext
import nbformat
from sphinx.application import Sphinx

LIB = Path(__file__).resolve().parents[2] / "lib"
WHEELS = "wheels"

INSTALL_CELL = """\
# This chapter needs PyTorch and the course's library, vislearn. If vislearn is missing,
# this cell installs it from the course's site, with the packages its data sets and figures
# need (scikit-learn, scikit-image, networkx, SciPy, matplotlib, ipywidgets).
import importlib
import importlib.util
import os
import subprocess
import sys

if importlib.util.find_spec("vislearn") is None:
    site = os.environ.get("VISLEARN_SITE", {site!r})
    if not site:
        raise RuntimeError("set VISLEARN_SITE to the address of the course's site")
    wheel = f"{{site.rstrip('/')}}/{wheels}/{wheel}"
    package = f"vislearn[data,book] @ {{wheel}}"
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", package], check=True)
    importlib.invalidate_caches()
"""


def wheel_name() -> str:
    """The file name of the wheel of ``lib/`` (version from its pyproject.toml)."""
    import tomllib

    project = tomllib.loads((LIB / "pyproject.toml").read_text())["project"]
    return f"{project['name']}-{project['version']}-py3-none-any.whl"


def is_chapter(app: Sphinx, pagename: str) -> bool:
    """A page built from a MyST Markdown notebook (a chapter with code cells)."""
    if pagename not in app.env.all_docs:
        return False
    source = Path(app.env.doc2path(pagename))
    return source.suffix == ".md" and "format_name: myst" in source.read_text()


def write_chapter_notebook(app: Sphinx, pagename, templatename, context, doctree) -> None:
    if not app.config.chapter_notebooks or not is_chapter(app, pagename):
        return
    chapter = jupytext.read(app.env.doc2path(pagename))
    install = INSTALL_CELL.format(site=app.config.html_baseurl, wheels=WHEELS, wheel=wheel_name())
    notebook = nbformat.v4.new_notebook(metadata=chapter.metadata)
    notebook.cells.append(nbformat.v4.new_code_cell(install, id="install-vislearn"))
    new_cell = {"code": nbformat.v4.new_code_cell, "markdown": nbformat.v4.new_markdown_cell,
                "raw": nbformat.v4.new_raw_cell}  # fmt: skip
    for number, cell in enumerate(chapter.cells):
        notebook.cells.append(new_cell[cell.cell_type](
            cell.source, metadata=cell.metadata, id=f"cell-{number}"))  # fmt: skip
    target = Path(app.outdir) / "_sources" / f"{pagename}.ipynb"
    target.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(notebook, target)
    context["ipynb_source"] = f"{pagename}.ipynb"


def ship_wheel(app: Sphinx, exception: Exception | None) -> None:
    if exception is not None or not app.config.chapter_notebooks or app.builder.format != "html":
        return
    with tempfile.TemporaryDirectory() as folder:
        source = Path(folder) / "lib"  # a copy: building in place would leave build/ in lib/
        shutil.copytree(LIB, source, ignore=shutil.ignore_patterns(
            "__pycache__", "*.egg-info", "build"))  # fmt: skip
        command = [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps",
                   "--no-build-isolation", "--wheel-dir", folder, str(source)]  # fmt: skip
        subprocess.run(command, check=True, capture_output=True)
        target = Path(app.outdir) / WHEELS
        target.mkdir(exist_ok=True)
        shutil.copy2(Path(folder) / wheel_name(), target / wheel_name())


def setup(app: Sphinx) -> dict:
    app.add_config_value("chapter_notebooks", True, "html")
    # before sphinx-book-theme's header buttons (priority 501), which read ipynb_source
    app.connect("html-page-context", write_chapter_notebook, priority=400)
    app.connect("build-finished", ship_wheel)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
