"""Pre-train a masked autoencoder, on one process or many.

One process::

    python -m vislearn.train_mae --epochs 200 --batch-size 256 --checkpoint mae.pt

Several processes, one per GPU (NCCL) or per group of CPU cores (Gloo), with
DistributedDataParallel; ``--batch-size`` stays the *global* batch, split evenly::

    torchrun --nproc_per_node=2 -m vislearn.train_mae --epochs 200 --batch-size 256 \\
        --checkpoint mae.pt

Interrupted? Run the same command with ``--resume``: training continues from the last
completed epoch as if it had never stopped (any number of processes may resume it).

**The same run on any number of processes.** Two things are made independent of how the
batch is split:

- *What each step sees.* The order of the samples is a :class:`DistributedSampler`
  permutation fixed by ``(seed, epoch)``. Rank ``r`` of ``W`` takes every ``W``-th sample of
  it, so the ``s``-th local batches of all ranks together hold exactly the samples
  ``s G, ..., (s + 1) G - 1`` of the permutation, the ``s``-th global batch of a single
  process. Only full global batches are used.
- *Which patches each sample hides.* The masking noise is a table with one row per sample
  of the data set, drawn from a generator seeded with ``(seed, epoch)``; every rank draws the
  same table and looks its samples up by their index. (Noise drawn per batch from a
  per-rank generator would give different masks to a sample on 1 and on 2 processes.)

And the loss is averaged so that the gradients agree: every sample hides the same number
of patches, so the masked mean over a local batch is the mean of its samples' losses, and
the average over ranks that DistributedDataParallel applies to the gradients is then the
mean over the global batch. Results agree with a single process up to the order of
floating-point additions.
"""

from __future__ import annotations

import argparse
import os
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data.distributed import DistributedSampler
from tqdm.auto import tqdm

from vislearn.checkpoint import load_checkpoint, rng_state, save_checkpoint, set_rng_state
from vislearn.device import default_device, seed_everything
from vislearn.mae import MaskedAutoencoder
from vislearn.vit import warmup_cosine

# Defaults per data set: (patch size, encoder dim, depth, heads, decoder dim, depth, heads).
MODELS = {
    "digits": (2, 64, 2, 4, 64, 1, 4),
    "mnist": (4, 128, 6, 4, 64, 2, 4),
    "cifar10": (4, 192, 6, 3, 96, 2, 3),
}


@dataclass
class Context:
    """Where this process stands in the job: its rank, the number of processes, its device."""

    rank: int = 0
    world_size: int = 1
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def setup(device: str = "auto") -> Context:
    """Join the process group if started by ``torchrun`` (``WORLD_SIZE`` > 1), else run alone.

    GPUs: one per process (``cuda:LOCAL_RANK``) and the NCCL backend; CPUs: Gloo.
    """
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    chosen = default_device() if device == "auto" else torch.device(device)
    if world_size == 1:
        return Context(device=chosen)
    rank, local_rank = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    if chosen.type == "cuda":
        chosen = torch.device("cuda", local_rank)
        torch.cuda.set_device(chosen)
    backend = "nccl" if chosen.type == "cuda" else "gloo"
    # The patch embedding's (D, 1, P, P) kernel gets a gradient whose strides differ from
    # DDP's flat buffer only along its size-1 axis: a false alarm, once per run.
    warnings.filterwarnings("ignore", message="Grad strides do not match bucket view strides")
    dist.init_process_group(backend, device_id=chosen if chosen.type == "cuda" else None)
    return Context(rank, world_size, chosen)


def epoch_noise(seed: int, epoch: int, num_samples: int, num_patches: int) -> torch.Tensor:
    """The masking noise of every sample in ``epoch``: ``(num_samples, N)``, on the CPU.

    A function of ``(seed, epoch)`` alone, drawn whole by every process; row ``i`` belongs
    to sample ``i`` wherever it is trained.
    """
    state = np.random.SeedSequence([seed, epoch, 0x4D4145]).generate_state(1, np.uint64)[0]
    generator = torch.Generator().manual_seed(int(state))
    return torch.rand(num_samples, num_patches, generator=generator)


