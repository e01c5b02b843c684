r"""The Vision Transformer (Dosovitskiy et al., 2021), its attention maps, and a training loop.

"An image is worth 16x16 words": cut a ``C x H x W`` image into a grid of ``P x P``
patches, flatten each patch into a vector of :math:`P^2 C` numbers, map it linearly to
:math:`D` dimensions, and hand the resulting :math:`N = HW/P^2` tokens to a transformer
encoder, exactly as words are handed to a language model. A learned *class token* is
prepended and the encoder's output at that position is classified:

.. math::  \mathbf{z}_0 = [\mathbf{x}_\text{class};\, \mathbf{x}_p^1\mathbf{E};\, \dots;\,
           \mathbf{x}_p^N\mathbf{E}] + \mathbf{E}_\text{pos}, \qquad
           \mathbf{z}_L = \mathrm{Encoder}(\mathbf{z}_0), \qquad
           \mathbf{y} = \mathrm{Linear}(\mathrm{LN}(\mathbf{z}_L^0)),

with :math:`\mathbf{E} \in \mathbb{R}^{P^2 C \times D}` and position embeddings
:math:`\mathbf{E}_\text{pos} \in \mathbb{R}^{(N+1) \times D}`, learned or fixed 2-D
sine-cosine. The layout follows timm's ``vision_transformer.py``: ``forward_features``
returns every token after the final LayerNorm, ``forward_head`` classifies the class token.
The encoder is :class:`vislearn.transformer.TransformerEncoder` (pre-norm).

Patches are numbered row by row and each is flattened in ``(P, P, C)`` order, as masked
autoencoders do (He et al., 2022), so :func:`patchify` of an RGB image keeps each pixel's
three colours together.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from vislearn.attention import LearnedPositionEncoding, sinusoidal_position_encoding_2d
from vislearn.transformer import TransformerEncoder

# =============================================================================================
# Patches
# =============================================================================================


def _pair(size: int | Sequence[int]) -> tuple[int, int]:
    if isinstance(size, int):
        return size, size
    height, width = size
    return int(height), int(width)


def _grid(height: int, width: int, patch_size: int) -> tuple[int, int]:
    """``(H / P, W / P)``, or a ValueError that says which side does not divide."""
    if height % patch_size or width % patch_size:
        raise ValueError(
            f"an image of {height} x {width} pixels cannot be cut into {patch_size} x "
            f"{patch_size} patches: both sides must be multiples of {patch_size}"
        )
    return height // patch_size, width // patch_size


def patchify(images: torch.Tensor, patch_size: int) -> torch.Tensor:
    """Cut images into flattened patches: ``(..., C, H, W) -> (..., N, P*P*C)``.

    ``N = (H/P) * (W/P)``; patch ``n`` is the one in grid row ``n // (W/P)`` and column
    ``n % (W/P)`` (row-major), and its pixels are flattened in ``(P, P, C)`` order: entry
    ``(i * P + j) * C + c`` is channel ``c`` of the patch's pixel ``(i, j)``. Non-square
    images are fine; both sides must be multiples of ``P``.
    """
    *lead, channels, height, width = images.shape
    h, w = _grid(height, width, patch_size)
    p, n = patch_size, len(lead)
    x = images.reshape(*lead, channels, h, p, w, p)  # (..., C, h, P, w, P)
    x = x.permute(*range(n), n + 1, n + 3, n + 2, n + 4, n)  # (..., h, w, P, P, C)
    return x.reshape(*lead, h * w, p * p * channels)  # (..., N, P*P*C)


def unpatchify(
    patches: torch.Tensor, patch_size: int, height: int, width: int, channels: int
) -> torch.Tensor:
    """The inverse of :func:`patchify`: ``(..., N, P*P*C) -> (..., C, H, W)``."""
    h, w = _grid(height, width, patch_size)
    p = patch_size
    *lead, num_patches, features = patches.shape
    if (num_patches, features) != (h * w, p * p * channels):
        raise ValueError(
            f"{height} x {width} images with {channels} channels have {h * w} patches of "
            f"{p * p * channels} values, got {num_patches} of {features}"
        )
    n = len(lead)
    x = patches.reshape(*lead, h, w, p, p, channels)  # (..., h, w, P, P, C)
    x = x.permute(*range(n), n + 4, n, n + 2, n + 1, n + 3)  # (..., C, h, P, w, P)
    return x.reshape(*lead, channels, height, width)


def conv_to_linear_weight(weight: torch.Tensor) -> torch.Tensor:
    """A patch-embedding convolution's kernel ``(D, C, P, P)`` as the weight ``(D, P*P*C)`` of
    the equal :class:`~torch.nn.Linear` on :func:`patchify`'s ``(P, P, C)``-ordered patches."""
    return weight.permute(0, 2, 3, 1).flatten(1)  # (D, P, P, C) -> (D, P*P*C)


