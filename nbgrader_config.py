"""nbgrader configuration of the course. nbgrader reads this file from the directory it runs
in, so run nbgrader from the repository root (the Makefile's targets do)."""

c = get_config()  # noqa: F821 (provided by nbgrader when it loads this file)

c.CourseDirectory.course_id = "transformers-and-beyond"
# Instructor notebooks with solution regions and hidden tests.
c.CourseDirectory.source_directory = "solutions"
# Student notebooks generated from solutions/ by `make release`; never edited by hand.
c.CourseDirectory.release_directory = "assignments"
c.CourseDirectory.submitted_directory = "submitted"
c.CourseDirectory.autograded_directory = "autograded"
c.CourseDirectory.feedback_directory = "feedback"
c.CourseDirectory.db_url = "sqlite:///gradebook.db"

# Released notebooks carry no outputs; solution cells get this stub.
c.ClearSolutions.code_stub = {"python": "# YOUR CODE HERE\nraise NotImplementedError()"}
c.ClearSolutions.text_stub = "YOUR ANSWER HERE"

# Autograding: a cell that runs longer than this is stopped and scores 0; the kernel is
# interrupted rather than killed so the remaining cells still run.
c.Execute.timeout = 120
c.Execute.interrupt_on_timeout = True

# The exchange through which a class fetches and submits (README "Running a class"); the
# students' nbgrader configuration names the same directory and course id.
c.Exchange.root = "/srv/nbgrader/exchange"
# `nbgrader validate` shows a failing visible test's message whole (up to ~200 characters).
c.Validator.width = 250