def pretrain(
    model: MaskedAutoencoder,
    images: torch.Tensor,
    *,
    epochs: int,
    batch_size: int,
    lr: float = 1.5e-3,
    weight_decay: float = 0.05,
    warmup_epochs: float = 5.0,
    seed: int = 0,
    checkpoint: str | os.PathLike | None = None,
    resume: bool = False,
    max_steps: int | None = None,
    context: Context | None = None,
    progress: bool = True,
) -> dict:
    """Pre-train ``model`` on ``images (num_samples, C, H, W)``; returns the history.

    AdamW with MAE's betas ``(0.9, 0.95)``, a linear warm-up and a cosine decay updated
    every step (:func:`vislearn.vit.warmup_cosine`). Weight decay applies to every
    parameter, as in :func:`vislearn.vit.train_classifier` (MAE's code exempts biases,
    norms and the two learned tokens). ``batch_size`` is the global batch; on
    ``context.world_size`` processes each computes ``batch_size / world_size`` samples and
    DistributedDataParallel averages the gradients. An epoch is ``num_samples //
    batch_size`` steps (full global batches only). ``max_steps`` stops early, as an
    interruption would: the learning-rate schedule still spans all ``epochs``.

    With ``checkpoint``, rank 0 saves the model, optimiser, scheduler, step count, history
    and random states after every epoch and when it stops; with ``resume`` and an existing
    file, training continues from that step exactly (the data order and the masks of a
    step are functions of the seed and the epoch, so they need no saved state).

    The history holds ``"loss"``, the global batch's loss at each step, and
    ``"epoch_seconds"``.
    """
    context = context or Context(device=next(model.parameters()).device)
    rank, world = context.rank, context.world_size
    if batch_size % world:
        raise ValueError(f"the global batch {batch_size} must be divisible by {world} processes")
    local_batch = batch_size // world
    num_samples = images.shape[0]
    steps_per_epoch = num_samples // batch_size
    if steps_per_epoch == 0:
        raise ValueError(f"{num_samples} samples do not fill one batch of {batch_size}")
    total_steps = epochs * steps_per_epoch  # the schedule's length
    stop = total_steps if max_steps is None else min(total_steps, max_steps)

    model.to(context.device)
    images = images.to(context.device)
    optimizer = torch.optim.AdamW(
        model.parameters(), lr=lr, weight_decay=weight_decay, betas=(0.9, 0.95)
    )
    schedule = warmup_cosine(max(1, round(warmup_epochs * steps_per_epoch)), total_steps)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, schedule)
    history: dict[str, list[float]] = {"loss": [], "epoch_seconds": []}
    step = 0  # optimiser steps taken
    path = Path(checkpoint) if checkpoint is not None else None
    if resume and path is not None and path.exists():
        state = load_checkpoint(path)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        step, history = state["step"], state["history"]
        set_rng_state(state["rng"])

    ddp_model = model
    if context.distributed:
        device_ids = [context.device] if context.device.type == "cuda" else None
        ddp_model = DistributedDataParallel(model, device_ids=device_ids)
    sampler = DistributedSampler(
        range(num_samples), num_replicas=world, rank=rank, shuffle=True, seed=seed, drop_last=True
    )
    bar = tqdm(
        total=stop,
        initial=min(step, stop),
        desc="MAE pre-training",
        disable=not progress or rank != 0,
    )
    model.train()
    for epoch in range(step // steps_per_epoch, epochs):
        if step >= stop:
            break
        start = time.perf_counter()
        sampler.set_epoch(epoch)
        order = torch.tensor(list(sampler))  # this rank's samples: every world-th of the epoch's
        noise = epoch_noise(seed, epoch, num_samples, model.num_patches)  # (num_samples, N)
        losses = []
        for s in range(step - epoch * steps_per_epoch, steps_per_epoch):
            if step >= stop:
                break
            index = order[s * local_batch : (s + 1) * local_batch]  # (B_local,)
            batch = images[index.to(context.device)]
            loss, _, _ = ddp_model(batch, noise=noise[index].to(context.device))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()  # under DDP the gradients are averaged over the processes here
            optimizer.step()
            scheduler.step()
            step += 1
            logged = loss.detach()
            if context.distributed:
                dist.all_reduce(logged)  # the global batch's loss, for the log only
                logged /= world
            losses.append(logged)
        epoch_losses = torch.stack(losses).tolist()  # one synchronisation per epoch
        history["loss"] += epoch_losses
        history["epoch_seconds"].append(time.perf_counter() - start)
        bar.update(len(epoch_losses))
        bar.set_postfix(epoch=epoch + 1, loss=f"{epoch_losses[-1]:.4f}")
        if path is not None and rank == 0:
            save_checkpoint(
                path,
                {
                    "model": model.state_dict(),
                    "optimizer": optimizer.state_dict(),
                    "scheduler": scheduler.state_dict(),
                    "step": step,
                    "history": history,
                    "rng": rng_state(),
                    "world_size": world,
                },
            )
        if context.distributed:
            dist.barrier()  # no rank runs ahead of the checkpoint
    bar.close()
    return history


def build_model(args: argparse.Namespace, image_shape: tuple[int, int, int]) -> MaskedAutoencoder:
    """The masked autoencoder that ``args`` describe, for images of shape ``(C, H, W)``."""
    patch, dim, depth, heads, ddim, ddepth, dheads = MODELS[args.data]
    return MaskedAutoencoder(
        image_shape[1:],
        args.patch_size or patch,
        image_shape[0],
        args.dim or dim,
        args.depth or depth,
        args.heads or heads,
        args.decoder_dim or ddim,
        args.decoder_depth or ddepth,
        args.decoder_heads or dheads,
        mask_ratio=args.mask_ratio,
        norm_pix_loss=args.norm_pix_loss,
    )


def load_images(name: str, root: str | None) -> torch.Tensor:
    """The training images of a data set (labels are not used)."""
    from vislearn import images

    if name == "digits":
        return images.load_digits().x_train
    loader = {"mnist": images.load_mnist, "cifar10": images.load_cifar10}[name]
    return loader(root).x_train


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m vislearn.train_mae", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--epochs", type=int, default=200)
    parser.add_argument("--batch-size", type=int, default=256, help="global, over all processes")
    parser.add_argument("--mask-ratio", type=float, default=0.75)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--checkpoint", help="file to save after every epoch (and resume from)")
    parser.add_argument("--resume", action="store_true", help="continue from --checkpoint")
    parser.add_argument("--device", default="auto", help="auto (CUDA, MPS, CPU), cpu, cuda, ...")
    parser.add_argument("--data", default="digits", choices=sorted(MODELS))
    parser.add_argument("--root", help="data folder for mnist and cifar10 (see vislearn.data)")
    parser.add_argument("--lr", type=float, default=1.5e-3)
    parser.add_argument("--weight-decay", type=float, default=0.05)
    parser.add_argument("--warmup-epochs", type=float, default=5.0)
    parser.add_argument("--norm-pix-loss", action="store_true")
    parser.add_argument("--max-steps", type=int, help="stop after this many steps (tests)")
    for name in (
        "patch-size",
        "dim",
        "depth",
        "heads",
        "decoder-dim",
        "decoder-depth",
        "decoder-heads",
    ):
        parser.add_argument(f"--{name}", type=int, help="default: set by --data")
    parser.add_argument("--no-progress", dest="progress", action="store_false")
    args = parser.parse_args(argv)
    if args.resume and not args.checkpoint:
        parser.error("--resume needs --checkpoint")
    return args