def linear_to_conv_weight(weight: torch.Tensor, patch_size: int, channels: int) -> torch.Tensor:
    """The inverse of :func:`conv_to_linear_weight`: ``(D, P*P*C) -> (D, C, P, P)``."""
    return weight.reshape(-1, patch_size, patch_size, channels).permute(0, 3, 1, 2)


class PatchEmbedding(nn.Module):
    r"""Images ``(B, C, H, W)`` to patch tokens ``(B, N, D)``: one linear map per patch.

    The same map has two implementations. ``conv=True`` (the usual one) is a
    :class:`~torch.nn.Conv2d` with a ``P x P`` kernel and stride ``P``: the kernel visits
    each patch once, without overlap, and its ``D`` output channels at grid position
    ``(r, c)`` are the token of that patch. ``conv=False`` is a :class:`~torch.nn.Linear` on
    :func:`patchify`'s flattened patches, the paper's :math:`\mathbf{x}_p\mathbf{E}`.
    :meth:`as_linear` and :meth:`as_conv` convert one into the other with equal outputs
    (the kernel is ``(D, C, P, P)``, a flattened patch is ``(P, P, C)``-ordered).
    """

    def __init__(
        self,
        image_size: int | tuple[int, int],
        patch_size: int,
        in_channels: int,
        dim: int,
        *,
        conv: bool = True,
    ) -> None:
        super().__init__()
        self.image_size = _pair(image_size)
        self.patch_size = patch_size
        self.in_channels = in_channels
        self.dim = dim
        self.grid_size = _grid(*self.image_size, patch_size)  # (H/P, W/P)
        self.num_patches = self.grid_size[0] * self.grid_size[1]
        self.conv = conv
        if conv:
            self.proj = nn.Conv2d(in_channels, dim, kernel_size=patch_size, stride=patch_size)
        else:
            self.proj = nn.Linear(patch_size * patch_size * in_channels, dim)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """``(B, C, H, W) -> (B, N, D)``, tokens in row-major patch order."""
        if tuple(images.shape[-3:]) != (self.in_channels, *self.image_size):
            raise ValueError(
                f"expected images of shape (B, {self.in_channels}, {self.image_size[0]}, "
                f"{self.image_size[1]}), got {tuple(images.shape)}"
            )
        if self.conv:
            x = self.proj(images)  # (B, D, H/P, W/P)
            return x.flatten(2).transpose(1, 2)  # (B, N, D)
        return self.proj(patchify(images, self.patch_size))  # (B, N, P*P*C) -> (B, N, D)

    def _converted(self, conv: bool) -> PatchEmbedding:
        weight = self.proj.weight.detach()
        other = PatchEmbedding(
            self.image_size, self.patch_size, self.in_channels, self.dim, conv=conv
        ).to(weight.device, weight.dtype)
        if conv and not self.conv:
            weight = linear_to_conv_weight(weight, self.patch_size, self.in_channels)
        elif self.conv and not conv:
            weight = conv_to_linear_weight(weight)
        with torch.no_grad():
            other.proj.weight.copy_(weight)
            other.proj.bias.copy_(self.proj.bias)
        return other

    def as_linear(self) -> PatchEmbedding:
        """An equal :class:`PatchEmbedding` that uses a Linear on flattened patches (a copy)."""
        return self._converted(conv=False)

    def as_conv(self) -> PatchEmbedding:
        """An equal :class:`PatchEmbedding` that uses a strided Conv2d (a copy)."""
        return self._converted(conv=True)


