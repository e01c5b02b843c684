r"""Masked autoencoders (He et al., 2022): pre-train a Vision Transformer without labels by
reconstructing the patches it was not shown.

An image is cut into :math:`N` patches (:func:`vislearn.vit.patchify`). For each image
separately, a random :math:`75\%` of them are hidden; the **encoder**, a
:class:`~vislearn.vit.VisionTransformer`, sees only the :math:`K = N - 0.75N` visible
ones. A light **decoder** receives the encoded visible tokens, inserts a shared, learned
*mask token* at every hidden position, restores the original order, and predicts every
patch's pixels. The loss is the mean squared error on the **hidden patches only**:

.. math::  \mathcal{L} = \frac{\sum_{b,n} m_{bn}\, \lVert \hat{\mathbf{x}}_{bn}
           - \mathbf{x}_{bn} \rVert^2 / (P^2 C)}{\sum_{b,n} m_{bn}},

with :math:`m_{bn} = 1` if patch :math:`n` of image :math:`b` was hidden. After
pre-training the decoder is thrown away and the encoder is probed or fine-tuned on labels.

The per-sample masking is a sort (:func:`random_masking`). Draw a uniform noise value per
patch; ``ids_shuffle = argsort(noise)`` lists the patches from smallest noise to largest,
and the first :math:`K` are kept. ``ids_restore``, the inverse permutation
(``ids_restore[ids_shuffle[k]] = k``), says where each original patch went; after the
encoder, the decoder appends :math:`N - K` mask tokens to the :math:`K` visible tokens
(shuffled order) and gathers with ``ids_restore`` to put every token back in place
(:func:`unshuffle`). A patch is hidden exactly when ``ids_restore[n] >= K``.

Tokens are batch-first, ``(B, N, D)``, patches in row-major order, as in :mod:`vislearn.vit`.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
from torch import nn

from vislearn.attention import sinusoidal_position_encoding_2d
from vislearn.transformer import TransformerEncoder
from vislearn.vit import (
    VisionTransformer,
    evaluate_classifier,
    patchify,
    train_classifier,
    unpatchify,
)

# =============================================================================================
# Masking
# =============================================================================================


def keep_count(num_patches: int, mask_ratio: float) -> int:
    """How many of ``num_patches`` patches stay visible: ``round(N * (1 - mask_ratio))``.

    Python's :func:`round` (halves go to the even neighbour). Truncating with ``int()``, as
    the original MAE code does, is a trap in floating point: ``10 * (1 - 0.9)`` is
    ``0.9999999999999998``, which ``int`` turns into 0 visible patches instead of 1.
    """
    if not 0.0 <= mask_ratio < 1.0:
        raise ValueError(f"mask_ratio must be in [0, 1), got {mask_ratio}")
    keep = round(num_patches * (1.0 - mask_ratio))
    if keep == 0:
        raise ValueError(
            f"mask_ratio {mask_ratio} leaves no visible patch of {num_patches}: use a lower ratio"
        )
    return keep


def masking_noise(
    batch_size: int,
    num_patches: int,
    device: torch.device | str | None = None,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Uniform noise ``(B, N)`` on ``device``, one value per patch of each sample.

    Without a generator the noise is drawn directly on ``device`` from its global random
    state. With one, it is drawn on the generator's own device and then moved: a CPU
    generator therefore gives the same masks on every device.
    """
    if generator is None:
        return torch.rand(batch_size, num_patches, device=device)
    noise = torch.rand(batch_size, num_patches, generator=generator, device=generator.device)
    return noise.to(device)


