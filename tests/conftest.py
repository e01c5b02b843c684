"""Shared fixtures: every numerical test runs on each device this machine has."""

from __future__ import annotations

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