# =============================================================================================
# The model
# =============================================================================================


class FixedPositionEncoding(nn.Module):
    """Adds a fixed table ``weight`` ``(T, D)`` to the tokens: ``x + weight[:N]``.

    The table is a non-persistent buffer: it moves with ``.to(device)`` but is not saved in
    the ``state_dict``, since it is recomputed from the model's shape.
    """

    def __init__(self, weight: torch.Tensor) -> None:
        super().__init__()
        self.register_buffer("weight", weight, persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x (B, N, D) -> (B, N, D)``."""
        return x + self.weight[: x.shape[-2]]


class VisionTransformer(nn.Module):
    """ViT: patch embedding, class token, position embeddings, pre-norm encoder, linear head.

    Args:
        image_size: ``H`` (square) or ``(H, W)``; both multiples of ``patch_size``.
        patch_size: ``P``; the model sees ``N = HW / P^2`` patch tokens and a class token.
        in_channels, num_classes: ``C`` and the number of classes.
        dim, depth, num_heads, mlp_ratio: width ``D``, layers, heads (dividing ``D``), and
            the MLP's hidden width as a multiple of ``D``.
        pos_embed: ``"learned"`` (:class:`vislearn.attention.LearnedPositionEncoding`, as in
            the paper) or ``"sincos"``, the fixed 2-D encoding
            :func:`vislearn.attention.sinusoidal_position_encoding_2d` of the patch grid with
            a zero vector for the class token (as in MAE); ``D`` divisible by 4 then.
        dropout: after the position embeddings, in the MLPs and on each residual branch.

    Either way ``self.pos_embed.weight`` is the ``(N + 1, D)`` table, class token first.
    The linear layers of the encoder and the head are initialised as in the original JAX
    code: Xavier-uniform weights, zero biases. (timm's default, a normal with standard
    deviation 0.02, leaves a small model on a plateau at chance level for hundreds of steps:
    the image barely reaches the class token.)
    """

    def __init__(
        self,
        image_size: int | tuple[int, int],
        patch_size: int,
        in_channels: int,
        num_classes: int,
        dim: int,
        depth: int,
        num_heads: int,
        mlp_ratio: float = 4.0,
        *,
        pos_embed: str = "learned",
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        self.patch_embed = PatchEmbedding(image_size, patch_size, in_channels, dim)
        self.grid_size = self.patch_embed.grid_size
        num_tokens = self.patch_embed.num_patches + 1  # T = N + 1
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))  # (1, 1, D)
        if pos_embed == "learned":
            self.pos_embed: nn.Module = LearnedPositionEncoding(num_tokens, dim)
        elif pos_embed == "sincos":
            grid = sinusoidal_position_encoding_2d(*self.grid_size, dim)  # (N, D)
            self.pos_embed = FixedPositionEncoding(torch.cat([grid.new_zeros(1, dim), grid]))
        else:
            raise ValueError(f"pos_embed must be 'learned' or 'sincos', got {pos_embed!r}")
        self.pos_drop = nn.Dropout(dropout)
        self.encoder = TransformerEncoder(dim, depth, num_heads, mlp_ratio, dropout=dropout)
        self.head = nn.Linear(dim, num_classes)
        nn.init.normal_(self.cls_token, std=1e-6)  # as timm; position 0 tells it apart
        for module in (*self.encoder.modules(), self.head):
            if isinstance(module, nn.Linear):
                nn.init.xavier_uniform_(module.weight)
                nn.init.zeros_(module.bias)

    def tokens(self, images: torch.Tensor) -> torch.Tensor:
        """The encoder's input: ``(B, C, H, W) -> (B, N + 1, D)``, class token first."""
        x = self.patch_embed(images)  # (B, N, D)
        cls = self.cls_token.expand(x.shape[0], -1, -1)  # (B, 1, D)
        x = torch.cat([cls, x], dim=1)  # (B, N + 1, D)
        return self.pos_drop(self.pos_embed(x))

    def forward_features(
        self, images: torch.Tensor, return_attention: bool = False
    ) -> torch.Tensor | tuple[torch.Tensor, list[torch.Tensor]]:
        """Every token after the final LayerNorm, ``(B, N + 1, D)``; with
        ``return_attention`` also each layer's attention weights ``(B, h, N + 1, N + 1)``."""
        return self.encoder(self.tokens(images), return_weights=return_attention)

    def forward_head(self, features: torch.Tensor) -> torch.Tensor:
        """Class-token features ``(B, N + 1, D)`` -> logits ``(B, num_classes)``."""
        return self.head(features[:, 0])

    def forward(
        self, images: torch.Tensor, return_attention: bool = False
    ) -> torch.Tensor | tuple[torch.Tensor, list[torch.Tensor]]:
        """``(B, C, H, W)`` -> logits ``(B, num_classes)``, and with ``return_attention`` the
        list of each layer's attention weights ``(B, h, N + 1, N + 1)`` (rows: queries)."""
        if return_attention:
            features, attentions = self.forward_features(images, return_attention=True)
            return self.forward_head(features), attentions
        return self.forward_head(self.forward_features(images))

    @torch.no_grad()
    def get_attention_maps(self, images: torch.Tensor) -> list[torch.Tensor]:
        """Each layer's attention weights ``(B, h, N + 1, N + 1)``, without gradients. Call
        ``model.eval()`` first if the model has dropout."""
        return self.forward_features(images, return_attention=True)[1]


def attention_rollout(
    attentions: Sequence[torch.Tensor] | torch.Tensor,
    head_fusion: str = "mean",
    discard_ratio: float = 0.0,
) -> torch.Tensor:
    r"""Attention rollout (Abnar & Zuidema, 2020): how much each output token draws on each
    input token, through all layers.

    Each layer's heads are fused (``"mean"``, ``"max"`` or ``"min"`` over heads) into
    :math:`\mathbf{A}_l`; the residual connection is accounted for by adding the identity and
    renormalising each row, :math:`\hat{\mathbf{A}}_l = (\mathbf{A}_l + \mathbf{I}) /
    \text{row sums}`; and the layers are composed,

    .. math::  \tilde{\mathbf{A}} = \hat{\mathbf{A}}_L \hat{\mathbf{A}}_{L-1} \cdots
               \hat{\mathbf{A}}_1 .

    Row ``t`` of the result is a distribution over the input tokens (each row sums to 1);
    for a ViT, ``rollout[:, 0, 1:]`` is the class token's map over the patches. With
    ``discard_ratio > 0``, the smallest ``discard_ratio`` fraction of each fused ``T x T``
    matrix's entries are set to zero before the identity is added (a denoising step of
    common implementations).

    Args:
        attentions: each layer's weights ``(B, h, T, T)``, rows are queries, first layer
            first; or a stacked tensor ``(L, B, h, T, T)``, which may have ``L = 0``.

    Returns:
        ``(B, T, T)``; the identity for zero layers.
    """
    if not isinstance(attentions, torch.Tensor):
        if len(attentions) == 0:
            raise ValueError("no layers: pass a (0, B, h, T, T) tensor to say what B and T are")
        attentions = torch.stack(list(attentions))  # (L, B, h, T, T)
    fuse = {"mean": torch.mean, "max": torch.amax, "min": torch.amin}
    if head_fusion not in fuse:
        raise ValueError(f"head_fusion must be one of {sorted(fuse)}, got {head_fusion!r}")
    if not 0.0 <= discard_ratio < 1.0:
        raise ValueError(f"discard_ratio must be in [0, 1), got {discard_ratio}")
    _, batch, _, tokens, _ = attentions.shape
    eye = torch.eye(tokens, dtype=attentions.dtype, device=attentions.device)  # (T, T)
    rollout = eye.expand(batch, tokens, tokens)  # (B, T, T)
    for layer in attentions:
        fused = fuse[head_fusion](layer, dim=1)  # (B, T, T)
        discard = int(discard_ratio * tokens * tokens)
        if discard > 0:
            flat = fused.flatten(1)  # (B, T*T)
            smallest = flat.topk(discard, dim=-1, largest=False).indices
            fused = flat.scatter(1, smallest, 0.0).view_as(fused)
        fused = fused + eye
        fused = fused / fused.sum(dim=-1, keepdim=True)  # rows sum to 1
        rollout = fused @ rollout  # (B, T, T)
    return rollout


# =============================================================================================
# A convolutional baseline
# =============================================================================================


class SimpleCNN(nn.Module):
    """A small CNN for the comparison: two stages of two 3x3 conv-BN-ReLU layers, a 2x2 max
    pool between them, global average pooling and a linear classifier.

    ``width`` channels in the first stage and ``2 * width`` in the second:
    ``9 width (C + 7 width) + 2 width (6 + num_classes) + num_classes`` parameters
    (``width=40``, one channel, ten classes: 102,450).
    """

    def __init__(self, in_channels: int, num_classes: int, width: int = 32) -> None:
        super().__init__()

        def conv(c_in: int, c_out: int) -> list[nn.Module]:
            return [
                nn.Conv2d(c_in, c_out, 3, padding=1, bias=False),
                nn.BatchNorm2d(c_out),
                nn.ReLU(inplace=True),
            ]

        self.features = nn.Sequential(
            *conv(in_channels, width),
            *conv(width, width),
            nn.MaxPool2d(2),
            *conv(width, 2 * width),
            *conv(2 * width, 2 * width),
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
        )
        self.head = nn.Linear(2 * width, num_classes)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """``(B, C, H, W) -> (B, num_classes)``."""
        return self.head(self.features(images))


def count_parameters(model: nn.Module) -> int:
    """The number of trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


# =============================================================================================
# Training
# =============================================================================================

Batches = torch.utils.data.DataLoader | tuple[torch.Tensor, torch.Tensor]


def _batches(
    data: Batches, batch_size: int, shuffle: bool, generator: torch.Generator | None
) -> list[tuple[torch.Tensor, torch.Tensor]] | torch.utils.data.DataLoader:
    if not isinstance(data, tuple | list):
        return data  # a DataLoader does its own batching and shuffling
    images, labels = data
    n = images.shape[0]
    if shuffle:
        order = torch.randperm(n, generator=generator).to(images.device)
        images, labels = images[order], labels[order]
    return [
        (images[i : i + batch_size], labels[i : i + batch_size]) for i in range(0, n, batch_size)
    ]


def _num_batches(data: Batches, batch_size: int) -> int:
    if isinstance(data, tuple | list):
        return math.ceil(data[0].shape[0] / batch_size)
    return len(data)


@torch.no_grad()
def evaluate_classifier(
    model: nn.Module,
    data: Batches,
    device: torch.device | str | None = None,
    batch_size: int = 512,
) -> tuple[float, float]:
    """Mean cross-entropy and accuracy of ``model`` on ``data`` (eval mode, no gradients).

    ``data`` is a DataLoader of ``(images, labels)`` or a tuple of tensors
    ``(images (B, ...), labels (B,))``. The model's train/eval mode is restored afterwards.
    """
    device = torch.device(device) if device is not None else next(model.parameters()).device
    was_training = model.training
    model.eval()
    loss, correct, count = torch.zeros((), device=device), torch.zeros((), device=device), 0
    for images, labels in _batches(data, batch_size, shuffle=False, generator=None):
        images, labels = images.to(device), labels.to(device)
        logits = model(images)
        loss += F.cross_entropy(logits, labels, reduction="sum")
        correct += (logits.argmax(dim=-1) == labels).sum()
        count += labels.shape[0]
    model.train(was_training)
    return loss.item() / count, correct.item() / count


def warmup_cosine(warmup_steps: int, total_steps: int) -> Callable[[int], float]:
    """Learning-rate factor of step ``s``: linear warm-up from ``1/warmup_steps`` to 1 over
    ``warmup_steps`` steps, then a half cosine down to 0 at ``total_steps``."""

    def factor(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / warmup_steps
        progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
        return 0.5 * (1.0 + math.cos(math.pi * min(progress, 1.0)))

    return factor


def train_classifier(
    model: nn.Module,
    train: Batches,
    test: Batches | None = None,
    *,
    epochs: int = 10,
    lr: float = 1e-3,
    weight_decay: float = 0.05,
    batch_size: int = 64,
    warmup_epochs: float = 1.0,
    label_smoothing: float = 0.0,
    augment: Callable[[torch.Tensor, torch.Generator | None], torch.Tensor] | None = None,
    device: torch.device | str | None = None,
    generator: torch.Generator | None = None,
    progress: bool = True,
    desc: str | None = None,
) -> dict[str, list[float]]:
    """Train an image classifier with AdamW, a warm-up + cosine schedule and cross-entropy.

    Args:
        model: maps images ``(B, C, H, W)`` to logits ``(B, classes)``; moved to ``device``.
        train, test: a DataLoader of ``(images, labels)`` or a tuple of tensors
            ``(images, labels)``, batched here (``batch_size``) and shuffled each epoch
            with ``generator`` (a CPU generator; the draws are the same on every device).
        epochs, lr, weight_decay: AdamW's peak learning rate and decoupled weight decay
            (applied to every parameter).
        warmup_epochs: epochs of linear warm-up; then the rate follows a cosine to zero,
            updated every step (:func:`warmup_cosine`).
        label_smoothing: passed to :func:`torch.nn.functional.cross_entropy`.
        augment: ``augment(images, generator) -> images``, applied to each training batch.
        device: defaults to the device of the model's parameters.
        progress: show a :mod:`tqdm.auto` bar over the epochs.

    Returns:
        A history with one entry per epoch: ``"loss"`` (mean training loss), ``"train_acc"``
        (accuracy on the training batches as they were trained on: augmented, dropout on),
        ``"test_acc"`` and ``"test_loss"`` (eval mode; NaN without ``test``), ``"seconds"``
        (the epoch's training time, evaluation excluded), ``"time"`` (cumulative training
        time) and ``"images_per_second"``.
    """
    from tqdm.auto import tqdm

    device = torch.device(device) if device is not None else next(model.parameters()).device
    model.to(device)
    steps_per_epoch = _num_batches(train, batch_size)
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
    schedule = warmup_cosine(
        max(1, round(warmup_epochs * steps_per_epoch)), epochs * steps_per_epoch
    )
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, schedule)
    keys = ("loss", "train_acc", "test_loss", "test_acc", "seconds", "time", "images_per_second")
    history: dict[str, list[float]] = {key: [] for key in keys}
    total_time = 0.0
    bar = tqdm(range(epochs), desc=desc or type(model).__name__, disable=not progress)
    for _ in bar:
        model.train()
        start = time.perf_counter()
        loss_sum, correct = torch.zeros((), device=device), torch.zeros((), device=device)
        count = 0
        for images, labels in _batches(train, batch_size, shuffle=True, generator=generator):
            images, labels = images.to(device), labels.to(device)
            if augment is not None:
                images = augment(images, generator)
            logits = model(images)  # (B, classes)
            loss = F.cross_entropy(logits, labels, label_smoothing=label_smoothing)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            scheduler.step()
            loss_sum += loss.detach() * labels.shape[0]  # no .item(): the GPU is not stalled
            correct += (logits.detach().argmax(dim=-1) == labels).sum()
            count += labels.shape[0]
        epoch_loss, epoch_acc = loss_sum.item() / count, correct.item() / count  # synchronises
        seconds = time.perf_counter() - start
        total_time += seconds
        test_loss, test_acc = (
            evaluate_classifier(model, test, device) if test is not None else (math.nan,) * 2
        )
        row = (epoch_loss, epoch_acc, test_loss, test_acc, seconds, total_time, count / seconds)
        for key, value in zip(keys, row, strict=True):
            history[key].append(value)
        bar.set_postfix(loss=f"{epoch_loss:.3f}", train=f"{epoch_acc:.3f}", test=f"{test_acc:.3f}")
    return history
