"""The lifting chapter's experiment, trained longer: per-category errors of the lifting
transformer, the fixed-order MLP and the flat baseline (training and held-out categories),
errors as points go missing, and errors with the points shuffled.

    python benchmarks/lifting.py --out benchmarks/results/lifting.json

The defaults take about six minutes of CPU time on one thread. The chapter
(book/lifting.md) shows the JSON file's tables when it exists; errors are in percent of the
object's size (see vislearn.lifting.evaluate_lifter).
"""

from __future__ import annotations

import argparse
import datetime
import json
import shlex
import sys
import time
from pathlib import Path

import torch

from vislearn import default_device, device_name, seed_everything
from vislearn.lifting import (
    HELD_OUT_CATEGORIES,
    TRAIN_CATEGORIES,
    FlatLifter,
    LiftingTransformer,
    MLPLifter,
    evaluate_lifter,
    make_categories,
    train_lifter,
)

REPO = Path(__file__).resolve().parents[1]


def rounded(errors: dict[str, dict[str, float]]) -> dict[str, dict[str, float]]:
    return {c: {k: round(v, 2) for k, v in e.items()} for c, e in errors.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=4000, help="transformer steps")
    parser.add_argument("--mlp-steps", type=int, default=3000)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--samples", type=int, default=512, help="test samples per category")
    parser.add_argument("--device", default=None)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=None, help="write the results here (JSON)")
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    device = torch.device(args.device) if args.device else default_device()
    seed_everything(args.seed)
    train = make_categories(TRAIN_CATEGORIES)
    everything = train + make_categories(HELD_OUT_CATEGORIES)
    models = {  # initialised from the seed, in this order
        "transformer": (LiftingTransformer(seed=args.seed), args.steps),
        "MLP": (MLPLifter(max(c.num_points for c in everything)), args.mlp_steps),
    }
    training = {}
    for name, (model, steps) in models.items():
        start_cpu = time.process_time()
        history = train_lifter(
            model.to(device),
            train,
            steps,
            batch_size=args.batch_size,
            seed=args.seed,
            progress=sys.stderr.isatty(),  # no progress bar in a log file
        )
        training[name] = {
            "class": type(model).__name__,
            "config": model.config,
            "parameters": sum(p.numel() for p in model.parameters()),
            "steps": steps,
            "batch_size": args.batch_size,
            "seconds": round(history.seconds, 1),
            "cpu_seconds": round(time.process_time() - start_cpu, 1),
            "final_loss": round(sum(history.loss[-100:]) / len(history.loss[-100:]), 5),
        }
        print(f"{name}: {training[name]}", flush=True)

    lifters = {"flat": FlatLifter(), **{n: m for n, (m, _) in models.items()}}
    errors = {
        n: evaluate_lifter(m, everything, samples=args.samples, device=device)
        for n, m in lifters.items()
    }
    rates = [0.0, 0.1, 0.2, 0.3, 0.4, 0.5]
    missing = {n: [] for n in lifters}
    for rate in rates:
        for n, m in lifters.items():
            e = evaluate_lifter(
                m, train, samples=args.samples // 2, device=device, missing_rate=rate
            )
            missing[n].append(round(sum(v["pa_mpjpe"] for v in e.values()) / len(e), 2))
    shuffled = {
        n: evaluate_lifter(m, train, samples=args.samples, device=device, permute=True)
        for n, m in lifters.items()
        if n != "flat"
    }
    script = Path(sys.argv[0]).resolve()
    script = script.relative_to(REPO) if script.is_relative_to(REPO) else script
    result = {
        "command": " ".join(shlex.quote(str(a)) for a in ["python", script, *sys.argv[1:]]),
        "date": datetime.date.today().isoformat(),
        "device": f"{device_name(device)} (torch {torch.__version__})",
        "units": "percent of the object's size (RMS distance of its points from their centroid)",
        "training": training,
        "errors": {n: rounded(e) for n, e in errors.items()},
        "missing_rates": rates,
        "missing_pa_mpjpe": missing,
        "shuffled": {n: rounded(e) for n, e in shuffled.items()},
    }
    text = json.dumps(result, indent=1)
    print(text)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
