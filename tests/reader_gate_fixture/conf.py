"""A two-page site built with the book's own pipeline (MyST-NB, the book's MyST extensions,
its offline MathJax and theme), on which the reader's gate must fail and pass."""

import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "book" / "_ext"))
config = yaml.safe_load((ROOT / "_config.yml").read_text())

project = "reader gate fixture"
extensions = ["myst_nb", "offline_site"]
myst_enable_extensions = config["parse"]["myst_enable_extensions"]
mathjax_path = config["sphinx"]["config"]["mathjax_path"]
html_theme = "sphinx_book_theme"
nb_execution_mode = "force"
exclude_patterns = ["_build"]
