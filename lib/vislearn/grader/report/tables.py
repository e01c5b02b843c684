"""A table of the report: shown as HTML, and written beside the page as a CSV file with the
same rows (links as their text)."""

from __future__ import annotations

import csv
import html
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote


@dataclass(frozen=True)
class Link:
    """A cell that links to ``href`` (relative to the page); no link if ``href`` is None."""

    text: str
    href: str | None


@dataclass(frozen=True)
class Code:
    """A cell shown as code: a message, a student id, a test's name."""

    text: str


def _rows(count: int, more: str = "") -> str:
    return f"{count} {more}row" if count == 1 else f"{count} {more}rows"


def _text(value: object) -> str:
    if isinstance(value, (Link, Code)):
        return value.text
    if isinstance(value, list):
        return "; ".join(map(_text, value))
    if isinstance(value, float):
        return f"{value:.4g}"
    return "" if value is None else str(value)


def _html(value: object) -> str:
    if isinstance(value, Link):
        text = html.escape(value.text)
        return f'<a href="{html.escape(value.href)}">{text}</a>' if value.href else text
    if isinstance(value, Code):
        return f"<code>{html.escape(value.text)}</code>"
    if isinstance(value, list):
        return ", ".join(map(_html, value))
    return html.escape(_text(value))


@dataclass
class Table:
    """Rows under ``columns``; ``name`` is the CSV file's name (without ``.csv``)."""

    name: str
    columns: list[str]
    rows: list[list]
    numeric: tuple[int, ...] = ()  # columns aligned right

    def write_csv(self, folder: Path) -> Path:
        path = folder / f"{self.name}.csv"
        with open(path, "w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(self.columns)
            writer.writerows([_text(value) for value in row] for row in self.rows)
        return path

    def html(self, folder: Path, limit: int | None = None) -> str:
        """The table (its first ``limit`` rows), with a link to its CSV, written now into
        ``folder`` with every row."""
        csv_path = self.write_csv(folder)

        def cells(row: list, tag: str) -> str:
            return "".join(
                f"<{tag}{' class=num' if i in self.numeric else ''}>{_html(v)}</{tag}>"
                for i, v in enumerate(row)
            )

        shown = self.rows if limit is None else self.rows[:limit]
        body = "\n".join(f"<tr>{cells(row, 'td')}</tr>" for row in shown)
        more = (
            f"<p class=more>{_rows(len(self.rows) - len(shown), 'more ')} in the CSV file.</p>"
            if len(shown) < len(self.rows)
            else ""
        )
        return (
            f"<div class=table><table><thead><tr>{cells(self.columns, 'th')}</tr></thead>\n"
            f"<tbody>\n{body}\n</tbody></table>{more}"
            f'<p class=csv><a href="{quote(csv_path.name)}">{html.escape(csv_path.name)}</a> '
            f"({_rows(len(self.rows))})</p></div>"
        )
