"""The chapters' Experiment exercises that train models, at the chapters' budgets and over
several seeds, for the solutions site to quote.

Each experiment is a function of ``book/solutions/experiments.py``, which the solution
pages show and run at a small scale; this script runs every variant of each experiment
with each seed and writes, per experiment, the command, the settings and per variant and
metric one value per seed to ``benchmarks/results/experiment-exercises.json``, which the
solution pages read with ``experiments.committed``.

    python benchmarks/experiment_exercises.py --seeds 3
    python benchmarks/experiment_exercises.py --seeds 3 --only lifting  # others kept

The defaults take about 17 minutes of CPU time on one thread.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import shlex
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "book" / "solutions"))

import experiments  # noqa: E402  (book/solutions/experiments.py)

from vislearn import __version__, default_device, device_name  # noqa: E402


def language_models(seed: int) -> dict[str, dict[str, float]]:
    variants = {"4 heads": {}, "4 heads, no positions": {"positions": False},
                "1 head": {"num_heads": 1}, "8 heads": {"num_heads": 8}}  # fmt: skip
    return {
        name: {"validation loss (nats)": experiments.language_model(**variant, seed=seed)}
        for name, variant in variants.items()
    }


def vits(seed: int) -> dict[str, dict[str, float]]:
    variants = {"2 x 2 patches": {}, "4 x 4 patches": {"patch_size": 4},
                "2 x 2 patches, no positions": {"positions": False}}  # fmt: skip
    results = {}
    for name, variant in variants.items():
        _, history = experiments.vit_on_digits(**variant, seed=seed)
        results[name] = {"test accuracy (%)": 100 * history["test_acc"][-1],
                         "training seconds": sum(history["seconds"])}  # fmt: skip
    return results


def mask_ratios(seed: int) -> dict[str, dict[str, float]]:
    return {f"mask ratio {r}": experiments.mae_mask_ratio(r, seed=seed) for r in (0.5, 0.75, 0.9)}


def self_loops(seed: int) -> dict[str, dict[str, float]]:
    if experiments.citation_graph().name != "Cora":
        raise SystemExit("Cora is missing: the benchmark reads it from shared/data/planetoid")
    return {
        name: {"test accuracy (%)": experiments.gcn_self_loops(loops, seed=seed)}
        for name, loops in [("self-loops", True), ("no self-loops", False)]
    }


def lifters(seed: int) -> dict[str, dict[str, float]]:
    with_sides = experiments.lifter(seed=seed)
    return {
        "with side tags": experiments.lifting_errors(with_sides),
        "without side tags": experiments.lifting_errors(experiments.lifter(False, seed=seed)),
        "with side tags, no skeleton": experiments.lifting_errors(with_sides, skeleton=False),
    }


# name: (settings, seed -> {variant: {metric: value}})
EXPERIMENTS: dict[str, tuple[dict, Callable[[int], dict[str, dict[str, float]]]]] = {
    "language model": (
        {"steps": 600, "batch": "32 windows of 16 words", "width": 64, "layers": 2},
        language_models,
    ),
    "vit": ({"epochs": 30, "width": 64, "layers": 3, "heads": 4}, vits),
    "mae mask ratio": (
        {"epochs": 60, "batch": 64, "peak lr": 4e-3, "probe": "1% of the labels"},
        mask_ratios,
    ),
    "gcn self-loops": ({"graph": "Cora", "epochs": 200}, self_loops),
    "lifting": ({"steps": 700, "batch": 64, "metric": "PA-MPJPE (%)"}, lifters),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--only", nargs="+", choices=sorted(EXPERIMENTS), default=None,
                        help="run these experiments and keep the file's other results")  # fmt: skip
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", type=Path, default=experiments.RESULTS)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    seeds = list(range(args.seeds))
    record = json.loads(args.out.read_text()) if args.only and args.out.exists() else {}
    if record and record["seeds"] != seeds:
        raise SystemExit(f"{args.out} has seeds {record['seeds']}: run every experiment")
    results = record.get("experiments", {})
    for name in args.only or EXPERIMENTS:
        settings, run = EXPERIMENTS[name]
        start, cpu_start = time.perf_counter(), time.process_time()
        by_seed = [run(seed) for seed in seeds]  # [{variant: {metric: value}}]
        results[name] = {
            "command": shlex.join([os.path.basename(sys.executable), *sys.argv]),
            "date": datetime.date.today().isoformat(),
            "device": device_name(default_device()),
            "versions": {"vislearn": __version__, "torch": torch.__version__},
            "settings": settings,
            "results": {
                variant: {metric: [row[variant][metric] for row in by_seed] for metric in metrics}
                for variant, metrics in by_seed[0].items()
            },
            "seconds": round(time.perf_counter() - start, 1),
            "cpu_seconds": round(time.process_time() - cpu_start, 1),
        }
        print(f"{name}: {results[name]['seconds']:.0f} s", flush=True)
    ordered = {name: results[name] for name in EXPERIMENTS if name in results}
    args.out.write_text(json.dumps({"seeds": seeds, "experiments": ordered}, indent=1) + "\n")


if __name__ == "__main__":
    main()
