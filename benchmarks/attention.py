"""Time and memory of the teaching attention against PyTorch's kernels.

``vislearn.attention.scaled_dot_product_attention`` ("teaching") materialises the ``N x N``
matrix of attention weights. It is compared with two paths of
``torch.nn.functional.scaled_dot_product_attention``: "math", PyTorch's unfused reference,
which materialises the same matrix, and "fused", the kernel PyTorch dispatches to by default
(FlashAttention-style on CUDA and, for float32 without a mask, on the CPU too), which never
holds it. All run forward only, without autograd, in float32, on
``(batch, heads, N, head_dim)`` queries, keys and values, without a mask.

Time: the median wall-clock time of ``--repeats`` calls after ``--warmup`` calls, with the
device synchronised around each call (CUDA kernels run asynchronously).

Peak memory, i.e. how much memory one call needs beyond its inputs (the output included):

- CUDA: ``torch.cuda.max_memory_allocated`` during the call minus the memory allocated
  before it. It counts tensors only, not the caching allocator's reserve.
- CPU (Linux only): each case runs in a fresh Python process. After one warm-up call the
  process's peak resident set size (``VmHWM``) is reset through ``/proc/self/clear_refs``,
  and the figure is the peak during the second call minus the resident size just before it.
  glibc's ``MALLOC_MMAP_THRESHOLD_`` is set to 64 KiB there so that every freed buffer is
  returned to the system, which makes the warm-up's buffers count again. It measures pages
  actually touched, to page granularity, and includes any scratch memory of the math
  libraries. Elsewhere the CPU memory is not measured (null in the JSON).

Usage::

    python benchmarks/attention.py --sizes 256 1024 4096 --device auto

prints a table and writes ``benchmarks/results/attention-<device>.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.nn.attention import SDPBackend, sdpa_kernel

from vislearn import default_device, device_name, synchronize
from vislearn.attention import scaled_dot_product_attention


def unfused_sdpa(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """PyTorch's SDPA restricted to its math backend, which materialises the weights."""
    with sdpa_kernel(SDPBackend.MATH):
        return F.scaled_dot_product_attention(q, k, v)


IMPLEMENTATIONS: dict[str, Callable[..., torch.Tensor]] = {
    "teaching": scaled_dot_product_attention,
    "math": unfused_sdpa,
    "fused": F.scaled_dot_product_attention,
}
MALLOC_ENV = {"MALLOC_MMAP_THRESHOLD_": str(64 * 1024)}


def make_inputs(
    batch: int, heads: int, n: int, head_dim: int, device: torch.device
) -> list[torch.Tensor]:
    """Queries, keys and values ``(batch, heads, n, head_dim)``, float32, seeded."""
    g = torch.Generator().manual_seed(0)
    return [torch.randn(batch, heads, n, head_dim, generator=g).to(device) for _ in range(3)]


@torch.no_grad()
def time_forward(
    fn: Callable[..., torch.Tensor],
    inputs: list[torch.Tensor],
    device: torch.device,
    warmup: int,
    repeats: int,
) -> list[float]:
    """Seconds per call of ``fn(*inputs)``, ``repeats`` times after ``warmup`` calls."""
    for _ in range(warmup):
        fn(*inputs)
    synchronize(device)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn(*inputs)
        synchronize(device)
        times.append(time.perf_counter() - start)
    return times


@torch.no_grad()
def cuda_peak_bytes(fn: Callable[..., torch.Tensor], inputs: list[torch.Tensor]) -> int:
    """Peak CUDA memory allocated by one call of ``fn(*inputs)``, beyond what was before."""
    device = inputs[0].device
    synchronize(device)
    torch.cuda.reset_peak_memory_stats(device)
    before = torch.cuda.memory_allocated(device)
    fn(*inputs)
    synchronize(device)
    return torch.cuda.max_memory_allocated(device) - before


