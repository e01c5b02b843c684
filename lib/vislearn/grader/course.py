"""Where an nbgrader course keeps things, read from its ``nbgrader_config.py``, and the
secret from which grading seeds are derived.

The grading seed of a submission is ``sha256(secret/assignment/student)``: fresh for every
student (no one has seen the inputs), and the same every time the submission is graded again,
so that re-grading is idempotent. The secret is ``$VISLEARN_GRADING_SECRET`` if set, else the
file ``<autograded>/.grading_secret``, created with random content on first use. Keep that
file to reproduce grades; delete it to draw new inputs for everyone.
"""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass
from pathlib import Path

SECRET_ENV = "VISLEARN_GRADING_SECRET"


@dataclass(frozen=True)
class Course:
    """The directories and gradebook of an nbgrader course."""

    root: Path
    course_id: str
    source: Path
    submitted: Path
    autograded: Path
    feedback: Path
    db_url: str

    @classmethod
    def load(cls, root: Path) -> Course:
        """The course at ``root``, configured by its ``nbgrader_config.py`` if it has one."""
        from nbgrader.coursedir import CourseDirectory
        from traitlets.config import Config
        from traitlets.config.loader import PyFileConfigLoader

        root = root.resolve()
        config = Config()
        if (root / "nbgrader_config.py").exists():
            config = PyFileConfigLoader("nbgrader_config.py", path=str(root)).load_config()
        coursedir = CourseDirectory(config=config, root=str(root))
        db_url = coursedir.db_url
        prefix = "sqlite:///"
        if db_url.startswith(prefix) and not os.path.isabs(db_url[len(prefix) :]):
            db_url = prefix + str(root / db_url[len(prefix) :])
        return cls(
            root=root,
            course_id=coursedir.course_id,
            source=root / coursedir.source_directory,
            submitted=root / coursedir.submitted_directory,
            autograded=root / coursedir.autograded_directory,
            feedback=root / coursedir.feedback_directory,
            db_url=db_url,
        )

    def source_notebook(self, assignment: str) -> Path:
        """The instructor's notebook of ``assignment`` (one notebook, named as the assignment)."""
        return self.source / assignment / f"{assignment}.ipynb"

    def students(self, assignment: str) -> list[str]:
        """Every student with a submission folder for ``assignment``."""
        if not self.submitted.is_dir():
            return []
        return sorted(p.parent.name for p in self.submitted.glob(f"*/{assignment}") if p.is_dir())

    def secret(self) -> str:
        """The course's grading secret (see the module's docstring)."""
        if os.environ.get(SECRET_ENV):
            return os.environ[SECRET_ENV]
        path = self.autograded / ".grading_secret"
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as f:
                f.write(secrets.token_hex(32))
        return path.read_text().strip()
