"""nbgrader's formgrader on its own Jupyter server, driven through its HTTP API as its web
page drives it: the submissions of an assignment, a submission's page, grades and comments.

``with Formgrader(course) as formgrader:`` starts ``jupyter server`` in the course directory
(the formgrader reads ``nbgrader_config.py`` there) on a free localhost port with a random
token, and stops it on exit.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

from tests.test_postgres_gradebook import free_port

STARTUP = 120  # seconds for the server to answer


class Formgrader:
    def __init__(self, course: Path):
        self.course = course
        self.token = secrets.token_hex(16)
        self.url = f"http://127.0.0.1:{free_port()}"

    def __enter__(self) -> Formgrader:
        self.runtime = tempfile.TemporaryDirectory(prefix="formgrader-")
        argv = [
            sys.executable,
            "-m",
            "jupyter_server",
            "--no-browser",
            "--allow-root",
            f"--ServerApp.port={self.url.rsplit(':', 1)[1]}",
            "--ServerApp.ip=127.0.0.1",
            f"--IdentityProvider.token={self.token}",
            f"--ServerApp.root_dir={self.course}",
        ]
        self.log = open(Path(self.runtime.name) / "server.log", "w")
        self.server = subprocess.Popen(
            argv,
            cwd=self.course,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            env={**os.environ, "JUPYTER_RUNTIME_DIR": self.runtime.name},
            start_new_session=True,
        )
        deadline = time.monotonic() + STARTUP
        while not self.answers():
            if self.server.poll() is not None or time.monotonic() > deadline:
                log = self.server_log()
                self.__exit__()
                raise RuntimeError(f"the formgrader did not start:\n{log}")
            time.sleep(0.5)
        return self

    def answers(self) -> bool:
        try:
            self.request("GET", "/formgrader/api/status")
            return True
        except (urllib.error.URLError, ConnectionError):
            return False

    def __exit__(self, *_) -> None:
        os.killpg(self.server.pid, signal.SIGTERM)
        try:
            self.server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(self.server.pid, signal.SIGKILL)
            self.server.wait()
        self.log.close()
        self.runtime.cleanup()

    def server_log(self) -> str:
        return (Path(self.runtime.name) / "server.log").read_text()[-3000:]

    def request(self, method: str, path: str, body: dict | None = None) -> str:
        request = urllib.request.Request(
            self.url + path,
            method=method,
            data=None if body is None else json.dumps(body).encode(),
            headers={"Authorization": f"token {self.token}"},
        )
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.read().decode()

    def submitted(self, assignment: str) -> list[dict]:
        """The submitted notebooks of the assignment (one notebook per assignment here)."""
        return json.loads(
            self.request("GET", f"/formgrader/api/submitted_notebooks/{assignment}/{assignment}")
        )

    def submission_page(self, submission_id: str) -> str:
        """The formgrader's page of a submission (the autograded notebook, rendered)."""
        return self.request("GET", f"/formgrader/submissions/{submission_id}/")

    def grades(self, submission_id: str) -> list[dict]:
        return json.loads(
            self.request("GET", f"/formgrader/api/grades?submission_id={submission_id}")
        )

    def give(self, submission_id: str, cell: str, points: float) -> None:
        """Manual points for a test cell, as the score box of the submission's page sets them."""
        (grade,) = [g for g in self.grades(submission_id) if g["name"] == cell]
        self.request("PUT", f"/formgrader/api/grade/{grade['id']}", {"manual_score": points})

    def comment(self, submission_id: str, cell: str, text: str) -> None:
        """A comment on a solution cell, as the submission's page writes it."""
        comments = json.loads(
            self.request("GET", f"/formgrader/api/comments?submission_id={submission_id}")
        )
        (comment,) = [c for c in comments if c["name"] == cell]
        self.request("PUT", f"/formgrader/api/comment/{comment['id']}", {"manual_comment": text})
