"""Training checkpoints that survive a crash and resume exactly.

A checkpoint is a dict of tensors and plain Python values written with :func:`torch.save`.
:func:`save_checkpoint` writes it atomically; :func:`load_checkpoint` reads it onto the CPU
(``load_state_dict`` then moves weights and optimiser state to the model's device, while
random-number states must stay CPU tensors); :func:`rng_state` and :func:`set_rng_state`
capture and restore every global random state a training step could draw from.
"""

from __future__ import annotations

import os
import random
from pathlib import Path

import numpy as np
import torch


def save_checkpoint(path: str | os.PathLike, state: dict) -> None:
    """Write ``state`` to ``path`` atomically: a crash while saving leaves the previous
    checkpoint intact."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)


def load_checkpoint(path: str | os.PathLike) -> dict:
    """Read a checkpoint written by :func:`save_checkpoint` onto the CPU (tensors and plain
    values only: ``weights_only=True`` never runs code from the file)."""
    return torch.load(path, map_location="cpu", weights_only=True)


def rng_state() -> dict:
    """Python's, NumPy's legacy, PyTorch's CPU and (where present) every CUDA random state."""
    name, key, *rest = np.random.get_state()  # noqa: NPY002 (the legacy global state)
    state = {
        "torch": torch.get_rng_state(),
        "python": random.getstate(),
        "numpy": [name, torch.from_numpy(key.astype(np.int64)), *rest],
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    """Restore what :func:`rng_state` saved. CUDA states are restored for the devices both
    machines have (a checkpoint may come from a machine with more or fewer GPUs)."""
    torch.set_rng_state(state["torch"].cpu())
    random.setstate(state["python"])
    name, key, *rest = state["numpy"]
    np.random.set_state((name, key.cpu().numpy().astype(np.uint32), *rest))  # noqa: NPY002
    if "cuda" in state and torch.cuda.is_available():
        for index, cuda_state in enumerate(state["cuda"][: torch.cuda.device_count()]):
            torch.cuda.set_rng_state(cuda_state.cpu(), index)
