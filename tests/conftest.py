"""Shared fixtures: every numerical test runs on each device this machine has."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import torch

from vislearn import available_devices


@pytest.fixture(params=available_devices(), ids=lambda d: d.type)
def device(request) -> torch.device:
    """Each available device in turn (CPU always; CUDA or MPS where present)."""
    return request.param


@pytest.fixture(autouse=True)
def _deterministic_matmul():
    """Full float32 precision for comparisons: no TF32 on Ampere and newer GPUs."""
    previous = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    yield
    torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = previous


ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def graded(tmp_path_factory):
    """The safe grader's corpus graded once by a local run, shared by tests/test_grader.py
    and tests/test_dask_grading.py (see tests.test_grader.grade_the_corpus)."""
    from tests.test_grader import grade_the_corpus

    return grade_the_corpus(tmp_path_factory.mktemp("course"))


@pytest.fixture(scope="session")
def built_book() -> Path:
    """`make book` (warm when the chapters and vislearn are unchanged since the last build),
    then the path of the HTML site."""
    result = subprocess.run(
        ["make", "--no-print-directory", "-C", str(ROOT), "book"],
        capture_output=True,
        text=True,
        timeout=1800,
    )
    assert result.returncode == 0, result.stdout[-5000:] + result.stderr[-5000:]
    return ROOT / "_build" / "html"
