r"""The transformer layer, a stack of them, and a tiny language model built on the stack.

A transformer layer alternates two residual sub-layers on the tokens ``x (B, N, D)``:
multi-head self-attention, which mixes information *between* tokens, and an MLP applied to
each token on its own. Pre-norm (GPT-2, ViT) normalises the input of each sub-layer,

.. math::  \mathbf{x} \leftarrow \mathbf{x} + \mathrm{MhSa}[\mathrm{LN}(\mathbf{x})], \qquad
           \mathbf{x} \leftarrow \mathbf{x} + \mathrm{MLP}[\mathrm{LN}(\mathbf{x})];

post-norm (the original transformer of Vaswani et al., 2017) normalises after the sum,

.. math::  \mathbf{x} \leftarrow \mathrm{LN}(\mathbf{x} + \mathrm{MhSa}[\mathbf{x}]), \qquad
           \mathbf{x} \leftarrow \mathrm{LN}(\mathbf{x} + \mathrm{MLP}[\mathbf{x}]).
"""

from __future__ import annotations

import torch
from torch import nn

from vislearn.attention import LearnedPositionEncoding, MultiHeadAttention, causal_mask
from vislearn.softmax import softmax


class MLP(nn.Module):
    """The per-token feed-forward network: Linear, GELU, (dropout), Linear."""

    def __init__(self, dim: int, hidden_dim: int, dropout: float = 0.0) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden_dim)
        self.act = nn.GELU()
        self.dropout = nn.Dropout(dropout)
        self.fc2 = nn.Linear(hidden_dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(..., D) -> (..., D)``."""
        return self.fc2(self.dropout(self.act(self.fc1(x))))  # hidden: (..., hidden_dim)


class TransformerBlock(nn.Module):
    """One transformer layer: self-attention then MLP, each residual, pre- or post-norm.

    ``dropout`` applies to the MLP's hidden units and to each sub-layer's output before it is
    added to the residual stream.
    """

    def __init__(
        self,
        dim: int,
        num_heads: int,
        mlp_ratio: float = 4.0,
        *,
        norm_first: bool = True,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        self.norm_first = norm_first
        self.norm1 = nn.LayerNorm(dim)
        self.attn = MultiHeadAttention(dim, num_heads)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = MLP(dim, int(dim * mlp_ratio), dropout)
        self.dropout = nn.Dropout(dropout)

    def forward(
        self, x: torch.Tensor, mask: torch.Tensor | None = None, return_weights: bool = False
    ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        """``x (B, N, D) -> (B, N, D)``, and the attention weights ``(B, h, N, N)`` if asked.

        ``mask`` is passed to the attention: boolean (True = may attend) or additive,
        broadcastable to ``(B, h, N, N)``.
        """
        if self.norm_first:
            attended, weights = self.attn(self.norm1(x), mask=mask, return_weights=True)
            x = x + self.dropout(attended)  # (B, N, D)
            x = x + self.dropout(self.mlp(self.norm2(x)))
        else:
            attended, weights = self.attn(x, mask=mask, return_weights=True)
            x = self.norm1(x + self.dropout(attended))  # (B, N, D)
            x = self.norm2(x + self.dropout(self.mlp(x)))
        return (x, weights) if return_weights else x


class TransformerEncoder(nn.Module):
    """``depth`` transformer layers; pre-norm stacks end with a LayerNorm of their own.

    (A post-norm layer already ends with one, so a post-norm stack adds none.)
    """

    def __init__(
        self,
        dim: int,
        depth: int,
        num_heads: int,
        mlp_ratio: float = 4.0,
        *,
        norm_first: bool = True,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(
            TransformerBlock(dim, num_heads, mlp_ratio, norm_first=norm_first, dropout=dropout)
            for _ in range(depth)
        )
        self.norm = nn.LayerNorm(dim) if norm_first else nn.Identity()

    def forward(
        self, x: torch.Tensor, mask: torch.Tensor | None = None, return_weights: bool = False
    ) -> torch.Tensor | tuple[torch.Tensor, list[torch.Tensor]]:
        """``x (B, N, D) -> (B, N, D)``, and with ``return_weights`` a list of each layer's
        attention weights ``(B, h, N, N)``."""
        all_weights = []
        for block in self.blocks:
            x, weights = block(x, mask=mask, return_weights=True)
            all_weights.append(weights)
        x = self.norm(x)
        return (x, all_weights) if return_weights else x


class TinyLanguageModel(nn.Module):
    """A small transformer over word ids: embeddings, learned positions, a pre-norm encoder
    (whose final LayerNorm normalises the output) and a linear head giving logits.

    With ``causal=True`` token ``t`` attends only to tokens ``<= t``, so the logits at ``t``
    predict token ``t + 1`` (a GPT-style language model). With ``causal=False`` every token
    sees the whole sequence, as a BERT-style masked language model needs.
    """

    def __init__(
        self,
        vocab_size: int,
        max_len: int,
        dim: int = 64,
        depth: int = 2,
        num_heads: int = 4,
        causal: bool = True,
    ) -> None:
        super().__init__()
        self.max_len = max_len
        self.causal = causal
        self.token_embedding = nn.Embedding(vocab_size, dim)
        self.position = LearnedPositionEncoding(max_len, dim)
        self.encoder = TransformerEncoder(dim, depth, num_heads)
        self.head = nn.Linear(dim, vocab_size)

    def forward(
        self, ids: torch.Tensor, return_weights: bool = False
    ) -> torch.Tensor | tuple[torch.Tensor, list[torch.Tensor]]:
        """Token ids ``(B, N)``, ``N <= max_len`` -> logits ``(B, N, vocab_size)``, and with
        ``return_weights`` every layer's attention weights ``(B, h, N, N)``."""
        x = self.position(self.token_embedding(ids))  # (B, N, D)
        mask = causal_mask(ids.shape[1], device=ids.device) if self.causal else None  # (N, N)
        if not return_weights:
            return self.head(self.encoder(x, mask=mask))  # (B, N, vocab_size)
        x, weights = self.encoder(x, mask=mask, return_weights=True)
        return self.head(x), weights

    @torch.no_grad()
    def generate(
        self,
        prompt_ids: torch.Tensor,
        max_new_tokens: int,
        generator: torch.Generator | None = None,
        temperature: float = 0.0,
    ) -> torch.Tensor:
        """Extend ``prompt_ids (B, N)`` by ``max_new_tokens`` tokens -> ``(B, N + new)``.

        ``temperature=0`` picks the most likely next token (greedy); otherwise the next token
        is sampled from ``softmax(logits / temperature)`` with ``generator`` (a CPU generator
        gives the same draws on every device). Only the last ``max_len`` tokens are fed back.
        Call ``model.eval()`` first if the model has dropout.
        """
        ids = prompt_ids  # (B, N)
        for _ in range(max_new_tokens):
            logits = self(ids[:, -self.max_len :])[:, -1]  # (B, vocab_size)
            if temperature == 0:
                next_id = logits.argmax(dim=-1, keepdim=True)  # (B, 1)
            else:
                probs = softmax(logits / temperature, dim=-1)
                sample_device = generator.device if generator is not None else probs.device
                next_id = torch.multinomial(probs.to(sample_device), 1, generator=generator)
                next_id = next_id.to(ids.device)  # (B, 1)
            ids = torch.cat([ids, next_id], dim=1)
        return ids
