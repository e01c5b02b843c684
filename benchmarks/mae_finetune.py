"""Does masked pre-training help when labels are few? A masked autoencoder pre-trained on
scikit-learn's digits, then probed and fine-tuned with 1%, 10% and 100% of the labels,
against the same Vision Transformer trained from scratch; several seeds.

Per seed: pre-train a :class:`vislearn.mae.MaskedAutoencoder` on the 1437 training images
without their labels (:func:`vislearn.train_mae.pretrain`), then for each label fraction
draw a stratified subset of the labelled training images and report the accuracy on the 360
test images of

- ``scratch``: the encoder's architecture with a linear head, randomly initialised, all
  weights trained (:func:`vislearn.mae.fine_tune`);
- ``mae_finetune``: the same, starting from the pre-trained encoder;
- ``mae_probe``: a linear classifier on the frozen pre-trained encoder's mean-pooled
  features (:func:`vislearn.mae.linear_probe`);
- ``random_probe``: the same probe on a randomly initialised encoder, the probe's baseline.

Fine-tuning gets the same budget in optimiser steps at every fraction, so that fewer labels
mean more passes over them, not less optimisation.

    python benchmarks/mae_finetune.py --seeds 3 --out benchmarks/results/mae-finetune.json
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import sklearn
import torch

from vislearn import __version__, device_name, seed_everything
from vislearn.images import load_digits
from vislearn.mae import MaskedAutoencoder, fine_tune, linear_probe, stratified_subset
from vislearn.train_mae import MODELS, pretrain
from vislearn.vit import VisionTransformer

REPO = Path(__file__).resolve().parents[1]
METHODS = ("scratch", "mae_finetune", "mae_probe", "random_probe")


def digits_mae(mask_ratio: float = 0.75) -> MaskedAutoencoder:
    """The masked autoencoder of ``python -m vislearn.train_mae --data digits``."""
    patch, dim, depth, heads, ddim, ddepth, dheads = MODELS["digits"]
    return MaskedAutoencoder(
        8, patch, 1, dim, depth, heads, ddim, ddepth, dheads, mask_ratio=mask_ratio
    )


def run_seed(seed: int, args: argparse.Namespace, data, device: torch.device) -> dict:
    x_train, y_train, x_test, y_test = data
    seed_everything(seed)
    mae = digits_mae().to(device)
    start = time.perf_counter()
    history = pretrain(
        mae,
        x_train,
        epochs=args.pretrain_epochs,
        batch_size=args.batch_size,
        lr=args.lr,
        seed=seed,
        progress=False,
    )
    pretrain_seconds = time.perf_counter() - start
    with torch.no_grad():
        mae.eval()
        test_loss = mae(x_test, generator=torch.Generator().manual_seed(seed))[0].item()
    row = {
        "seed": seed,
        "pretrain_seconds": pretrain_seconds,
        "pretrain_test_loss": test_loss,
        "pretrain_final_train_loss": history["loss"][-1],
        "accuracy": {},
    }
    print(
        f"seed {seed}: pre-trained {len(history['loss'])} steps in {pretrain_seconds:.0f} s, "
        f"test loss at 75% masking {test_loss:.4f}",
        flush=True,
    )
    for fraction in args.fractions:
        generator = torch.Generator().manual_seed(1000 * seed + round(1000 * fraction))
        index = stratified_subset(y_train, fraction, generator).to(device)
        train = (x_train[index], y_train[index])
        test = (x_test, y_test)
        accuracy = {}
        seed_everything(seed)
        scratch = VisionTransformer(num_classes=10, **mae.encoder_config).to(device)
        accuracy["random_probe"] = linear_probe(scratch, train, test, 10, generator=generator)[0]
        accuracy["scratch"] = fine_tune(
            scratch,
            train,
            test,
            steps=args.finetune_steps,
            lr=args.finetune_lr,
            generator=generator,
        )
        accuracy["mae_probe"] = linear_probe(mae.vit, train, test, 10, generator=generator)[0]
        accuracy["mae_finetune"] = fine_tune(
            mae.classifier(10),
            train,
            test,
            steps=args.finetune_steps,
            lr=args.finetune_lr,
            generator=generator,
        )
        row["accuracy"][str(fraction)] = {"labels": len(index), **accuracy}
        print(
            f"  {fraction:>5.0%} ({len(index):>4} labels): "
            + ", ".join(f"{m} {100 * accuracy[m]:.1f}%" for m in METHODS),
            flush=True,
        )
    return row


def summarise(runs: list[dict], fractions: list[float]) -> dict:
    """Mean and standard deviation (over seeds) of each method's accuracy, in percent."""
    summary = {}
    for fraction in fractions:
        cells = [run["accuracy"][str(fraction)] for run in runs]
        summary[str(fraction)] = {"labels": cells[0]["labels"]}
        for method in METHODS:
            values = [100 * cell[method] for cell in cells]
            summary[str(fraction)][method] = {
                "mean": statistics.mean(values),
                "std": statistics.stdev(values) if len(values) > 1 else None,
            }
    return summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--fractions", type=float, nargs="+", default=[0.01, 0.1, 1.0])
    parser.add_argument("--pretrain-epochs", type=int, default=200)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--lr", type=float, default=4e-3, help="pre-training peak rate")
    parser.add_argument("--finetune-steps", type=int, default=400)
    parser.add_argument("--finetune-lr", type=float, default=1e-3)
    parser.add_argument("--threads", type=int, default=1, help="CPU threads")
    parser.add_argument("--device", default="cpu", help="cpu, cuda, mps ...")
    parser.add_argument("--out", default=str(REPO / "benchmarks/results/mae-finetune.json"))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    name = device_name(device)
    print(f"device {device} ({name}), torch {torch.__version__}", flush=True)
    data = load_digits(device)

    start = time.perf_counter()
    cpu_start = time.process_time()
    runs = [run_seed(seed, args, data, device) for seed in range(args.seeds)]
    summary = summarise(runs, args.fractions)
    print(f"\n{'labels':>12}" + "".join(f"{m:>20}" for m in METHODS))
    for fraction, cell in summary.items():
        line = f"{float(fraction):>5.0%} ({cell['labels']:>4})"
        for method in METHODS:
            mean, std = cell[method]["mean"], cell[method]["std"]
            line += f"{mean:>13.1f}" + (f" +- {std:4.1f}" if std is not None else " " * 7)
        print(line)

    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    record = {
        "date": datetime.datetime.now().isoformat(timespec="seconds"),
        "command": " ".join([os.path.basename(sys.executable), *sys.argv]),
        "device": str(device),
        "device_name": name,
        "cpu_threads": torch.get_num_threads(),
        "versions": {
            "vislearn": __version__,
            "torch": torch.__version__,
            "numpy": np.__version__,
            "scikit-learn": sklearn.__version__,
            "python": platform.python_version(),
        },
        "wall_seconds": time.perf_counter() - start,
        "cpu_seconds": time.process_time() - cpu_start,
        "settings": {key: value for key, value in vars(args).items() if key != "out"},
        "model": dict(
            zip(
                (
                    "patch_size",
                    "dim",
                    "depth",
                    "heads",
                    "decoder_dim",
                    "decoder_depth",
                    "decoder_heads",
                ),
                MODELS["digits"],
                strict=True,
            )
        ),
        "summary": summary,
        "runs": runs,
    }
    out.write_text(json.dumps(record, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
