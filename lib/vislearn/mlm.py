r"""Masked language modelling: BERT's masking rule (Devlin et al., 2019) and its batches.

A masked language model reads a sentence in which some words are hidden and predicts them
from the context on **both** sides, so it needs a non-causal transformer
(:class:`vislearn.transformer.TinyLanguageModel` with ``causal=False``). BERT chooses 15% of
the tokens to predict; of those

- 80% are replaced by ``[MASK]``,
- 10% by a random word,
- 10% are left unchanged,

and the loss is the cross-entropy at the chosen positions only (labels ``-100``, PyTorch's
``ignore_index``, everywhere else). Only ever seeing ``[MASK]`` at the positions to predict
would teach the model that every other token is already right, and ``[MASK]`` never occurs
when the model is later used on real text; the random and unchanged 10% make it keep a
prediction for every token. :func:`bert_proportions` gives the rule's exact expected shares.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from vislearn.text import Vocabulary, next_token_batch

IGNORE_INDEX = -100  # the labels of positions that are not predicted (cross_entropy's default)


def bert_mask(
    ids: torch.Tensor,
    vocab: Vocabulary,
    generator: torch.Generator | None = None,
    mask_prob: float = 0.15,
    *,
    replace_prob: float = 0.8,
    random_prob: float = 0.1,
) -> tuple[torch.Tensor, torch.Tensor]:
    """BERT's corruption of a batch of token ids: ``ids (...)`` -> ``inputs, labels (...)``.

    Each token except ``[PAD]`` is chosen independently with probability ``mask_prob``. A
    chosen token is replaced by ``[MASK]`` with probability ``replace_prob``, by a random
    word with probability ``random_prob`` (uniform over the vocabulary's ordinary words, the
    special tokens excluded, so it may by chance be the word itself), and otherwise left as
    it is. ``labels`` holds the original id at every chosen position and
    :data:`IGNORE_INDEX` elsewhere.

    The random numbers are drawn with ``generator`` on its device and then moved to
    ``ids``' device (a CPU generator gives the same corruption on every device); without a
    generator they are drawn on ``ids``' device. Returns new tensors on ``ids``' device.
    """
    if not 0.0 <= mask_prob <= 1.0 or replace_prob < 0 or random_prob < 0:
        raise ValueError("probabilities must be non-negative and mask_prob at most 1")
    if replace_prob + random_prob > 1.0:
        raise ValueError(f"replace_prob + random_prob = {replace_prob + random_prob} exceeds 1")
    first_word = len(vocab.SPECIALS)  # ordinary words have ids first_word, ..., len(vocab) - 1
    if len(vocab) <= first_word:
        raise ValueError("the vocabulary has no ordinary words to draw random tokens from")
    draw_device = generator.device if generator is not None else ids.device
    u = torch.rand((2, *ids.shape), generator=generator, device=draw_device).to(ids.device)
    words = torch.randint(
        first_word, len(vocab), ids.shape, generator=generator, device=draw_device
    ).to(ids.device)
    chosen = (u[0] < mask_prob) & (ids != vocab.pad_id)
    to_mask = chosen & (u[1] < replace_prob)
    to_random = chosen & (u[1] >= replace_prob) & (u[1] < replace_prob + random_prob)
    inputs = torch.where(to_mask, vocab.mask_id, ids)
    inputs = torch.where(to_random, words, inputs)
    labels = torch.where(chosen, ids, IGNORE_INDEX)
    return inputs, labels


def bert_proportions(
    num_words: int,
    mask_prob: float = 0.15,
    replace_prob: float = 0.8,
    random_prob: float = 0.1,
) -> dict[str, float]:
    """The expected share of (non-``[PAD]``) tokens in each outcome of :func:`bert_mask`.

    ``num_words`` is the number of ordinary words random tokens are drawn from; a random
    draw equals the original word with probability ``1 / num_words``, so the tokens that
    are chosen but come out unchanged are slightly more than ``(1 - 0.8 - 0.1)`` of them.
    With the defaults: 15% chosen, 12% ``[MASK]``, 1.5% random draws (``1.5% (1 - 1/W)``
    visibly changed) and 1.5% kept on purpose.
    """
    unchanged = 1.0 - replace_prob - random_prob
    return {
        "chosen": mask_prob,
        "mask": mask_prob * replace_prob,
        "random": mask_prob * random_prob,
        "random_changed": mask_prob * random_prob * (1.0 - 1.0 / num_words),
        "kept": mask_prob * unchanged,
        "chosen_unchanged": mask_prob * (unchanged + random_prob / num_words),
        "not_chosen": 1.0 - mask_prob,
    }


def masked_lm_batch(
    stream: torch.Tensor,
    batch_size: int,
    block_size: int,
    vocab: Vocabulary,
    generator: torch.Generator | None = None,
    device: torch.device | str | None = None,
    mask_prob: float = 0.15,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Random windows of a token stream, corrupted by :func:`bert_mask`: ``inputs, labels
    (B, T)`` on ``device``. The windows are those of :func:`vislearn.text.next_token_batch`."""
    ids, _ = next_token_batch(stream, batch_size, block_size, generator)  # (B, T), on the CPU
    inputs, labels = bert_mask(ids, vocab, generator, mask_prob)
    return inputs.to(device), labels.to(device)


def masked_lm_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Cross-entropy at the chosen positions: ``logits (B, T, V)``, ``labels (B, T)``."""
    return F.cross_entropy(logits.flatten(0, -2), labels.flatten(), ignore_index=IGNORE_INDEX)