def main(argv: list[str] | None = None) -> dict:
    """The command line; returns the history (on every rank)."""
    args = parse_args(argv)
    context = setup(args.device)
    try:
        seed_everything(args.seed)  # the same initial weights on every rank
        images = load_images(args.data, args.root)
        model = build_model(args, tuple(images.shape[1:]))
        if context.rank == 0:
            print(
                f"MAE on {args.data}: {images.shape[0]} images {tuple(images.shape[1:])}, "
                f"{model.num_patches} patches, mask ratio {args.mask_ratio};\n"
                f"{context.world_size} process(es) on {context.device}, global batch "
                f"{args.batch_size}",
                flush=True,
            )
        start = time.perf_counter()
        history = pretrain(
            model,
            images,
            epochs=args.epochs,
            batch_size=args.batch_size,
            lr=args.lr,
            weight_decay=args.weight_decay,
            warmup_epochs=args.warmup_epochs,
            seed=args.seed,
            checkpoint=args.checkpoint,
            resume=args.resume,
            max_steps=args.max_steps,
            context=context,
            progress=args.progress,
        )
        if context.rank == 0 and history["loss"]:
            steps = len(history["loss"])
            print(
                f"{steps} steps, final loss {history['loss'][-1]:.4f}, "
                f"{time.perf_counter() - start:.1f} s"
                + (f"; checkpoint {args.checkpoint}" if args.checkpoint else ""),
                flush=True,
            )
        return history
    finally:
        if context.distributed:
            dist.destroy_process_group()


if __name__ == "__main__":
    main()
