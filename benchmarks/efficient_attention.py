"""Time, peak memory and error of four attention kernels as the sequence grows.

- ``naive``: :func:`vislearn.attention.scaled_dot_product_attention`, which materialises the
  ``N x N`` matrix of weights;
- ``memory_efficient``: :func:`vislearn.efficient_attention.memory_efficient_attention`,
  exact attention over blocks of keys with a running-max softmax (plain PyTorch ops);
- ``linear``: :func:`vislearn.efficient_attention.linear_attention`, a different model
  (Katharopoulos et al., 2020) that costs O(N);
- ``sdpa``: :func:`torch.nn.functional.scaled_dot_product_attention`, PyTorch's fused
  kernels (FlashAttention-style, on the CPU too).

Inputs are float32 ``(batch, heads, N, head_dim)`` queries, keys and values, no mask. By
default only the forward pass is measured, without autograd; ``--backward`` measures a
forward and backward pass (the gradient of ``out.sum()``) instead.

Time: the median wall-clock time of up to ``--repeats`` calls after ``--warmup`` calls,
with the device synchronised around each call; slow cases stop repeating after
``--case-seconds`` seconds (at least one timed call).

Peak memory, i.e. how much memory one call needs beyond its inputs (output included):

- CUDA: ``torch.cuda.max_memory_allocated`` during the call minus the memory allocated
  before it (tensors only, not the caching allocator's reserve).
- CPU (Linux): each case runs in a fresh Python process. After one warm-up call the
  process's peak resident set size (``VmHWM``) is reset through ``/proc/self/clear_refs``,
  and the figure is the peak during the second call minus the resident size just before it.
  ``MALLOC_MMAP_THRESHOLD_=65536`` makes glibc return every freed buffer to the system, so
  the warm-up's buffers count again. It measures pages actually touched (page granularity)
  and includes the math libraries' scratch memory. Elsewhere: not measured (null).

Error: the largest absolute difference from softmax attention computed in float64 (the
naive kernel, a block of queries at a time); for ``linear`` also from its own formula in
float64 (``max_abs_error_own``), since it is not softmax attention.

Usage::

    python benchmarks/efficient_attention.py --sizes 256 1024 4096 8192 --device cpu

prints a table and writes ``benchmarks/results/efficient-attention-<device>.json``.
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

from vislearn import default_device, device_name, synchronize
from vislearn.attention import scaled_dot_product_attention
from vislearn.efficient_attention import linear_attention, memory_efficient_attention

IMPLEMENTATIONS: dict[str, Callable[..., torch.Tensor]] = {
    "naive": scaled_dot_product_attention,
    "memory_efficient": memory_efficient_attention,
    "linear": linear_attention,
    "sdpa": F.scaled_dot_product_attention,
}
MALLOC_ENV = {"MALLOC_MMAP_THRESHOLD_": str(64 * 1024)}


def make_inputs(
    batch: int, heads: int, n: int, head_dim: int, device: torch.device, backward: bool
) -> list[torch.Tensor]:
    """Queries, keys and values ``(batch, heads, n, head_dim)``, float32, seeded."""
    g = torch.Generator().manual_seed(0)
    return [
        torch.randn(batch, heads, n, head_dim, generator=g).to(device).requires_grad_(backward)
        for _ in range(3)
    ]


def call(fn: Callable[..., torch.Tensor], inputs: list[torch.Tensor], backward: bool):
    """One forward pass without autograd, or a forward and backward pass."""
    if not backward:
        with torch.no_grad():
            return fn(*inputs)
    out = fn(*inputs)
    out.sum().backward()
    for x in inputs:
        x.grad = None
    return out.detach()


def time_calls(
    fn: Callable[..., torch.Tensor],
    inputs: list[torch.Tensor],
    args: argparse.Namespace,
) -> tuple[list[float], torch.Tensor]:
    """Seconds per call after warm-up, and the last output."""
    device = inputs[0].device
    for _ in range(args.warmup):
        out = call(fn, inputs, args.backward)
    synchronize(device)
    times: list[float] = []
    while len(times) < args.repeats and (not times or sum(times) < args.case_seconds):
        start = time.perf_counter()
        out = call(fn, inputs, args.backward)
        synchronize(device)
        times.append(time.perf_counter() - start)
    return times, out


def cuda_peak_bytes(fn: Callable[..., torch.Tensor], inputs: list[torch.Tensor], backward: bool):
    """Peak CUDA memory allocated by one call, beyond what was allocated before."""
    device = inputs[0].device
    synchronize(device)
    torch.cuda.reset_peak_memory_stats(device)
    before = torch.cuda.memory_allocated(device)
    out = call(fn, inputs, backward)
    synchronize(device)
    del out
    return torch.cuda.max_memory_allocated(device) - before


def _proc_status_bytes(field: str) -> int:
    """A ``kB`` field of ``/proc/self/status`` (e.g. ``VmRSS``), in bytes."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    raise KeyError(field)


