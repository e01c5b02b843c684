"""The student's side of the course: JupyterLab, `make validate`, and released notebooks that
run anywhere `vislearn` is installed (a laptop, a CUDA machine, Colab)."""

from __future__ import annotations

import ast
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import nbformat
import pytest
import torch
from nbclient import NotebookClient

from tests.submissions import CLASSES
from tests.test_course import RELEASED_NOTEBOOKS, submission
from vislearn import available_devices
from vislearn.testing import TOLERANCES

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
MAKE = ["make", "--no-print-directory", "-f", str(ROOT / "Makefile")]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def stop(process: subprocess.Popen) -> None:
    """End ``process`` and every process of its group (make, the shell, the server)."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        deadline = time.monotonic() + 30
        try:
            os.killpg(process.pid, sig)
            while time.monotonic() < deadline:
                process.poll()  # reap make, so that only live processes keep the group
                os.killpg(process.pid, 0)
                time.sleep(0.2)
        except ProcessLookupError:
            break
    process.wait()


def get(url: str) -> tuple[int, str]:
    with urllib.request.urlopen(url, timeout=10) as response:
        return response.status, response.read().decode()


# --- JupyterLab ----------------------------------------------------------------------------


def test_the_widgets_extension_is_installed():
    result = subprocess.run(
        [BIN / "jupyter", "labextension", "list"], capture_output=True, text=True, timeout=120
    )
    lines = (result.stdout + result.stderr).splitlines()
    (widgets,) = [line for line in lines if "@jupyter-widgets/jupyterlab-manager" in line]
    assert "enabled" in widgets and "OK" in widgets, widgets


def test_make_lab_serves_the_assignments_headless(tmp_path):
    """`make lab` on a free localhost port without a browser: the server answers, lists the
    assignments and loads the widgets extension; then it is stopped."""
    port, token = free_port(), "course-test-token"
    args = f"--no-browser --ip=127.0.0.1 --port={port} --ServerApp.port_retries=0"
    args += f" --IdentityProvider.token={token}" + (" --allow-root" if os.geteuid() == 0 else "")
    env = {k: v for k, v in os.environ.items() if not k.startswith("JUPYTER")}
    env["HOME"] = str(tmp_path)  # runtime files and workspaces stay in tmp_path
    log = tmp_path / "lab.log"
    with open(log, "w") as out:
        lab = subprocess.Popen(
            [*MAKE, "lab", f"LAB_ARGS={args}"],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group, stopped as a whole below
        )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            assert lab.poll() is None, f"`make lab` exited:\n{log.read_text()}"
            try:
                status, _ = get(f"{base}/api/status?token={token}")
                break
            except (urllib.error.URLError, ConnectionError):
                assert time.monotonic() < deadline, f"no answer in 120 s:\n{log.read_text()}"
                time.sleep(0.5)
        assert status == 200
        _, listing = get(f"{base}/api/contents?token={token}")
        names = {entry["name"] for entry in json.loads(listing)["content"]}
        assert {p.parent.name for p in RELEASED_NOTEBOOKS} <= names
        status, page = get(f"{base}/lab?token={token}")
        assert status == 200 and "@jupyter-widgets/jupyterlab-manager" in page
    finally:
        stop(lab)
    with pytest.raises((urllib.error.URLError, ConnectionError)):
        get(f"{base}/api/status?token={token}")


# --- make validate -------------------------------------------------------------------------

ASSIGNMENT = "a0_softmax"
VALIDATE_CASES = {
    # student of tests/submissions -> (passes validate, what the report must say)
    "alice": (True, ["Success! Your notebook passes all the tests."]),
    # a wrong softmax: the visible test's message comes out whole, in plain words
    "bob": (
        False,
        [
            "VALIDATION FAILED ON 1 CELL(S)!",
            "AssertionError: softmax for x of shape (2, 3), dim=0: 6 of 6 values are off by more "
            "than the tolerance (atol={1:g} + rtol={0:g} * |reference|), far beyond it; the first "
            "is at index (0, 0), where yours is".format(*TOLERANCES[torch.float32]),
        ],
    ),
    # overflow with large logits: only hidden tests catch it, and validate runs none of them
    "dan": (True, ["Success! Your notebook passes all the tests."]),
    # the released notebook, untouched
    "released": (False, ["VALIDATION FAILED ON 2 CELL(S)!", "NotImplementedError"]),
}


@pytest.mark.parametrize("student", VALIDATE_CASES)
def test_make_validate(student, tmp_path):
    notebook = tmp_path / ASSIGNMENT / f"{ASSIGNMENT}.ipynb"
    notebook.parent.mkdir()
    if student == "released":
        shutil.copy(ROOT / "assignments" / ASSIGNMENT / notebook.name, notebook)
    else:
        notebook.write_text(submission(ASSIGNMENT, CLASSES[ASSIGNMENT][student][0]))
    had_gradebook = (ROOT / "gradebook.db").exists()
    result = subprocess.run(
        [*MAKE, "validate", f"NOTEBOOK={notebook.relative_to(tmp_path)}"],
        cwd=tmp_path,  # NOTEBOOK is relative to where make runs
        capture_output=True,
        text=True,
        timeout=600,
    )
    passes, report = VALIDATE_CASES[student]
    assert (result.returncode == 0) == passes, result.stdout + result.stderr
    for words in report:
        assert words in result.stdout, result.stdout
    assert (ROOT / "gradebook.db").exists() == had_gradebook


def test_make_validate_wants_a_notebook():
    result = subprocess.run(
        [*MAKE, "validate"],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode != 0 and "usage: make validate NOTEBOOK=" in result.stderr


# --- released notebooks, anywhere -----------------------------------------------------------


@pytest.mark.parametrize("notebook", RELEASED_NOTEBOOKS, ids=lambda p: p.parent.name)
def test_released_notebooks_import_only_vislearn_torch_and_the_standard_library(notebook):
    modules = set()
    for cell in nbformat.read(notebook, as_version=4).cells:
        if cell.cell_type == "code":
            for node in ast.walk(ast.parse(cell.source)):
                if isinstance(node, ast.Import):
                    modules |= {alias.name.split(".")[0] for alias in node.names}
                elif isinstance(node, ast.ImportFrom):
                    modules.add(node.module.split(".")[0])
    assert "vislearn" in modules
    assert modules <= {"vislearn", "torch"} | sys.stdlib_module_names, modules


@pytest.fixture(scope="module")
def packaged_vislearn(tmp_path_factory) -> Path:
    """vislearn installed from lib/ as a package, as `pip install "git+URL#subdirectory=lib"`
    installs it on Colab (built from a copy, so nothing is written into lib/)."""
    build = tmp_path_factory.mktemp("vislearn")
    source = build / "lib"
    shutil.copytree(
        ROOT / "lib", source, ignore=shutil.ignore_patterns("__pycache__", "build", "*.egg-info")
    )
    site = build / "site"
    subprocess.run(
        [
            *(sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check"),
            *("--no-deps", "--no-build-isolation", "--no-compile", "--target", str(site)),
            str(source),
        ],
        check=True,
        capture_output=True,
        timeout=600,
    )
    assert (site / "vislearn" / "__init__.py").exists()
    return site


@pytest.mark.parametrize("device", [d.type for d in available_devices()])
@pytest.mark.parametrize("notebook", RELEASED_NOTEBOOKS, ids=lambda p: p.parent.name)
def test_a_released_notebook_runs_alone_on_each_device(
    notebook, device, packaged_vislearn, tmp_path
):
    """The released notebook, completed with the solutions, alone in an empty folder outside
    the repository, with vislearn from the package: it says which device it runs on, and
    every cell, its visible tests included, runs without an error."""
    assignment = notebook.parent.name
    folder = tmp_path / "colab"
    folder.mkdir()
    nb = nbformat.reads(submission(assignment, {}), as_version=4)
    nb.cells.append(
        nbformat.v4.new_code_cell(
            "import json, os, vislearn\n"
            "print(json.dumps({'cwd': os.getcwd(), 'vislearn': vislearn.__file__}))"
        )
    )
    nbformat.write(nb, folder / notebook.name)
    env = {k: v for k, v in os.environ.items() if k not in {"PYTHONPATH", "VISLEARN_DEVICE"}}
    env.update(PYTHONPATH=str(packaged_vislearn), VISLEARN_DEVICE=device, HOME=str(tmp_path))
    client = NotebookClient(
        nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(folder)}}
    )
    client.execute(env=env)
    outputs = [o for cell in nb.cells for o in cell.get("outputs", [])]
    errors = [o for o in outputs if o.output_type == "error"]
    assert not errors, [f"{o.ename}: {o.evalue}" for o in errors]
    printed = "".join(o.text for o in outputs if o.output_type == "stream")
    assert f"this notebook runs on: {device}" in printed
    where = json.loads(nb.cells[-1].outputs[0].text)
    assert Path(where["cwd"]) == folder
    assert Path(where["vislearn"]).is_relative_to(packaged_vislearn)
