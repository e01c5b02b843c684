"""Device selection, seeding and timing.

Course code never hard-codes a device: it asks :func:`default_device` once and moves
tensors and modules there with ``.to(device)``. Tests and graders run on every device in
:func:`available_devices`.
"""

from __future__ import annotations

import os
import platform
import random
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

DEVICE_ENV = "VISLEARN_DEVICE"


def available_devices() -> list[torch.device]:
    """Every device this machine can run the course on: the CPU, then any accelerators."""
    devices = [torch.device("cpu")]
    if torch.cuda.is_available():
        devices.append(torch.device("cuda"))
    if torch.backends.mps.is_available():
        devices.append(torch.device("mps"))
    return devices


def default_device() -> torch.device:
    """The device to compute on: ``$VISLEARN_DEVICE`` if set, else CUDA, else MPS, else CPU."""
    requested = os.environ.get(DEVICE_ENV)
    if requested:
        device = torch.device(requested)
        if device.type == "cuda" and not torch.cuda.is_available():
            raise RuntimeError(f"{DEVICE_ENV}={requested!r}, but CUDA is not available here")
        return device
    return available_devices()[-1]


def seed_everything(seed: int) -> torch.Generator:
    """Seed Python, NumPy and PyTorch (all devices) and return a CPU generator with ``seed``.

    Passing the returned generator explicitly to samplers keeps a computation reproducible
    even when other code draws from the global random state.
    """
    random.seed(seed)
    np.random.seed(seed)  # noqa: NPY002 (seeds legacy np.random users too)
    torch.manual_seed(seed)  # also seeds every CUDA device
    return torch.Generator().manual_seed(seed)


def synchronize(device: torch.device) -> None:
    """Wait until every kernel queued on ``device`` has finished (a no-op on the CPU).

    Accelerators run asynchronously: time a computation only after synchronising.
    """
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    elif device.type == "mps":
        torch.mps.synchronize()


def time_call(
    fn: Callable[..., object], *args: object, repeats: int = 10, warmup: int = 2
) -> float:
    """Best (minimum) wall-clock seconds of ``fn(*args)`` over ``repeats`` calls, no autograd.

    Runs ``warmup`` untimed calls first (allocations, kernel selection), and synchronises the
    devices of the tensor arguments before reading the clock, since accelerator calls return
    before the work is done. The minimum is the run least disturbed by other programs, so it
    varies least between runs (the advice of Python's :mod:`timeit`).
    """
    if repeats < 1:
        raise ValueError(f"repeats must be at least 1, got {repeats}")
    devices = {a.device for a in args if isinstance(a, torch.Tensor)}

    def sync() -> None:
        for device in devices:
            synchronize(device)

    times = []
    with torch.no_grad():
        for step in range(warmup + repeats):
            sync()
            start = time.perf_counter()
            fn(*args)
            sync()
            if step >= warmup:
                times.append(time.perf_counter() - start)
    return min(times)


def device_name(device: torch.device) -> str:
    """The GPU's name, or the CPU's model and the number of threads torch uses (for reports)."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    cpuinfo = Path("/proc/cpuinfo")
    models = [
        line.split(":", 1)[1].strip()
        for line in (cpuinfo.read_text().splitlines() if cpuinfo.exists() else [])
        if line.startswith("model name")
    ]
    model = models[0] if models else platform.processor() or platform.machine()
    return f"{model}, {torch.get_num_threads()} threads"
