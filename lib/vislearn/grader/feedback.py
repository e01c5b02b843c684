"""The student's feedback page, where nbgrader's exchange returns it from.

``feedback/<student>/<assignment>/<assignment>.html`` holds the status, the score, and the
points and message of each test cell: which check failed, on which input shape, by how much,
never a hidden test's source or a reference value (see :mod:`vislearn.grader.evaluate`).

Beside it go the submission's ``timestamp.txt`` and ``submission_secret.txt`` (copied from
``submitted/<student>/<assignment>/``, where ``nbgrader collect`` put them): with them
``nbgrader release_feedback`` (``make return-feedback``) puts the page in the exchange under
a name derived from the secret, and ``nbgrader fetch_feedback`` gives it to the student who
holds that secret, as ``<notebook>.html`` beside each notebook of that submission. When the
notebook is missing from a submission, the page is also written under the name of each
notebook the student did hand in, so that they learn why. The folder mirrors the submission
last graded: pages and files of an earlier grading are removed.

``python -m vislearn.grader.feedback ASSIGNMENT... [--exchange DIR]`` (``make
return-feedback``) first adds what an instructor gave by hand in nbgrader's formgrader
(manual points, comments) to the pages of the submissions concerned, then runs ``nbgrader
release_feedback`` on each assignment, leaving out, by name, the students whose submission
did not come through the exchange (no secret: nobody could fetch their page), at whom
nbgrader would stop.
"""

from __future__ import annotations

import argparse
import html
import shutil
import subprocess
import sys
from pathlib import Path

from vislearn.grader import records
from vislearn.grader.course import Course
from vislearn.grader.gradebook import Review, reviews

EXCHANGE_FILES = ("timestamp.txt", "submission_secret.txt")

# What each status means to the student who reads the page.
MEANINGS = {
    "graded": "Every test ran; you have the points of the tests that passed.",
    "timed out": "Part of your code took too long and was stopped; the tests that needed it "
    "score 0.",
    "crashed": "Your code ended the process it ran in (an exit, a crash or a limit); the "
    "tests that needed it score 0.",
    "tampered": "Your code uses something this exercise does not allow, or interfered with "
    "the grader; the tests of the functions concerned score 0. Your instructor reviews it.",
    "malformed": "Your notebook could not be read as a Jupyter notebook: nothing was graded.",
    "missing notebook": "Your submission does not contain the assignment's notebook: nothing "
    "was graded.",
    "error": "The grader failed on your submission: your instructor will look into it.",
}

STYLE = """
body { font-family: system-ui, sans-serif; max-width: 60rem; margin: 2rem auto;
       padding: 0 1rem; line-height: 1.45; color: #1b1b1b; }
table { border-collapse: collapse; width: 100%; }
th, td { border: 1px solid #ccc; padding: 0.35rem 0.6rem; text-align: left;
         vertical-align: top; }
td.points { white-space: nowrap; }
tr.failed td.points { color: #a40000; font-weight: bold; }
code { white-space: pre-wrap; overflow-wrap: anywhere; }
"""


def page_names(record: dict, found: tuple[str, ...] = ()) -> list[str]:
    """The names the page is written under: the assignment's notebook and, if that one is
    missing, each notebook the student handed in instead (``found``)."""
    names = [f"{record['assignment']}.html"]
    if record["status"] == "missing notebook":
        names += [f"{Path(name).stem}.html" for name in found]
    return names


def _row(cell: dict, review: Review) -> str:
    e, points = html.escape, review.scores.get(cell["grade_id"], cell["points"])
    by_hand = ""
    if cell["grade_id"] in review.scores:
        by_hand = f" (given by your instructor; the grader gave {cell['points']:g})"
    return (
        f'<tr class="{"passed" if points >= cell["max_points"] else "failed"}">'
        f"<td>{e(cell['grade_id'])}</td>"
        f'<td class="points">{points:g} / {cell["max_points"]:g}{e(by_hand)}</td>'
        f"<td><code>{e(cell['message'])}</code></td></tr>"
    )


