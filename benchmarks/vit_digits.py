"""Training speed and accuracy of the book's Vision Transformers and CNN on sklearn digits.

Trains, with the settings of the chapter ``book/vision_transformer.md`` (8 x 8 digits cut
into 2 x 2 patches, width 64, 3 layers of 4 heads, MLP ratio 2; AdamW, peak learning rate
3e-3 after 2 warm-up epochs, cosine decay, label smoothing 0.1, random affine
augmentation), a ViT with learned and one with sine-cosine position embeddings, and a
:class:`vislearn.vit.SimpleCNN` with a similar number of parameters, each from the same
seed, on the same 1437 training images, and records per epoch: training loss, test
accuracy on the 360 held-out images, cumulative training time (evaluation excluded) and
training images per second.

Usage::

    python benchmarks/vit_digits.py --device cpu --threads 1

prints a summary and writes ``benchmarks/results/vit-digits-<device>.json``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

import torch

from vislearn import default_device, device_name, seed_everything
from vislearn.images import load_digits, random_affine
from vislearn.vit import SimpleCNN, VisionTransformer, count_parameters, train_classifier


def build(name: str) -> torch.nn.Module:
    if name == "cnn":
        return SimpleCNN(1, 10, width=40)
    pos_embed = name.removeprefix("vit-")
    return VisionTransformer(8, 2, 1, 10, 64, 3, 4, 2.0, pos_embed=pos_embed)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", nargs="+", default=["vit-learned", "vit-sincos", "cnn"])
    parser.add_argument("--epochs", type=int, default=30, help="the CNN trains half as long")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="auto", help="auto (vislearn's default), cpu, cuda")
    parser.add_argument("--threads", type=int, default=1, help="CPU threads (0: torch's default)")
    parser.add_argument("--target", type=float, default=0.97, help="accuracy to time")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    device = default_device() if args.device == "auto" else torch.device(args.device)
    if args.threads:
        torch.set_num_threads(args.threads)
    data = load_digits(device=device)
    runs = {}
    for name in args.models:
        generator = seed_everything(args.seed)
        model = build(name)
        epochs = args.epochs if name != "cnn" else max(1, args.epochs // 2)
        history = train_classifier(
            model,
            (data.x_train, data.y_train),
            (data.x_test, data.y_test),
            epochs=epochs,
            lr=3e-3,
            label_smoothing=0.1,
            warmup_epochs=2,
            augment=random_affine,
            device=device,
            generator=generator,
            progress=False,
        )
        reached = [
            t for t, a in zip(history["time"], history["test_acc"], strict=True) if a >= args.target
        ]
        runs[name] = {
            "parameters": count_parameters(model),
            "epochs": epochs,
            "final_test_acc": history["test_acc"][-1],
            "best_test_acc": max(history["test_acc"]),
            "train_seconds": history["time"][-1],
            f"seconds_to_{args.target}": reached[0] if reached else None,
            "median_images_per_second": statistics.median(history["images_per_second"]),
            "history": history,
        }
        print(
            f"{name:>12}: {runs[name]['parameters']:7d} parameters, {epochs} epochs in "
            f"{history['time'][-1]:6.1f} s ({runs[name]['median_images_per_second']:6.0f} "
            f"images/s), test accuracy {history['test_acc'][-1]:.4f} "
            f"(best {max(history['test_acc']):.4f}), "
            f"{args.target:.0%} after {'never' if not reached else f'{reached[0]:.1f} s'}",
            flush=True,
        )
    report = {
        "device": device.type,
        "device_name": device_name(device),
        "torch": torch.__version__,
        "seed": args.seed,
        "command": "python benchmarks/vit_digits.py " + " ".join(sys.argv[1:]),
        "runs": runs,
    }
    out = args.out or Path(__file__).parent / "results" / f"vit-digits-{device.type}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
