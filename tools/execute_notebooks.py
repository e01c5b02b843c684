"""Execute a book's notebooks in parallel into its execution cache, before
``jupyter-book build`` reads them: ``make book`` runs this on the chapters, and
``tools/solutions_site.py`` calls :func:`execute_in_parallel` on its pages.

Jupyter Book executes the notebooks one after another, and each chapter computes on one
thread (its tensors are small), so on a machine with several cores all but one would wait.
:func:`execute_in_parallel` executes every notebook that the cache does not hold yet in a
pool of one process per core (jupyter-cache's ``local-parallel`` executor), each in its own
folder, reading it as the build reads it; the build then takes every notebook from the
cache. A notebook that fails here is executed again by the build, which reports its error.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import yaml
from jupyter_cache import get_cache
from jupyter_cache.executors import load_executor

ROOT = Path(__file__).resolve().parents[1]
# jupyter-cache's readers, as the build uses them: MyST Markdown notebooks and .ipynb files
READERS = {".md": "myst_nb_md", ".ipynb": "nbformat"}


def execute_in_parallel(notebooks: list[Path], cache_path: Path, timeout: int) -> list[str]:
    """Execute those of ``notebooks`` that the cache at ``cache_path`` does not hold, with a
    ``timeout`` in seconds per cell; returns the paths of those that failed."""
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    cache = get_cache(cache_path)
    for notebook in notebooks:
        read_data = {"name": READERS[notebook.suffix], "type": "plugin"}
        cache.add_nb_to_project(str(notebook), read_data=read_data)
    executor = load_executor("local-parallel", cache, logger=logging.getLogger(__name__))
    uris = [str(notebook.absolute()) for notebook in notebooks]
    result = executor.run_and_cache(filter_uris=uris, timeout=timeout, allow_errors=False)
    return result.excepted + result.errored


def chapters() -> list[Path]:
    """The MyST notebooks among the pages of ``_toc.yml``, in its order."""

    def walk(entries: list[dict]) -> list[str]:
        return [f for e in entries for f in [e["file"], *walk(e.get("sections", []))]]

    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    pages = [ROOT / f"{page}.md" for page in walk([c for p in toc["parts"] for c in p["chapters"]])]
    return [page for page in pages if "format_name: myst" in page.read_text()]


def main() -> int:
    timeout = yaml.safe_load((ROOT / "_config.yml").read_text())["execute"]["timeout"]
    for failed in execute_in_parallel(chapters(), ROOT / "_build" / ".jupyter_cache", timeout):
        print(f"{failed} failed here; the build runs it again and reports the error")
    return 0


if __name__ == "__main__":
    sys.exit(main())