def _cpu_memory_case(impl: str, sizes: list[int], backward: bool, threads: int) -> None:
    """Child process: print the extra peak resident memory of one call of ``impl``."""
    torch.set_num_threads(threads)
    batch, heads, n, head_dim = sizes
    inputs = make_inputs(batch, heads, n, head_dim, torch.device("cpu"), backward)
    fn = IMPLEMENTATIONS[impl]
    call(fn, inputs, backward)  # warm-up: library initialisation is not counted
    Path("/proc/self/clear_refs").write_text("5")  # reset VmHWM to the current RSS
    before = _proc_status_bytes("VmRSS")
    call(fn, inputs, backward)
    print(json.dumps({"peak_bytes": _proc_status_bytes("VmHWM") - before}))


def cpu_peak_bytes(impl: str, sizes: list[int], backward: bool, threads: int) -> int | None:
    """Run :func:`_cpu_memory_case` in a fresh process; None where ``/proc`` is missing."""
    if not Path("/proc/self/clear_refs").exists():
        return None
    case = ["--cpu-memory-case", impl, *map(str, sizes), str(int(backward)), str(threads)]
    result = subprocess.run(
        [sys.executable, __file__, *case],
        env={**os.environ, **MALLOC_ENV},
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(result.stdout.splitlines()[-1])["peak_bytes"]


@torch.no_grad()
def float64_references(
    inputs: list[torch.Tensor], query_block: int = 512
) -> tuple[torch.Tensor, torch.Tensor]:
    """Softmax attention and linear attention of the inputs in float64, on their device; the
    softmax a block of queries at a time, so that the reference never needs ``N x N``."""
    q, k, v = (x.detach().double() for x in inputs)
    softmax = torch.cat(
        [
            scaled_dot_product_attention(q[..., i : i + query_block, :], k, v)
            for i in range(0, q.shape[-2], query_block)
        ],
        dim=-2,
    )
    return softmax, linear_attention(q, k, v)


def max_error(out: torch.Tensor, reference: torch.Tensor) -> float:
    return (out.detach().double() - reference).abs().max().item()


def run(args: argparse.Namespace) -> dict:
    device = default_device() if args.device == "auto" else torch.device(args.device)
    if args.threads:
        torch.set_num_threads(args.threads)
    results = []
    for n in args.sizes:
        sizes = [args.batch, args.heads, n, args.head_dim]
        inputs = make_inputs(*sizes, device, args.backward)
        reference, linear_reference = float64_references(inputs)
        for impl, fn in IMPLEMENTATIONS.items():
            row: dict = {"n": n, "impl": impl}
            try:
                times, out = time_calls(fn, inputs, args)
                if device.type == "cuda":
                    peak = cuda_peak_bytes(fn, inputs, args.backward)
                elif device.type == "cpu" and not args.no_memory:
                    peak = cpu_peak_bytes(impl, sizes, args.backward, torch.get_num_threads())
                else:
                    peak = None
            except torch.OutOfMemoryError:
                out = None
                if device.type == "cuda":
                    torch.cuda.empty_cache()
                row.update(median_s=None, times_s=[], peak_bytes=None, error="out of memory")
                results.append(row)
                print(f"N={n:6d} {impl:>16}: out of memory", flush=True)
                continue
            row.update(
                median_s=statistics.median(times),
                times_s=times,
                peak_bytes=peak,
                max_abs_error=max_error(out, reference),
            )
            if impl == "linear":
                row["max_abs_error_own"] = max_error(out, linear_reference)
            results.append(row)
            print(
                f"N={n:6d} {impl:>16}: {row['median_s'] * 1e3:10.2f} ms, "
                f"{'n/a' if peak is None else f'{peak / 2**20:.1f} MiB'}",
                flush=True,
            )
            del out
        del inputs, reference, linear_reference
    return {
        "device": device.type,
        "device_name": device_name(device),
        "torch": torch.__version__,
        "dtype": "float32",
        "mode": "forward+backward" if args.backward else "forward",
        "batch": args.batch,
        "heads": args.heads,
        "head_dim": args.head_dim,
        "warmup": args.warmup,
        "repeats": args.repeats,
        "command": "python benchmarks/efficient_attention.py " + " ".join(sys.argv[1:]),
        "memory": "CUDA: max_memory_allocated during the call minus memory_allocated before; "
        "CPU: peak RSS (VmHWM, reset) during the call minus RSS before, in a fresh process "
        "after one warm-up call, MALLOC_MMAP_THRESHOLD_=65536. Both include the output.",
        "error": "max |out - softmax attention in float64|; linear also vs its own float64",
        "results": results,
    }


def print_table(report: dict) -> None:
    def mib(b: int | None) -> str:
        return "n/a" if b is None else f"{b / 2**20:.1f}"

    print(
        f"\n{report['device_name']}, torch {report['torch']}, float32, {report['mode']}, "
        f"batch {report['batch']}, {report['heads']} heads of {report['head_dim']}"
    )
    print(f"{'N':>6} {'kernel':>16} {'ms':>10} {'MiB':>9} {'max|err|':>9}  vs naive / vs sdpa")
    rows = {(r["n"], r["impl"]): r for r in report["results"]}
    for n in sorted({r["n"] for r in report["results"]}):
        naive, sdpa = rows[n, "naive"], rows[n, "sdpa"]
        for impl in IMPLEMENTATIONS:
            r = rows[n, impl]
            if r["median_s"] is None:
                print(f"{n:6d} {impl:>16} {'out of memory':>20}")
                continue
            memory = (
                f"memory {r['peak_bytes'] / naive['peak_bytes']:6.1%}"
                if r["peak_bytes"] and naive.get("peak_bytes")
                else ""
            )
            speed = (
                f"time {r['median_s'] / sdpa['median_s']:5.2f}x sdpa" if sdpa["median_s"] else ""
            )
            print(
                f"{n:6d} {impl:>16} {r['median_s'] * 1e3:10.2f} {mib(r['peak_bytes']):>9} "
                f"{r['max_abs_error']:9.1e}  {memory}  {speed}"
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[256, 1024, 4096])
    parser.add_argument("--heads", type=int, default=8)
    parser.add_argument("--head-dim", type=int, default=64)
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--device", default="auto", help="auto (vislearn's default), cpu, cuda")
    parser.add_argument("--threads", type=int, default=0, help="CPU threads (0: torch's default)")
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--case-seconds", type=float, default=10.0)
    parser.add_argument("--backward", action="store_true", help="time forward + backward")
    parser.add_argument("--no-memory", action="store_true", help="skip CPU memory measurement")
    parser.add_argument(
        "--out",
        type=Path,
        help="JSON file (default: benchmarks/results/efficient-attention-<device>.json)",
    )
    parser.add_argument("--cpu-memory-case", nargs=7, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.cpu_memory_case:
        impl, *numbers = args.cpu_memory_case
        *sizes, backward, threads = map(int, numbers)
        _cpu_memory_case(impl, sizes, bool(backward), threads)
        return
    report = run(args)
    print_table(report)
    suffix = "-backward" if args.backward else ""
    default = f"efficient-attention-{report['device']}{suffix}.json"
    out = args.out or Path(__file__).parent / "results" / default
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
