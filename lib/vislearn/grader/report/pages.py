"""The report's pages: an overview of the class, and one page per assignment.

Every page is static HTML with its own style sheet and the figures and CSV files beside it
in the same folder; nothing is loaded from another site. Feedback pages the report links to
are copied into ``feedback/<assignment>/``, so the folder can be shared (``--anonymous``) or
read anywhere.
"""

from __future__ import annotations

import html
import re
import shutil
import statistics
from collections import Counter
from pathlib import Path
from urllib.parse import quote

from vislearn.grader.report import figures
from vislearn.grader.report.data import Assignment, ClassReport, Submission
from vislearn.grader.report.failures import failure_groups, kind_counts
from vislearn.grader.report.tables import Code, Link, Table

STATUSES = ("graded", "timed out", "crashed", "tampered", "malformed", "missing notebook", "error")
FAILURE_GROUPS_SHOWN = 8  # per test cell; the CSV has them all
SLOWEST = 10
MARKER = ".vislearn-report"

STYLE = """
body { font-family: system-ui, sans-serif; margin: 0; color: #1b1b1b; line-height: 1.4; }
nav { background: #f3f3f3; border-bottom: 1px solid #ddd; padding: 0.5rem 1.5rem; }
nav a { margin-right: 1rem; }
main { max-width: 78rem; margin: 0 auto; padding: 0.5rem 1.5rem 3rem; }
h2 { margin-top: 2.2rem; border-bottom: 1px solid #ddd; }
.pair { display: grid; grid-template-columns: minmax(0, 700px) minmax(0, 1fr); gap: 1.5rem;
        align-items: start; }
img { max-width: 100%; height: auto; }
table { border-collapse: collapse; font-size: 0.9rem; }
th, td { border: 1px solid #d4d4d4; padding: 0.25rem 0.5rem; text-align: left;
         vertical-align: top; }
th { background: #f6f6f6; }
td.num, th.num { text-align: right; }
code { white-space: pre-wrap; overflow-wrap: break-word; font-size: 0.85rem; }
.table { overflow-x: auto; margin-bottom: 1rem; }
p.csv, p.more { font-size: 0.8rem; color: #555; margin: 0.2rem 0; }
"""


class Writer:
    """Writes the pages of one report into ``folder``."""

    def __init__(self, report: ClassReport, folder: Path, margin: float):
        self.report, self.folder, self.margin = report, folder, margin
        # the assignments whose students have names in the gradebook (never when anonymous)
        self.named = {a.name for a in report.assignments if any(s.name for s in a.submissions)}

    # --- shared parts ----------------------------------------------------------------------

    def page(self, filename: str, title: str, body: str) -> Path:
        links = ['<a href="index.html">Overview</a>'] + [
            f'<a href="{quote(a.name)}.html">{html.escape(a.name)}</a>'
            for a in self.report.assignments
        ]
        anonymous = " (anonymous)" if self.report.anonymous else ""
        text = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{html.escape(title)}</title><style>{STYLE}</style></head>