def gather_tokens(x: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
    """Pick tokens per sample: ``x (B, N, D)``, ``ids (B, K)`` -> ``(B, K, D)`` with
    ``out[b, k] = x[b, ids[b, k]]``."""
    return torch.gather(x, 1, ids[..., None].expand(-1, -1, x.shape[-1]))


def random_masking(
    x: torch.Tensor,
    mask_ratio: float,
    generator: torch.Generator | None = None,
    *,
    noise: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Hide a random ``mask_ratio`` of each sample's tokens, independently per sample.

    Args:
        x: tokens ``(B, N, D)``.
        mask_ratio: fraction to hide, in ``[0, 1)``; :func:`keep_count` tokens stay.
        generator: draws the noise (see :func:`masking_noise`); None: the global state of
            ``x``'s device.
        noise: ``(B, N)``, use this noise instead of drawing it (the tokens with the smallest
            noise are kept). Distributed training passes noise that depends only on the
            sample, so that every run shows a sample the same mask.

    Returns:
        ``x_kept (B, K, D)``, the visible tokens in shuffled order; ``mask (B, N)`` in the
        original order, 1 where a token is hidden and 0 where it is visible (``x``'s
        dtype); ``ids_restore (B, N)``, the inverse of the shuffle, for :func:`unshuffle`.
        All on ``x``'s device.
    """
    batch_size, num_tokens, _ = x.shape
    keep = keep_count(num_tokens, mask_ratio)
    if noise is None:
        noise = masking_noise(batch_size, num_tokens, x.device, generator)
    elif noise.shape != (batch_size, num_tokens):
        raise ValueError(f"noise must have shape {(batch_size, num_tokens)}, got {noise.shape}")
    # stable: ties (rare in float32 noise) are broken by position, the same on every device
    ids_shuffle = torch.argsort(noise.to(x.device), dim=1, stable=True)  # (B, N)
    # The inverse permutation: ids_restore[b, ids_shuffle[b, k]] = k.
    positions = torch.arange(num_tokens, device=x.device).expand(batch_size, num_tokens)
    ids_restore = torch.empty_like(ids_shuffle).scatter_(1, ids_shuffle, positions)  # (B, N)
    x_kept = gather_tokens(x, ids_shuffle[:, :keep])  # (B, K, D)
    mask = (ids_restore >= keep).to(x.dtype)  # (B, N): a token is hidden iff its rank >= K
    return x_kept, mask, ids_restore


def unshuffle(
    x_kept: torch.Tensor, mask_token: torch.Tensor, ids_restore: torch.Tensor
) -> torch.Tensor:
    """Insert mask tokens and restore the original order: ``(B, K, D) -> (B, N, D)``.

    In shuffled order the sequence is the ``K`` visible tokens followed by ``N - K`` copies
    of ``mask_token`` (``(D,)`` or ``(1, 1, D)``); token ``n`` of the original order is at
    shuffled position ``ids_restore[b, n]``.
    """
    batch_size, keep, dim = x_kept.shape
    num_tokens = ids_restore.shape[1]
    fill = mask_token.reshape(1, 1, dim).to(x_kept.dtype).expand(batch_size, num_tokens - keep, dim)
    return gather_tokens(torch.cat([x_kept, fill], dim=1), ids_restore)  # (B, N, D)


# =============================================================================================
# The loss
# =============================================================================================


def patch_targets(
    images: torch.Tensor, patch_size: int, norm_pix: bool = False, eps: float = 1e-6
) -> torch.Tensor:
    """The regression targets ``(B, N, P*P*C)``: each patch's pixels, or with ``norm_pix``
    each patch standardised by its own mean and (unbiased) variance,
    ``(x - mean) / sqrt(var + eps)``, as in MAE's ``norm_pix_loss``."""
    target = patchify(images, patch_size)  # (B, N, P*P*C)
    if norm_pix:
        mean = target.mean(dim=-1, keepdim=True)
        var = target.var(dim=-1, keepdim=True)
        target = (target - mean) / (var + eps).sqrt()
    return target


def masked_patch_loss(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean squared error over the hidden patches only.

    ``pred``, ``target``: ``(B, N, F)``; ``mask``: ``(B, N)``, 1 = hidden. The squared error
    is averaged over each patch's ``F`` values, then over the hidden patches of the whole
    batch, so a visible patch's prediction has no influence at all. When every sample hides
    the same number of patches, as after :func:`random_masking`, this is also the mean over
    the samples of each sample's loss. A mask that hides nothing gives 0/0 = NaN; the model
    refuses such a ratio before it gets here (checking the tensor would stall a GPU every
    step).
    """
    per_patch = (pred - target).pow(2).mean(dim=-1)  # (B, N)
    return (per_patch * mask).sum() / mask.sum()


# =============================================================================================
# The model
# =============================================================================================


def _init_linear(module: nn.Module) -> None:
    """Truncated normal weights (std 0.02, as BERT and timm's ViT) and zero biases for every
    Linear in ``module``."""
    for layer in module.modules():
        if isinstance(layer, nn.Linear):
            nn.init.trunc_normal_(layer.weight, std=0.02, a=-0.04, b=0.04)
            nn.init.zeros_(layer.bias)


class Reconstruction(NamedTuple):
    """Images ``(B, C, H, W)`` for display, and the mask as an image ``(B, 1, H, W)``."""

    masked: torch.Tensor  # the input with hidden patches set to zero
    prediction: torch.Tensor  # the decoder's output for every patch
    pasted: torch.Tensor  # the prediction with the visible patches pasted back in
    mask: torch.Tensor  # 1 on hidden pixels, 0 on visible ones


class MaskedAutoencoder(nn.Module):
    """A masked autoencoder: a ViT encoder on the visible patches, a light transformer
    decoder on all of them.

    The encoder is ``self.vit``, a :class:`~vislearn.vit.VisionTransformer` with fixed 2-D
    sine-cosine positions and no classification head (``vit.head`` is the identity);
    :meth:`classifier` turns a copy of it into a classifier for fine-tuning.

    Args:
        image_size, patch_size, in_channels: the images, as for the ViT; ``N`` patches.
        dim, depth, num_heads, mlp_ratio: the encoder (``dim`` divisible by 4).
        decoder_dim, decoder_depth, decoder_num_heads: the decoder, usually much narrower
            and shallower than the encoder (``decoder_dim`` divisible by 4).
        mask_ratio: the fraction of patches hidden by :meth:`forward` (default 0.75).
        norm_pix_loss: regress per-patch standardised pixels (:func:`patch_targets`).
    """

    def __init__(
        self,
        image_size: int | tuple[int, int],
        patch_size: int,
        in_channels: int,
        dim: int,
        depth: int,
        num_heads: int,
        decoder_dim: int,
        decoder_depth: int,
        decoder_num_heads: int,
        mlp_ratio: float = 4.0,
        *,
        mask_ratio: float = 0.75,
        norm_pix_loss: bool = False,
    ) -> None:
        super().__init__()
        self.encoder_config = {
            "image_size": image_size,
            "patch_size": patch_size,
            "in_channels": in_channels,
            "dim": dim,
            "depth": depth,
            "num_heads": num_heads,
            "mlp_ratio": mlp_ratio,
            "pos_embed": "sincos",
        }
        self.mask_ratio = mask_ratio
        self.norm_pix_loss = norm_pix_loss
        self.patch_size = patch_size
        self.in_channels = in_channels
        self.vit = VisionTransformer(num_classes=1, **self.encoder_config)
        self.vit.head = nn.Identity()  # pre-training needs no classifier
        keep_count(self.vit.patch_embed.num_patches, mask_ratio)  # validates the ratio
        self.image_size = self.vit.patch_embed.image_size  # (H, W)
        grid = self.vit.grid_size  # (H/P, W/P)

        self.decoder_embed = nn.Linear(dim, decoder_dim)
        self.mask_token = nn.Parameter(torch.zeros(1, 1, decoder_dim))
        decoder_pos = sinusoidal_position_encoding_2d(*grid, decoder_dim)  # (N, D_dec)
        self.register_buffer("decoder_pos", decoder_pos, persistent=False)
        self.decoder = TransformerEncoder(decoder_dim, decoder_depth, decoder_num_heads, mlp_ratio)
        self.decoder_pred = nn.Linear(decoder_dim, patch_size * patch_size * in_channels)
        _init_linear(self.decoder)
        _init_linear(self.decoder_embed)
        _init_linear(self.decoder_pred)
        nn.init.normal_(self.mask_token, std=0.02)

    @property
    def num_patches(self) -> int:
        return self.vit.patch_embed.num_patches

    def forward_encoder(
        self,
        images: torch.Tensor,
        mask_ratio: float,
        generator: torch.Generator | None = None,
        *,
        noise: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Encode the visible patches: ``(B, C, H, W)`` -> ``latent (B, 1 + K, D)`` (class
        token first), ``mask (B, N)`` (1 = hidden) and ``ids_restore (B, N)``.

        Positions are added to every patch *before* masking, so each visible token keeps
        the position it came from; the hidden ones never enter the encoder.
        """
        vit = self.vit
        pos = vit.pos_embed.weight  # (N + 1, D), the class token's first
        x = vit.patch_embed(images) + pos[1:]  # (B, N, D)
        x, mask, ids_restore = random_masking(x, mask_ratio, generator, noise=noise)  # (B, K, D)
        cls = (vit.cls_token + pos[:1]).expand(x.shape[0], -1, -1)  # (B, 1, D)
        x = vit.pos_drop(torch.cat([cls, x], dim=1))  # (B, 1 + K, D)
        return vit.encoder(x), mask, ids_restore

    def forward_decoder(self, latent: torch.Tensor, ids_restore: torch.Tensor) -> torch.Tensor:
        """Predict every patch: ``latent (B, 1 + K, D)`` -> ``(B, N, P*P*C)``."""
        x = self.decoder_embed(latent)  # (B, 1 + K, D_dec)
        patches = unshuffle(x[:, 1:], self.mask_token, ids_restore)  # (B, N, D_dec)
        x = torch.cat([x[:, :1], patches + self.decoder_pos], dim=1)  # (B, 1 + N, D_dec)
        return self.decoder_pred(self.decoder(x)[:, 1:])  # (B, N, P*P*C), class token dropped

    def forward_loss(
        self, images: torch.Tensor, pred: torch.Tensor, mask: torch.Tensor
    ) -> torch.Tensor:
        """:func:`masked_patch_loss` against :func:`patch_targets` of ``images``."""
        target = patch_targets(images, self.patch_size, self.norm_pix_loss)
        return masked_patch_loss(pred, target, mask)

    def forward(
        self,
        images: torch.Tensor,
        mask_ratio: float | None = None,
        generator: torch.Generator | None = None,
        *,
        noise: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``images (B, C, H, W)`` -> ``loss`` (scalar), ``pred (B, N, P*P*C)`` and
        ``mask (B, N)``; ``mask_ratio`` defaults to the model's."""
        ratio = self.mask_ratio if mask_ratio is None else mask_ratio
        num_patches = self.vit.patch_embed.num_patches
        if keep_count(num_patches, ratio) == num_patches:
            raise ValueError(
                f"mask_ratio {ratio} hides no patch of {num_patches}: the masked loss is undefined"
            )
        latent, mask, ids_restore = self.forward_encoder(images, ratio, generator, noise=noise)
        pred = self.forward_decoder(latent, ids_restore)
        return self.forward_loss(images, pred, mask), pred, mask

    @torch.no_grad()
    def reconstruct(
        self,
        images: torch.Tensor,
        mask_ratio: float | None = None,
        generator: torch.Generator | None = None,
    ) -> Reconstruction:
        """Mask, encode, decode, and return images for display (eval mode, no gradients).

        With ``norm_pix_loss`` the prediction is in standardised units; it is mapped back
        with each true patch's mean and standard deviation, as MAE's figures do (which
        uses the hidden patches' statistics: fine for a picture, not for a measurement).
        """
        was_training = self.training
        self.eval()
        _, pred, mask = self(images, mask_ratio, generator)
        self.train(was_training)
        if self.norm_pix_loss:
            target = patchify(images, self.patch_size)
            mean = target.mean(dim=-1, keepdim=True)
            std = (target.var(dim=-1, keepdim=True) + 1e-6).sqrt()
            pred = pred * std + mean
        size = (*self.image_size, self.in_channels)

        def image(patches: torch.Tensor) -> torch.Tensor:
            return unpatchify(patches, self.patch_size, *size)

        hidden = mask[..., None]  # (B, N, 1)
        patches = patchify(images, self.patch_size)
        return Reconstruction(
            masked=image(patches * (1 - hidden)),
            prediction=image(pred),
            pasted=image(torch.where(hidden.bool(), pred, patches)),
            mask=unpatchify(
                hidden.expand(-1, -1, self.patch_size**2), self.patch_size, *self.image_size, 1
            ),
        )

    def classifier(self, num_classes: int) -> VisionTransformer:
        """A copy of the encoder as a :class:`~vislearn.vit.VisionTransformer` with a fresh
        linear head of ``num_classes`` outputs, on the encoder's device, for fine-tuning."""
        vit = VisionTransformer(num_classes=num_classes, **self.encoder_config)
        missing, unexpected = vit.load_state_dict(self.vit.state_dict(), strict=False)
        if unexpected or any(not key.startswith("head.") for key in missing):
            raise RuntimeError(f"encoder and ViT differ: {missing=}, {unexpected=}")
        return vit.to(self.vit.cls_token.device)


# =============================================================================================
# Using the encoder: linear probe and fine-tuning
# =============================================================================================


def stratified_subset(
    labels: torch.Tensor, fraction: float, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Indices of a random ``fraction`` of the examples, ``max(1, round(fraction * n_c))``
    from each class ``c`` (so every class appears), sorted; drawn on the CPU."""
    cpu_labels = labels.to("cpu")
    chosen = []
    for c in cpu_labels.unique().tolist():
        members = (cpu_labels == c).nonzero().flatten()
        count = max(1, round(fraction * len(members)))
        chosen.append(members[torch.randperm(len(members), generator=generator)[:count]])
    return torch.cat(chosen).sort().values


@torch.no_grad()
def extract_features(
    vit: VisionTransformer, images: torch.Tensor, pool: str = "mean", batch_size: int = 512
) -> torch.Tensor:
    """Frozen encoder features ``(B, D)`` of ``images (B, C, H, W)``, in eval mode.

    ``pool="mean"`` averages the patch tokens (the class token receives no training signal
    of its own during MAE pre-training); ``"cls"`` takes the class token. Computed on the
    encoder's device, returned on ``images``' device.
    """
    if pool not in ("mean", "cls"):
        raise ValueError(f"pool must be 'mean' or 'cls', got {pool!r}")
    device = vit.cls_token.device
    was_training = vit.training
    vit.eval()
    features = []
    for start in range(0, images.shape[0], batch_size):
        tokens = vit.forward_features(images[start : start + batch_size].to(device))
        features.append(tokens[:, 1:].mean(dim=1) if pool == "mean" else tokens[:, 0])
    vit.train(was_training)
    return torch.cat(features).to(images.device)


class ProbeResult(NamedTuple):
    test_acc: float
    train_acc: float
    head: nn.Module  # standardisation then the linear classifier, on features


def linear_probe(
    vit: VisionTransformer,
    train: tuple[torch.Tensor, torch.Tensor],
    test: tuple[torch.Tensor, torch.Tensor],
    num_classes: int,
    *,
    pool: str = "mean",
    epochs: int = 100,
    lr: float = 1e-2,
    weight_decay: float = 1e-4,
    batch_size: int = 256,
    generator: torch.Generator | None = None,
) -> ProbeResult:
    """Train a linear classifier on frozen encoder features; report its accuracy.

    The features (:func:`extract_features`) are standardised with the training set's mean
    and standard deviation, as MAE's probe does with a BatchNorm without affine parameters,
    then a :class:`~torch.nn.Linear` is trained with :func:`vislearn.vit.train_classifier`
    (AdamW, warm-up and cosine). The encoder itself never changes.
    """
    train_x, train_y = train
    test_x, test_y = test
    train_f = extract_features(vit, train_x, pool)
    test_f = extract_features(vit, test_x, pool)
    mean, std = train_f.mean(dim=0), train_f.std(dim=0, correction=0) + 1e-6
    linear = nn.Linear(train_f.shape[1], num_classes).to(train_f.device)
    history = train_classifier(
        linear,
        ((train_f - mean) / std, train_y),
        epochs=epochs,
        lr=lr,
        weight_decay=weight_decay,
        batch_size=batch_size,
        warmup_epochs=min(1.0, epochs / 10),
        generator=generator,
        progress=False,
    )
    head = nn.Sequential(_Standardise(mean, std), linear)
    _, test_acc = evaluate_classifier(head, (test_f, test_y))
    return ProbeResult(test_acc, history["train_acc"][-1], head)


class _Standardise(nn.Module):
    def __init__(self, mean: torch.Tensor, std: torch.Tensor) -> None:
        super().__init__()
        self.register_buffer("mean", mean)
        self.register_buffer("std", std)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std


def fine_tune(
    model: nn.Module,
    train: tuple[torch.Tensor, torch.Tensor],
    test: tuple[torch.Tensor, torch.Tensor],
    *,
    steps: int,
    batch_size: int = 64,
    lr: float = 1e-3,
    weight_decay: float = 0.05,
    warmup_fraction: float = 0.1,
    augment=None,
    generator: torch.Generator | None = None,
    progress: bool = False,
    desc: str | None = None,
) -> float:
    """Train every weight of ``model`` for about ``steps`` optimiser steps; test accuracy.

    A budget in steps rather than epochs gives 1% and 100% of the labels the same amount
    of optimisation. The number of epochs is ``ceil(steps / batches per epoch)``, and the
    batch size is capped at the number of training examples. Training is
    :func:`vislearn.vit.train_classifier` (AdamW, warm-up and cosine); the test set is
    scored once, at the end. Used alike for a pre-trained encoder and one trained from
    scratch, so that the two differ only in their starting weights.
    """
    num_train = train[0].shape[0]
    batch_size = min(batch_size, num_train)
    per_epoch = math.ceil(num_train / batch_size)
    epochs = max(1, math.ceil(steps / per_epoch))
    train_classifier(
        model,
        train,
        epochs=epochs,
        lr=lr,
        weight_decay=weight_decay,
        batch_size=batch_size,
        warmup_epochs=warmup_fraction * epochs,
        augment=augment,
        generator=generator,
        progress=progress,
        desc=desc,
    )
    return evaluate_classifier(model, test)[1]
