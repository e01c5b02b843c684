"""vislearn.device: device choice, seeding and timing."""

import random

import numpy as np
import pytest
import torch

from vislearn.device import (
    DEVICE_ENV,
    available_devices,
    default_device,
    seed_everything,
    time_call,
)


def test_the_cpu_is_always_available_and_first():
    devices = available_devices()
    assert devices[0] == torch.device("cpu")
    assert len(set(devices)) == len(devices)


def test_the_environment_variable_chooses_the_device(monkeypatch):
    monkeypatch.setenv(DEVICE_ENV, "cpu")
    assert default_device() == torch.device("cpu")
    monkeypatch.delenv(DEVICE_ENV)
    assert default_device() == available_devices()[-1]  # the accelerator, where there is one
    if not torch.cuda.is_available():
        monkeypatch.setenv(DEVICE_ENV, "cuda")
        with pytest.raises(RuntimeError, match="CUDA is not available"):
            default_device()


def test_seed_everything_makes_every_generator_repeat():
    def draw(generator):
        legacy_numpy = np.random.rand()  # noqa: NPY002 (seed_everything seeds it too)
        return random.random(), legacy_numpy, torch.rand(3), torch.rand(3, generator=generator)

    first, second = draw(seed_everything(5)), draw(seed_everything(5))
    assert first[:2] == second[:2]
    assert torch.equal(first[2], second[2]) and torch.equal(first[3], second[3])
    assert draw(seed_everything(6))[0] != first[0]


def test_time_call_warms_up_repeats_and_turns_autograd_off(device):
    calls = []
    x = torch.ones(4, device=device, requires_grad=True)

    def fn(tensor):
        calls.append(torch.is_grad_enabled())
        return tensor * 2

    seconds = time_call(fn, x, repeats=3, warmup=2)
    assert calls == [False] * 5
    assert isinstance(seconds, float) and 0 <= seconds < 1
    with pytest.raises(ValueError, match="at least 1"):
        time_call(fn, x, repeats=0)