def render(record: dict, review: Review | None = None) -> str:
    """The feedback page of ``record``, with the instructor's ``review`` if there is one."""
    e, review = html.escape, review or Review()
    rows = "\n".join(_row(cell, review) for cell in record["cells"])
    notes = "".join(f"<li><code>{e(note)}</code></li>" for note in record["notes"])
    comments = "".join(f"<li>{e(cell)}: {e(text)}</li>" for cell, text in review.comments.items())
    score = sum(review.scores.get(c["grade_id"], c["points"]) for c in record["cells"])
    title = f"{record['assignment']}: {score:g} / {record['max_score']:g}"
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{e(title)}</title><style>{STYLE}</style></head>
<body><main>
<h1>{e(title)}</h1>
<p>Status: <strong>{e(record["status"])}</strong>. {e(MEANINGS.get(record["status"], ""))}</p>
{f"<ul>{notes}</ul>" if notes else ""}
{f"<h2>Comments from your instructor</h2><ul>{comments}</ul>" if comments else ""}
<table>
<thead><tr><th>test</th><th>points</th><th>feedback</th></tr></thead>
<tbody>
{rows}
</tbody>
</table>
</main></body></html>
"""


def folder(course: Course, assignment: str, student: str) -> Path:
    return course.feedback / student / assignment


def page(course: Course, assignment: str, student: str) -> Path:
    """The student's feedback page on ``assignment``."""
    return folder(course, assignment, student) / f"{assignment}.html"


def write_feedback(course: Course, record: dict, found: tuple[str, ...] = ()) -> Path:
    """Write the page (and the exchange's files) for ``record``, whose submission holds the
    notebooks ``found``; the page's path."""
    target = folder(course, record["assignment"], record["student"])
    target.mkdir(parents=True, exist_ok=True)
    for old in target.glob("*.html"):
        old.unlink()
    submitted = course.submitted / record["student"] / record["assignment"]
    for name in EXCHANGE_FILES:
        if (submitted / name).is_file():
            shutil.copyfile(submitted / name, target / name)
        else:
            (target / name).unlink(missing_ok=True)
    text = render(record)
    for name in page_names(record, found):
        (target / name).write_text(text)
    return page(course, record["assignment"], record["student"])


def by_hand(course: Course, assignment: str) -> list[str]:
    """The students whose feedback on ``assignment`` has no submission secret beside it."""
    pages = course.feedback.glob(f"*/{assignment}/{assignment}.html")
    return sorted(
        p.parent.parent.name for p in pages if not (p.parent / "submission_secret.txt").is_file()
    )


def add_reviews(course: Course, assignment: str) -> int:
    """Rewrite the pages of the submissions of ``assignment`` that an instructor reviewed in
    the formgrader (manual points, comments) with the review; how many."""
    reviewed = reviews(course.db_url, course.course_id, assignment)
    for student, review in reviewed.items():
        record = records.read_record(course, assignment, student)
        if record is not None:
            text = render(record, review)
            for path in folder(course, assignment, student).glob("*.html"):
                path.write_text(text)
    return len(reviewed)


def release(course: Course, assignment: str, exchange: Path | None = None) -> int:
    """``nbgrader release_feedback`` of ``assignment``, with the instructor's reviews and
    without the pages submitted by hand; its exit status."""
    add_reviews(course, assignment)
    argv = [str(Path(sys.executable).parent / "nbgrader"), "release_feedback", assignment]
    if exchange is not None:
        argv.append(f"--Exchange.root={exchange.resolve()}")
    if held := by_hand(course, assignment):
        print(
            f"{assignment}: not returned through the exchange, submitted by hand (no "
            f"submission_secret.txt): {', '.join(held)}; their pages are in "
            f"{course.feedback}/<student>/{assignment}/",
            file=sys.stderr,
        )
        argv.append(f"--CourseDirectory.student_id_exclude={','.join(held)}")
    return subprocess.run(argv, cwd=course.root).returncode


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m vislearn.grader.feedback",
        description="Return the safe grader's feedback to the "
        "students through nbgrader's exchange.",
    )
    parser.add_argument("assignments", nargs="+", metavar="ASSIGNMENT")
    parser.add_argument("--course", type=Path, default=Path.cwd(), help="the course directory")
    parser.add_argument("--exchange", type=Path, help="the exchange (default: nbgrader's)")
    args = parser.parse_args(argv)
    course = Course.load(args.course)
    for assignment in args.assignments:
        if status := release(course, assignment, args.exchange):
            return status
    return 0


if __name__ == "__main__":
    sys.exit(main())
