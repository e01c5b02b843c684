"""Train a lifting model from the command line, with checkpoints, and print its errors.

    python -m vislearn.train_lifting --model transformer --steps 3000 --checkpoint lifter.pt
    python -m vislearn.train_lifting --steps 3000 --checkpoint lifter.pt --resume

The model learns on :data:`vislearn.lifting.TRAIN_CATEGORIES` and is evaluated on those and
on :data:`vislearn.lifting.HELD_OUT_CATEGORIES` (errors in percent of the object's size, see
:func:`vislearn.lifting.evaluate_lifter`). An interrupted run continues from its checkpoint
with ``--resume`` and draws the batches an uninterrupted run would have drawn.
"""

from __future__ import annotations

import argparse

import torch

from vislearn.device import default_device, seed_everything
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


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m vislearn.train_lifting", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--model", choices=["transformer", "mlp"], default="transformer")
    parser.add_argument("--steps", type=int, default=3000)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default=None, help="default: vislearn.default_device()")
    parser.add_argument("--threads", type=int, default=1, help="CPU threads (default 1)")
    parser.add_argument("--dim", type=int, default=64, help="transformer width")
    parser.add_argument("--depth", type=int, default=4, help="transformer layers")
    parser.add_argument("--no-side", action="store_true", help="no left/right/centre tags")
    parser.add_argument("--checkpoint", default=None, help="save the training state here")
    parser.add_argument("--checkpoint-every", type=int, default=500)
    parser.add_argument("--resume", action="store_true", help="continue from --checkpoint")
    parser.add_argument("--samples", type=int, default=256, help="test samples per category")
    args = parser.parse_args(argv)
    if args.resume and args.checkpoint is None:
        parser.error("--resume needs --checkpoint, the file to continue from")
    return args


def main(argv: list[str] | None = None) -> dict[str, dict[str, dict[str, float]]]:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    device = torch.device(args.device) if args.device else default_device()
    seed_everything(args.seed)
    train = make_categories(TRAIN_CATEGORIES)
    everything = train + make_categories(HELD_OUT_CATEGORIES)
    if args.model == "transformer":
        model = LiftingTransformer(
            dim=args.dim, depth=args.depth, use_side=not args.no_side, seed=args.seed
        )
    else:
        model = MLPLifter(max(c.num_points for c in everything))
    history = train_lifter(
        model.to(device),
        train,
        args.steps,
        batch_size=args.batch_size,
        lr=args.lr,
        seed=args.seed,
        checkpoint=args.checkpoint,
        checkpoint_every=args.checkpoint_every,
        resume=args.resume,
    )
    print(f"{type(model).__name__}: {history.steps} steps ({history.seconds:.0f} s this run)")
    errors = {
        "flat": evaluate_lifter(FlatLifter(), everything, samples=args.samples, device=device),
        type(model).__name__: evaluate_lifter(model, everything, samples=args.samples),
    }
    print(f"{'category':<12}" + "".join(f"{name:>24}" for name in errors))
    for category in everything:
        cells = "".join(
            f"{e[category.name]['mpjpe']:>12.1f}{e[category.name]['pa_mpjpe']:>12.1f}"
            for e in errors.values()
        )
        held = " *" if category.name in HELD_OUT_CATEGORIES else ""
        print(f"{category.name + held:<12}{cells}")
    print("MPJPE and PA-MPJPE in % of the object's size; * held out of training")
    return errors


if __name__ == "__main__":
    main()