<body><nav>{"".join(links)}</nav><main>
<h1>{html.escape(title)}{anonymous}</h1>
{body}
</main></body></html>
"""
        path = self.folder / filename
        path.write_text(text)
        return path

    def figure(self, path: Path, alt: str) -> str:
        return f'<figure><img src="{quote(path.name)}" alt="{html.escape(alt)}"></figure>'

    def feedback_link(self, assignment: str, submission: Submission) -> Link:
        """A link to a copy of the submission's feedback page in the report."""
        if not submission.feedback.is_file():
            return Link("no page", None)
        target = self.folder / "feedback" / assignment / f"{submission.student}.html"
        if not target.exists():
            target.parent.mkdir(parents=True, exist_ok=True)
            text = submission.feedback.read_text()
            if self.report.anonymous:
                text = re.sub(rf"\b{re.escape(submission.student_id)}\b", submission.student, text)
            target.write_text(text)
        return Link(submission.student, f"feedback/{quote(assignment)}/{quote(target.name)}")

    def who(self, a: Assignment, s: Submission) -> list:
        """The cells that say who submitted: a link to the feedback page, and the name where
        the gradebook has the students' names."""
        return [self.feedback_link(a.name, s), *([s.name] if a.name in self.named else [])]

    def who_columns(self, a: Assignment) -> list[str]:
        return ["student", *(["name"] if a.name in self.named else [])]

    # --- the overview ----------------------------------------------------------------------

    def overview(self) -> Path:
        report = self.report
        rows, statuses = [], []
        for a in report.assignments:
            scores = [s.score for s in a.submissions]
            counts = Counter(s.status for s in a.submissions)
            rows.append(
                [
                    Link(a.name, f"{quote(a.name)}.html"),
                    len(scores),
                    _percent(statistics.fmean(scores), a.max_score) if scores else "",
                    _percent(statistics.median(scores), a.max_score) if scores else "",
                    sum(s.score >= a.max_score for s in a.submissions),
                    len(self.needing_a_person(a)),
                    a.runs[-1]["seconds"] if a.runs else "",
                ]
            )
            statuses.append([a.name, *(counts.get(status, 0) for status in STATUSES)])
        assignments = [
            "<h2>Assignments</h2>",
            Table(
                "overview-assignments",
                [
                    "assignment",
                    "submissions",
                    "mean score",
                    "median score",
                    "full marks",
                    "need a person",
                    "last run (s)",
                ],
                rows,
                numeric=(1, 2, 3, 4, 5, 6),
            ).html(self.folder),
        ]
        shown = [a for a in report.assignments if a.submissions]
        if shown:
            boxes = figures.score_boxes(
                [a.name for a in shown],
                [[100 * s.score / a.max_score for s in a.submissions] for a in shown],
                self.folder / "overview-scores.png",
            )
            assignments.append(self.figure(boxes, "scores per assignment"))
        if report.unreadable:
            where = "" if report.anonymous else ": " + ", ".join(map(str, report.unreadable))
            assignments.append(
                f"<p><strong>{len(report.unreadable)} record(s) could not be read"
                f"</strong>{html.escape(where)}. Grade those submissions again.</p>"
            )
        statuses_table = Table(
            "overview-statuses",
            ["assignment", *STATUSES],
            statuses,
            numeric=tuple(range(1, len(STATUSES) + 1)),
        )
        body = [
            _section(assignments),
            _section(["<h2>Statuses</h2>", statuses_table.html(self.folder)]),
            _section(["<h2>Grading runs</h2>", self.runs_table("overview-runs", report.runs)]),
        ]
        return self.page("index.html", f"{report.course_id}: grading report", "\n".join(body))

    def runs_table(self, name: str, runs: list[dict]) -> str:
        rows = [
            [
                run.get("ended", "").replace("T", " ").removesuffix("+00:00"),
                run.get("seconds", ""),
                run.get("graded", ""),
                run.get("kept", ""),
                run.get("worker_threads", ""),
                run.get("cluster", ""),
                ", ".join(run.get("assignments", [])),
            ]
            for run in reversed(runs)
        ]
        return Table(
            name,
            [
                "ended (UTC)",
                "wall time (s)",
                "graded",
                "kept (resumed)",
                "worker threads",
                "cluster",
                "assignments",
            ],
            rows,
            numeric=(1, 2, 3, 4),
        ).html(self.folder, limit=20)

    # --- one assignment --------------------------------------------------------------------

    def needing_a_person(self, a: Assignment) -> list[Submission]:
        return [s for s in a.submissions if s.status != "graded"]

    def near_thresholds(self, a: Assignment) -> list[list]:
        """Rows of the threshold-scored cells whose measure is within ``margin`` of a
        threshold."""
        rules = {t.grade_id: t for t in a.tests if t.zero is not None}
        rows = []
        for s in a.submissions:
            for cell in s.cells:
                test, measured = rules.get(cell["grade_id"]), cell.get("measured")
                if test is None or measured is None:
                    continue
                if min(abs(measured - test.zero), abs(measured - test.full)) <= self.margin:
                    rows.append(
                        [
                            *self.who(a, s),
                            Code(test.grade_id),
                            measured,
                            test.zero,
                            test.full,
                            f"{cell['points']:g} / {cell['max_points']:g}",
                        ]
                    )
        return rows

    def assignment(self, a: Assignment) -> Path:
        prefix = self.folder / a.name
        body = []
        if not a.submissions:
            body.append("<p>No graded submission yet.</p>")
            return self.page(f"{a.name}.html", a.name, "\n".join(body))
        sections = [
            self.scores_section(a, prefix),
            self.tests_section(a, prefix),
            self.failures_section(a),
            self.people_section(a),
            self.time_section(a, prefix),
        ]
        body += [_section(parts) for parts in sections]
        return self.page(f"{a.name}.html", a.name, "\n".join(body))

    def scores_section(self, a: Assignment, prefix: Path) -> list[str]:
        scores = [s.score for s in a.submissions]
        figure = figures.score_histogram(scores, a.max_score, Path(f"{prefix}-scores.png"))
        counts = Counter(scores)
        summary = (
            f"<p>{len(scores)} submissions; mean {statistics.fmean(scores):.2f}, median "
            f"{statistics.median(scores):g} of {a.max_score:g} points (the gradebook's "
            "scores, manual points included).</p>"
        )
        table = Table(
            f"{a.name}-scores",
            ["score", "submissions"],
            [[score, counts[score]] for score in sorted(counts, reverse=True)],
            numeric=(0, 1),
        )
        return [
            "<h2>Scores</h2>",
            summary,
            f"<div class=pair>{self.figure(figure, 'score histogram')}"
            f"<div>{table.html(self.folder)}</div></div>",
        ]

    def tests_section(self, a: Assignment, prefix: Path) -> list[str]:
        n = len(a.submissions)
        points: dict[str, list[float]] = {t.grade_id: [] for t in a.tests}
        for s in a.submissions:
            for cell in s.cells:
                points.setdefault(cell["grade_id"], []).append(cell["points"])
        rows, rates = [], []
        for t in a.tests:
            got = points[t.grade_id]
            full = sum(p >= t.points for p in got)
            zero = sum(p <= 0 for p in got)
            rates.append(full / n)
            rows.append(
                [
                    Code(t.grade_id),
                    "hidden" if t.hidden else "visible",
                    t.points,
                    full,
                    len(got) - full - zero,
                    zero,
                    f"{100 * full / n:.1f}%",
                    statistics.fmean(got) if got else 0.0,
                ]
            )
        figure = figures.pass_rates(
            [t.grade_id for t in a.tests],
            rates,
            [t.hidden for t in a.tests],
            Path(f"{prefix}-tests.png"),
        )
        table = Table(
            f"{a.name}-tests",
            ["test cell", "kind", "points", "full", "partial", "none", "pass rate", "mean points"],
            rows,
            numeric=(2, 3, 4, 5, 6, 7),
        )
        return [
            "<h2>Test cells</h2>",
            "<p>Visible tests are those students can run; hidden tests run only when "
            "the notebook is graded.</p>",
            self.figure(figure, "pass rate per test cell"),
            table.html(self.folder),
        ]

    def failures_section(self, a: Assignment) -> list[str]:
        groups = failure_groups(a.submissions)
        every, body = (
            [],
            [
                "<h2>Failures per test cell</h2>",
                "<p>The messages of the test cells that did not score in full, with "
                "numbers replaced by <code>#</code>, grouped by kind, most frequent "
                "first, with the feedback pages of the first students.</p>",
            ],
        )
        for t in a.tests:
            found = groups.get(t.grade_id, [])
            if not found:
                continue
            kinds = ", ".join(f"{kind} {count}" for kind, count in kind_counts(found).most_common())
            rows = [
                [
                    g.kind,
                    Code(g.message),
                    g.count,
                    [self.feedback_link(a.name, s) for s in g.examples],
                ]
                for g in found
            ]
            every += [[Code(t.grade_id), *row] for row in rows]
            table = Table(
                f"{a.name}-failures-{t.grade_id}",
                ["kind", "message", "submissions", "examples"],
                rows,
                numeric=(2,),
            )
            heading = f"<h3><code>{html.escape(t.grade_id)}</code>: {html.escape(kinds)}</h3>"
            body.append(_section([heading, table.html(self.folder, limit=FAILURE_GROUPS_SHOWN)]))
        if not every:
            body.append("<p>Every test cell scored in full in every submission.</p>")
        else:
            Table(
                f"{a.name}-failures",
                ["test cell", "kind", "message", "submissions", "examples"],
                every,
            ).write_csv(self.folder)
            body.append(
                f'<p class=csv>All test cells: <a href="{quote(a.name)}-failures.csv">'
                f"{html.escape(a.name)}-failures.csv</a></p>"
            )
        return body

    def people_section(self, a: Assignment) -> list[str]:
        flagged = [
            [*self.who(a, s), s.status, s.score, s.auto_score, Code(s.reason)]
            for s in self.needing_a_person(a)
        ]
        offset = len(self.who_columns(a))
        body = [
            "<h2>Submissions that need a person</h2>",
            "<p>Every status other than <em>graded</em>, with its reason. In nbgrader's "
            "formgrader they are flagged; manual points given there count in the score.</p>",
            Table(
                f"{a.name}-need-a-person",
                [*self.who_columns(a), "status", "score", "autograder's score", "reason"],
                flagged,
                numeric=(offset + 1, offset + 2),
            ).html(self.folder),
        ]
        if any(t.zero is not None for t in a.tests):
            body += [
                f"<h3>Within {self.margin:g} of a threshold</h3>",
                "<p>Exercises scored by a measured metric whose value lies near the "
                "value that earns no points or full points.</p>",
                Table(
                    f"{a.name}-near-threshold",
                    [
                        *self.who_columns(a),
                        "test cell",
                        "measured",
                        "no points at",
                        "full points from",
                        "points",
                    ],
                    self.near_thresholds(a),
                    numeric=(offset + 1, offset + 2, offset + 3),
                ).html(self.folder),
            ]
        return body

    def time_section(self, a: Assignment, prefix: Path) -> list[str]:
        timed = [s for s in a.submissions if s.seconds is not None]
        body = ["<h2>Grading time</h2>"]
        if timed:
            seconds = [s.seconds for s in timed]
            figure = figures.time_histogram(seconds, Path(f"{prefix}-time.png"))
            slowest = sorted(timed, key=lambda s: -s.seconds)[:SLOWEST]
            table = Table(
                f"{a.name}-slowest",
                ["student", "status", "seconds"],
                [[self.feedback_link(a.name, s), s.status, s.seconds] for s in slowest],
                numeric=(2,),
            )
            body += [
                f"<p>Median {statistics.median(seconds):.1f} s, total "
                f"{sum(seconds):.0f} s of worker time for {len(timed)} submissions.</p>",
                f"<div class=pair>{self.figure(figure, 'grading time histogram')}"
                f"<div><h3>The {len(slowest)} slowest</h3>{table.html(self.folder)}"
                "</div></div>",
            ]
        body += [
            "<h3>Grading runs that included it</h3>",
            self.runs_table(f"{a.name}-runs", a.runs),
        ]
        return body


def _section(parts: list[str]) -> str:
    """``parts`` (a heading first) as a section of the page."""
    return "<section>\n" + "\n".join(parts) + "\n</section>"


def _percent(score: float, max_score: float) -> str:
    return f"{100 * score / max_score:.1f}%" if max_score else ""


class NotAReport(Exception):
    """The output folder exists and holds something else than a report."""


def write(report: ClassReport, folder: Path, margin: float) -> Path:
    """Every page of ``report`` into ``folder``, replacing an earlier report there; the
    overview's path. Refuses a folder that holds anything else."""
    marker = folder / MARKER
    if folder.exists() and any(folder.iterdir()):
        if not marker.exists():
            raise NotAReport(f"{folder} exists and is not a report: choose another --out")
        shutil.rmtree(folder)
    folder.mkdir(parents=True, exist_ok=True)
    marker.write_text("written by python -m vislearn.grader.report; replaced by the next one\n")
    writer = Writer(report, folder, margin)
    for assignment in report.assignments:
        writer.assignment(assignment)
    return writer.overview()
