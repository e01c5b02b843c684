"""BERT's masking rule: its proportions on a large sample, its labels, and its devices."""

import math

import pytest
import torch

from vislearn.mlm import (
    IGNORE_INDEX,
    bert_mask,
    bert_proportions,
    masked_lm_batch,
    masked_lm_loss,
)
from vislearn.testing import make_generator
from vislearn.text import Vocabulary, encode_corpus, generate_corpus


@pytest.fixture(scope="module")
def vocab():
    return Vocabulary.from_sentences(generate_corpus(300, torch.Generator().manual_seed(0)))


def random_ids(vocab, shape, generator, device="cpu"):
    """Ordinary words, with a block of [PAD] at the end of every row."""
    ids = torch.randint(len(Vocabulary.SPECIALS), len(vocab), shape, generator=generator)
    ids[..., -5:] = vocab.pad_id
    return ids.to(device)


def test_proportions_match_the_rule_on_a_large_sample(device, vocab):
    ids = random_ids(vocab, (400, 1000), make_generator(0), device)  # 398,000 real tokens
    inputs, labels = bert_mask(ids, vocab, make_generator(1))
    real = ids != vocab.pad_id
    n = int(real.sum())
    chosen = labels != IGNORE_INDEX
    counts = {
        "chosen": chosen.sum(),
        "mask": (inputs == vocab.mask_id).sum(),
        "random_changed": (chosen & (inputs != ids) & (inputs != vocab.mask_id)).sum(),
        "chosen_unchanged": (chosen & (inputs == ids)).sum(),
    }
    expected = bert_proportions(len(vocab) - len(Vocabulary.SPECIALS))
    for name, count in counts.items():
        p = expected[name]
        sigma = math.sqrt(n * p * (1 - p))
        assert abs(int(count) - n * p) < 5 * sigma, (name, int(count) / n, p)
    # Within the chosen tokens: 80% [MASK], 10% random, 10% unchanged (+ lucky random draws).
    share = counts["mask"] / counts["chosen"]
    assert abs(share.item() - 0.8) < 0.01


def test_labels_inputs_and_padding(device, vocab):
    ids = random_ids(vocab, (64, 50), make_generator(2), device)
    inputs, labels = bert_mask(ids, vocab, make_generator(3), mask_prob=0.5)
    assert inputs.device == ids.device and labels.device == ids.device
    assert inputs.dtype == ids.dtype and labels.dtype == torch.long
    chosen = labels != IGNORE_INDEX
    assert (labels[chosen] == ids[chosen]).all(), "labels hold the original ids"
    assert (inputs[~chosen] == ids[~chosen]).all(), "tokens not chosen are untouched"
    assert not chosen[ids == vocab.pad_id].any(), "[PAD] is never chosen"
    changed = inputs != ids
    random_words = inputs[changed & (inputs != vocab.mask_id)]
    assert (random_words >= len(Vocabulary.SPECIALS)).all(), "random tokens are ordinary words"
    assert ids.max() < len(vocab) and inputs.max() < len(vocab)


def test_the_same_cpu_generator_gives_the_same_corruption_on_every_device(device, vocab):
    ids = random_ids(vocab, (8, 30), make_generator(4))
    on_cpu = bert_mask(ids, vocab, make_generator(5), mask_prob=0.3)
    on_device = bert_mask(ids.to(device), vocab, make_generator(5), mask_prob=0.3)
    for a, b in zip(on_cpu, on_device, strict=True):
        assert torch.equal(a, b.cpu())


def test_degenerate_rules(vocab):
    ids = random_ids(vocab, (20, 40), make_generator(6))
    real = ids != vocab.pad_id
    inputs, labels = bert_mask(
        ids, vocab, make_generator(7), mask_prob=1.0, replace_prob=1.0, random_prob=0.0
    )
    assert (inputs[real] == vocab.mask_id).all() and (labels[real] == ids[real]).all()
    inputs, labels = bert_mask(ids, vocab, make_generator(7), mask_prob=0.0)
    assert torch.equal(inputs, ids) and (labels == IGNORE_INDEX).all()
    with pytest.raises(ValueError, match="exceeds 1"):
        bert_mask(ids, vocab, mask_prob=0.1, replace_prob=0.8, random_prob=0.3)


def test_batches_and_loss_only_count_the_chosen_tokens(vocab):
    stream = encode_corpus(generate_corpus(100, torch.Generator().manual_seed(1)), vocab)
    inputs, labels = masked_lm_batch(stream, 16, 12, vocab, make_generator(8))
    assert inputs.shape == labels.shape == (16, 12)
    logits = torch.randn(16, 12, len(vocab), generator=make_generator(9), requires_grad=True)
    loss = masked_lm_loss(logits, labels)
    chosen = labels != IGNORE_INDEX
    expected = torch.nn.functional.cross_entropy(logits[chosen], labels[chosen])
    torch.testing.assert_close(loss, expected)
    loss.backward()
    assert (logits.grad[~chosen] == 0).all(), "positions not chosen get no gradient"
