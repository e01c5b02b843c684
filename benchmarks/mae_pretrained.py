"""A masked autoencoder pre-trained on scikit-learn's digits, saved for the book.

The chapter on masked self-supervision pre-trains a small masked autoencoder live for a
minute, which shows the mechanics but leaves the encoder just past the plateau of its loss
curve; its fine-tuning comparison uses this longer run instead: the model and settings of
``benchmarks/mae_finetune.py`` (seed 0, 200 epochs), saved as a small ``.pt`` file with a
JSON record of the command, the settings, the test loss and the file's SHA-256, which the
chapter checks before loading it.

    python benchmarks/mae_pretrained.py --out benchmarks/results/mae-digits.pt
"""

from __future__ import annotations

import argparse
import datetime
import hashlib
import io
import json
import os
import sys
import time
from pathlib import Path

import torch

from vislearn import __version__, device_name, seed_everything
from vislearn.images import load_digits
from vislearn.mae import MaskedAutoencoder
from vislearn.train_mae import MODELS, pretrain

REPO = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--epochs", type=int, default=200)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--lr", type=float, default=4e-3, help="peak learning rate")
    parser.add_argument("--threads", type=int, default=1, help="CPU threads")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks/results/mae-digits.pt")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    x_train, _, x_test, _ = load_digits("cpu")

    patch, dim, depth, heads, decoder_dim, decoder_depth, decoder_heads = MODELS["digits"]
    config = dict(image_size=8, patch_size=patch, in_channels=1, dim=dim, depth=depth,
                  num_heads=heads, decoder_dim=decoder_dim, decoder_depth=decoder_depth,
                  decoder_num_heads=decoder_heads, mask_ratio=0.75)  # fmt: skip
    seed_everything(args.seed)
    mae = MaskedAutoencoder(**config)
    start, cpu_start = time.perf_counter(), time.process_time()
    history = pretrain(mae, x_train, epochs=args.epochs, batch_size=args.batch_size,
                       lr=args.lr, seed=args.seed, progress=False)  # fmt: skip
    seconds, cpu_seconds = time.perf_counter() - start, time.process_time() - cpu_start
    mae.eval()
    with torch.no_grad():
        test_loss = mae(x_test, generator=torch.Generator().manual_seed(1))[0].item()

    buffer = io.BytesIO()  # the bytes written are the bytes hashed
    torch.save({"config": config, "model": mae.state_dict()}, buffer)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_bytes(buffer.getvalue())
    record = {
        "date": datetime.datetime.now().isoformat(timespec="seconds"),
        "command": " ".join([os.path.basename(sys.executable), *sys.argv]),
        "file": args.out.name,
        "sha256": hashlib.sha256(buffer.getvalue()).hexdigest(),
        "device_name": device_name(torch.device("cpu")),
        "versions": {"vislearn": __version__, "torch": torch.__version__},
        "settings": {k: v for k, v in vars(args).items() if k != "out"},
        "config": config,
        "steps": len(history["loss"]),
        "final_train_loss": history["loss"][-1],
        "test_loss": test_loss,
        "wall_seconds": seconds,
        "cpu_seconds": cpu_seconds,
    }
    args.out.with_suffix(".json").write_text(json.dumps(record, indent=2) + "\n")
    print(
        f"{record['steps']} steps in {seconds:.0f} s, test loss at 75% masking "
        f"{test_loss:.4f}; wrote {args.out} ({len(buffer.getvalue()) / 1e3:.0f} kB)"
    )


if __name__ == "__main__":
    main()