def _proc_status_bytes(field: str) -> int:
    """A ``kB`` field of ``/proc/self/status`` (e.g. ``VmRSS``), in bytes."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    raise KeyError(field)


@torch.no_grad()
def _cpu_memory_case(impl: str, batch: int, heads: int, n: int, head_dim: int) -> None:
    """Child process: print the extra peak resident memory of one call of ``impl``."""
    inputs = make_inputs(batch, heads, n, head_dim, torch.device("cpu"))
    fn = IMPLEMENTATIONS[impl]
    fn(*inputs)  # warm-up: library initialisation is not counted
    Path("/proc/self/clear_refs").write_text("5")  # reset VmHWM to the current RSS
    before = _proc_status_bytes("VmRSS")
    out = fn(*inputs)
    peak = _proc_status_bytes("VmHWM")
    print(json.dumps({"peak_bytes": peak - before, "output_bytes": out.nbytes}))


def cpu_peak_bytes(impl: str, batch: int, heads: int, n: int, head_dim: int) -> int | None:
    """Run :func:`_cpu_memory_case` in a fresh process; None where ``/proc`` is missing."""
    if not Path("/proc/self/clear_refs").exists():
        return None
    case = ["--cpu-memory-case", impl, str(batch), str(heads), str(n), str(head_dim)]
    result = subprocess.run(
        [sys.executable, __file__, *case],
        env={**os.environ, **MALLOC_ENV},
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(result.stdout.splitlines()[-1])["peak_bytes"]


def run(args: argparse.Namespace) -> dict:
    device = default_device() if args.device == "auto" else torch.device(args.device)
    results = []
    for n in args.sizes:
        inputs = make_inputs(args.batch, args.heads, n, args.head_dim, device)
        with torch.no_grad():
            difference = IMPLEMENTATIONS["teaching"](*inputs) - IMPLEMENTATIONS["fused"](*inputs)
        for impl, fn in IMPLEMENTATIONS.items():
            times = time_forward(fn, inputs, device, args.warmup, args.repeats)
            if device.type == "cuda":
                peak = cuda_peak_bytes(fn, inputs)
            elif device.type == "cpu":
                peak = cpu_peak_bytes(impl, args.batch, args.heads, n, args.head_dim)
            else:
                peak = None
            results.append(
                {
                    "n": n,
                    "impl": impl,
                    "median_s": statistics.median(times),
                    "times_s": times,
                    "peak_bytes": peak,
                    "max_abs_difference": difference.abs().max().item(),
                }
            )
        del inputs
    return {
        "device": device.type,
        "device_name": device_name(device),
        "torch": torch.__version__,
        "dtype": "float32",
        "batch": args.batch,
        "heads": args.heads,
        "head_dim": args.head_dim,
        "warmup": args.warmup,
        "repeats": args.repeats,
        "memory": "CUDA: max_memory_allocated during the call minus memory_allocated before; "
        "CPU: peak RSS (VmHWM, reset) during the call minus RSS before, in a fresh process "
        "after one warm-up call, MALLOC_MMAP_THRESHOLD_=65536. Both include the output.",
        "results": results,
    }


def print_table(report: dict) -> None:
    def mib(b: int | None) -> str:
        return "n/a" if b is None else f"{b / 2**20:.1f}"

    def ratio(a: float | None, b: float | None) -> str:
        return f"{a / b:5.2f}" if a and b else "  n/a"

    print(
        f"{report['device_name']}, torch {report['torch']}, float32, batch {report['batch']}, "
        f"{report['heads']} heads of {report['head_dim']}, median of {report['repeats']}"
    )
    print(
        "     N | time ms: teaching     math    fused | teaching/math  teaching/fused "
        "| peak MiB: teaching     math    fused | max|diff|"
    )
    rows = {(r["n"], r["impl"]): r for r in report["results"]}
    for n in sorted({r["n"] for r in report["results"]}):
        t, m, f = rows[n, "teaching"], rows[n, "math"], rows[n, "fused"]
        times = "".join(f"{r['median_s'] * 1e3:9.2f}" for r in (t, m, f))
        peaks = "".join(f"{mib(r['peak_bytes']):>9}" for r in (t, m, f))
        print(
            f"{n:6d} |         {times} |         "
            f"{ratio(t['median_s'], m['median_s'])}           "
            f"{ratio(t['median_s'], f['median_s'])} |          {peaks} | "
            f"{t['max_abs_difference']:9.2e}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[256, 1024, 4096])
    parser.add_argument("--heads", type=int, default=8)
    parser.add_argument("--head-dim", type=int, default=64)
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--device", default="auto", help="auto (vislearn's default), cpu, cuda")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument(
        "--out", type=Path, help="JSON file (default: benchmarks/results/attention-<device>.json)"
    )
    parser.add_argument("--cpu-memory-case", nargs=5, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.cpu_memory_case:
        impl, *sizes = args.cpu_memory_case
        _cpu_memory_case(impl, *map(int, sizes))
        return
    report = run(args)
    print_table(report)
    out = args.out or Path(__file__).parent / "results" / f"attention-{report['device']}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
